# cython: language_level=3
"""Compiled twin of fastnn._fallback: same names, same signatures, same results.

Conventions shared with the pure-Python twin:
- row-major arrays: X (batch, n_in), W (n_in, n_out), b (n_out,);
- outputs are preallocated by the caller and passed in, nothing is returned but scalars;
- all float arrays of one call share one dtype (float32 or float64), C-contiguous;
- activations are integer codes (fastnn.activations), derivatives are taken through A = f(Z);
- loss sums are accumulated in a C double and returned as a Python float.
Each function checks the shapes it relies on and raises ValueError, as its pure-Python twin does,
while it holds the GIL; then it runs `noexcept nogil` workers inside `with nogil:`, where nothing
is checked. Arrays arrive as typed memoryviews over the fused type `floating` (float32/float64),
`const` where read-only (so read-only arrays are accepted). The workers take data pointers and
sizes (a matrix is C-contiguous: row i starts at i * n_columns), so that train_epochs can run
whole epochs on views into one flat parameter buffer without the GIL. Matrix products go to BLAS
(scipy.linalg.cython_blas), or, for small shapes, to the AVX2 micro-kernels of _microkernels.h on
CPUs that have AVX2, or to direct loops.
The compiler directives (bounds/wraparound/initialized checks off, cdivision on) come from setup.py.
"""
from cython cimport floating
from libc.math cimport exp, expf, fabs, fabsf, log, log1p, log1pf, logf, pow, sqrt, sqrtf, tanh, tanhf
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memmove, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

import os

import numpy as np

# train_epochs' argument checks (plain Python over shapes) and the range errors are _fallback's,
# shared, so the two twins cannot drift apart.
from fastnn._fallback import _check_train_args, _label_range_error, _layout, _order_range_error

# The codes of fastnn.activations, fastnn.losses and _fallback's optimizers (checked against them
# at import: _check_codes). cpdef: also module attributes, as in _fallback.
cpdef enum:
    LINEAR = 0
    SIGMOID = 1
    RELU = 2
    TANH = 3
    LEAKY_RELU = 4
    SOFTMAX = 5
    EXP = 6

cpdef enum:
    BINARY_CROSSENTROPY = 0
    CATEGORICAL_CROSSENTROPY = 1
    SPARSE_CATEGORICAL_CROSSENTROPY = 2
    MSE = 3
    POISSON = 4

cpdef enum:
    SGD = 0
    MOMENTUM = 1
    ADAM = 2
    NESTEROV = 3
    GRADIENT_ONLY = 4

cdef double LEAKY_SLOPE = 0.01  # PyTorch's default negative slope for LeakyReLU

# Where matrix products stop being direct loops and become one BLAS gemm call. A product of
# (m, k) by (k, n) runs as loops when m*n*k <= GEMM_CROSSOVER, or when the batch is one row (the
# gemv shape, where OpenBLAS's gemm packs the whole weight matrix for one row: 3-7x slower than the
# loops even at 512x512). Measured on this 2-core AMD EPYC (AVX2), scipy-openblas 0.3.30, baseline
# x86-64 build, batch 2..256, widths 1..128, all three products, float32 and float64: a BLAS call
# costs 0.1-0.15 µs even for the XOR net's 4x2x2 (loops: 17-37 ns); loops win 3-5x at m*n*k <= 64,
# break even around 1024-2048 (float32 X·W and Xᵀ·dZ near 8192, dZ·Wᵀ near 512), lose 1.3-3x at
# 32768. 1024 and 2048 tie for the lowest total time (10 % above the best choice per shape).
cdef Py_ssize_t GEMM_CROSSOVER = 1024

# Before both: the AVX2 + FMA micro-kernels of _microkernels.h, on CPUs that have them, for small
# products (m*n*k <= SIMD_MAX_PRODUCT) whose streamed operand (the one read as vectors: W in X·W,
# dZ in Xᵀ·dZ, W in dZ·Wᵀ) is at least two vectors wide and fits in L1. There they skip OpenBLAS's
# packing and per-call cost: the 20-32-32-2 net trains 1.2-1.35x faster (float32 and float64,
# one epoch of train_epochs, interleaved A/B). Beyond that OpenBLAS's cache blocking wins: with the
# kernels used up to 32 KB operands of any product size, 64-64-10 at batch 200 in float64 and
# 128-512-512-10 trained 0.7-0.9x and 0.55x as fast. FASTNN_SIMD=0 in the environment turns
# them off, leaving the portable paths.
cdef extern from "_microkernels.h" nogil:
    bint fastnn_simd_available()
    void fastnn_rows_f(const float* A, Py_ssize_t a_row, Py_ssize_t a_inner, const float* B, float* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_rows_d(const double* A, Py_ssize_t a_row, Py_ssize_t a_inner, const double* B, double* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_dots_f(const float* P, const float* Q, float* C, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_dots_d(const double* P, const double* Q, double* C, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)

# Whole batches of tiny networks (every layer at most FASTNN_LANE_MAX_BYTES wide) across vector
# lanes: _lanes.h, for train_epochs. Also AVX2 + FMA, and behind the same switch as the micro-kernels.
cdef extern from "_lanes.h" nogil:
    enum:
        FASTNN_LANE_LINEAR
        FASTNN_LANE_SIGMOID
        FASTNN_LANE_TANH
        FASTNN_LANE_RELU
        FASTNN_LANE_LEAKY_RELU
        FASTNN_LANE_BCE
        FASTNN_LANE_MSE
        FASTNN_LANE_MAX_BYTES
    Py_ssize_t fastnn_lanes_scratch_f(const int64_t* sizes, Py_ssize_t L, Py_ssize_t n_params)
    Py_ssize_t fastnn_lanes_scratch_d(const int64_t* sizes, Py_ssize_t L, Py_ssize_t n_params)
    double fastnn_lanes_batch_f(const float* X, const float* Y, const int64_t* idx, Py_ssize_t m,
                                const int64_t* sizes, const int64_t* codes, Py_ssize_t L, int loss,
                                double loss_scale, float slope, const float* P, float* G, float* scratch,
                                Py_ssize_t n_params, Py_ssize_t* correct)
    double fastnn_lanes_batch_d(const double* X, const double* Y, const int64_t* idx, Py_ssize_t m,
                                const int64_t* sizes, const int64_t* codes, Py_ssize_t L, int loss,
                                double loss_scale, double slope, const double* P, double* G, double* scratch,
                                Py_ssize_t n_params, Py_ssize_t* correct)

cdef Py_ssize_t SIMD_MAX_PRODUCT = 1 << 16  # m*n*k
cdef Py_ssize_t SIMD_MAX_OPERAND = 1 << 15  # bytes
cdef bint _simd = fastnn_simd_available() and os.environ.get("FASTNN_SIMD", "").strip() != "0"


def _simd_available() -> bool:
    """Whether this CPU runs fastnn's AVX2 + FMA micro-kernels (and this build has them)."""
    return bool(fastnn_simd_available())


def _set_simd(bint on):
    """Use the micro-kernels (when available) or not; returns the previous setting. For tests."""
    global _simd
    previous = _simd
    _simd = on and fastnn_simd_available()
    return previous


cdef inline bint _simd_fits(Py_ssize_t product, Py_ssize_t width, Py_ssize_t operand_items,
                            Py_ssize_t item_size) noexcept nogil:
    return (_simd and product <= SIMD_MAX_PRODUCT and width * item_size >= 64
            and operand_items * item_size <= SIMD_MAX_OPERAND)


# A layer narrower than a vector (a classifier's output: 1-10 classes) leaves `rows` nothing to
# stream along its outputs, and went to OpenBLAS: a sixth of the 20-32-32-2 net's instructions
# (callgrind), each call's packing and zeroing for 2 KFLOP. Its inputs are the wide side: with W
# copied transposed, (n_out, n_in), onto the stack, each product streams rows of length n_in.
cdef enum:
    NARROW_MAX = 4096  # elements of the transposed copy: 32 KB of float64, as SIMD_MAX_OPERAND


cdef inline bint _simd_narrow(Py_ssize_t product, Py_ssize_t n_out, Py_ssize_t n_in,
                              Py_ssize_t item_size) noexcept nogil:
    return (_simd and product <= SIMD_MAX_PRODUCT and n_out * item_size < 64 and n_in * item_size >= 64
            and n_out * n_in <= NARROW_MAX)


cdef inline void _rows(const floating* A, Py_ssize_t a_row, Py_ssize_t a_inner, const floating* B, floating* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fastnn_rows_f(A, a_row, a_inner, B, C, m, k, n)
    else:
        fastnn_rows_d(A, a_row, a_inner, B, C, m, k, n)


cdef inline void _dots(const floating* P, const floating* Q, floating* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fastnn_dots_f(P, Q, C, m, k, n)
    else:
        fastnn_dots_d(P, Q, C, m, k, n)


cdef inline void _transpose(const floating* A, floating* out, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """out (cols, rows) = Aᵀ, A: (rows, cols)."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            out[j * rows + i] = A[i * cols + j]


# libc.math in the precision of the data: the f-versions for float32.

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _row_max(const floating* z, Py_ssize_t n) noexcept nogil:
    """max(z[:n]) as np.max computes it: NaN if the row holds a NaN. n >= 1."""
    cdef Py_ssize_t j
    cdef floating top = z[0]
    for j in range(1, n):
        if z[j] > top or z[j] != z[j]:  # once top is NaN, nothing replaces it
            top = z[j]
    return top


# Data pointers of the arrays a `def` received; NULL for an empty array, whose data is never read.

cdef inline const floating* _in2(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline floating* _out2(floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline const floating* _in1(const floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline floating* _out1(floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline const int64_t* _labels_ptr(const int64_t[::1] labels) noexcept nogil:
    return &labels[0] if labels.shape[0] > 0 else NULL


# ----------------------------------------------------------------------------- checks
# Shapes are compared in C; the ValueError (the same message as _fallback's) is built only on failure.

def _shape_error(name, a, shape):
    return ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")


cdef inline bint _is_activation(long long activation) noexcept nogil:
    return activation == LINEAR or activation == SIGMOID or activation == RELU or \
        activation == TANH or activation == LEAKY_RELU or activation == SOFTMAX or activation == EXP


def _activation_error(activation):
    return ValueError(f"unknown activation code {activation!r}")


def _empty_softmax_error(name, a):
    return ValueError(f"{name} has shape {tuple(a.shape)}: softmax needs at least one column")


def _empty_argmax_error(name, a):
    return ValueError(f"{name} has shape {tuple(a.shape)}: argmax needs at least one column")


def _empty_mean_error():
    # What `float(loss_sum) / 0` raises in _fallback: a loss over no elements has no mean.
    return ZeroDivisionError("float division by zero")


def _check_codes():
    """The enums above must number things as fastnn.activations, fastnn.losses and _fallback do."""
    from . import _fallback, activations, losses
    ours = {"LINEAR": LINEAR, "SIGMOID": SIGMOID, "RELU": RELU, "TANH": TANH, "LEAKY_RELU": LEAKY_RELU,
            "SOFTMAX": SOFTMAX, "EXP": EXP, "LEAKY_SLOPE": LEAKY_SLOPE,
            "BINARY_CROSSENTROPY": BINARY_CROSSENTROPY, "CATEGORICAL_CROSSENTROPY": CATEGORICAL_CROSSENTROPY,
            "SPARSE_CATEGORICAL_CROSSENTROPY": SPARSE_CATEGORICAL_CROSSENTROPY, "MSE": MSE, "POISSON": POISSON,
            "SGD": SGD, "MOMENTUM": MOMENTUM, "ADAM": ADAM, "NESTEROV": NESTEROV, "GRADIENT_ONLY": GRADIENT_ONLY}
    theirs = {name: getattr(activations, name, getattr(losses, name, getattr(_fallback, name, None)))
              for name in ours}
    if ours != theirs:
        raise ImportError(f"fastnn._kernels was built with the codes {ours}, but fastnn has {theirs}: "
                          "rebuild the extension")


_check_codes()


# ----------------------------------------------------------------------------- activations

cdef enum:
    SIGMOID_CHUNK = 256  # elements per two-pass chunk in _sigmoid: 2 KB of float64 on the stack


cdef void _sigmoid(floating* z, Py_ssize_t size) noexcept nogil:
    """z = sigmoid(z) for size elements, in place.

    exp(-|z|) never overflows; sigmoid(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0. In chunks:
    first the calls to exp, which do not wait for each other, then a loop with neither calls nor
    branches (the choice between 1 and e vectorises to a select), so a mix of signs costs no
    mispredicted branches.
    """
    cdef floating e[SIGMOID_CHUNK]
    cdef floating one = 1
    cdef Py_ssize_t start = 0, stop, j
    while start < size:
        stop = min(start + SIGMOID_CHUNK, size)
        for j in range(start, stop):
            e[j - start] = _exp(-_abs(z[j]))
        for j in range(start, stop):
            z[j] = (one if z[j] >= 0 else e[j - start]) / (one + e[j - start])
        start = stop


cdef void _softmax_row(floating* z, const floating* b, Py_ssize_t n) noexcept nogil:
    """z = softmax(z + b) for one row of n >= 1, in place, shifted by the row max so exp never
    overflows. b: (n,) or NULL (no bias)."""
    cdef Py_ssize_t j
    cdef floating x, top, total
    cdef double sum_e = 0
    if b != NULL:
        for j in range(n):
            z[j] = z[j] + b[j]
    top = _row_max(z, n)
    for j in range(n):
        x = _exp(z[j] - top)
        z[j] = x
        sum_e += x
    total = <floating>sum_e
    for j in range(n):
        z[j] = z[j] / total


cdef inline floating _relu(floating x) noexcept nogil:
    cdef floating zero = 0
    return zero if x < 0 else x  # np.maximum(x, 0): NaN stays NaN


cdef inline floating _leaky_relu(floating x, floating slope) noexcept nogil:
    # where(x > 0, x, x * slope), as a sum of which one term is 0 (exact; only the sign of a zero
    # may differ): selects and arithmetic without branches, so the loops vectorise. (gcc turns
    # x * (1 if x > 0 else slope) back into a branch, which then does not vectorise.)
    cdef floating zero = 0
    return (zero if x < 0 else x) + slope * (x if x < 0 else zero)


cdef void _activate(const floating* Z, const floating* b, int activation, floating* out,
                    Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """out = f(Z + b), Z, out: (m, n), b: (n,) or NULL (no bias), in one pass; out may be Z.

    The loops work in place on out (Z copied there first when it is another array): gcc
    vectorises them behind a run-time check that out and Z do not overlap, and fell back to
    scalar loops for the in-place calls of every forward pass, out == Z.
    """
    cdef Py_ssize_t i, j
    cdef floating slope = <floating>LEAKY_SLOPE
    cdef floating* o
    if out != Z:  # (memmove: a view of another part of the same buffer may overlap)
        memmove(out, Z, m * n * sizeof(floating))
    if activation == SIGMOID:  # exp-bound: adding b in a pass of its own costs nothing measurable
        if b != NULL:
            for i in range(m):
                o = out + i * n
                for j in range(n):
                    o[j] = o[j] + b[j]
        _sigmoid(out, m * n)  # one flat pass, not one per row: XOR's rows are 2 wide
        return
    for i in range(m):
        o = out + i * n
        if activation == SOFTMAX:  # row-wise
            _softmax_row(o, b, n)
        elif b != NULL:  # each loop comes with and without the bias, so that both vectorise
            if activation == LINEAR:
                for j in range(n):
                    o[j] = o[j] + b[j]
            elif activation == RELU:
                for j in range(n):
                    o[j] = _relu(o[j] + b[j])
            elif activation == TANH:
                for j in range(n):
                    o[j] = _tanh(o[j] + b[j])
            elif activation == EXP:
                for j in range(n):
                    o[j] = _exp(o[j] + b[j])
            else:  # LEAKY_RELU
                for j in range(n):
                    o[j] = _leaky_relu(o[j] + b[j], slope)
        else:
            if activation == RELU:
                for j in range(n):
                    o[j] = _relu(o[j])
            elif activation == TANH:
                for j in range(n):
                    o[j] = _tanh(o[j])
            elif activation == EXP:
                for j in range(n):
                    o[j] = _exp(o[j])
            elif activation == LEAKY_RELU:
                for j in range(n):
                    o[j] = _leaky_relu(o[j], slope)
            # LINEAR: out already holds Z


def activate(const floating[:, ::1] Z not None, int activation, floating[:, ::1] out not None):
    """out = f(Z), row-wise for softmax. Z, out: (batch, n); out may be Z."""
    if not _is_activation(activation):
        raise _activation_error(activation)
    if out.shape[0] != Z.shape[0] or out.shape[1] != Z.shape[1]:
        raise _shape_error("out", out, (Z.shape[0], Z.shape[1]))
    if activation == SOFTMAX and Z.shape[1] == 0:
        raise _empty_softmax_error("Z", Z)
    with nogil:
        _activate(_in2(Z), NULL, activation, _out2(out), Z.shape[0], Z.shape[1])


cdef void _activation_grad(const floating* A, const floating* dA, int activation, floating* out,
                           floating* db, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """out = dA * f'(Z), written through A = f(Z), and, unless db is NULL, db = column sums of out,
    row by row while the row is in cache. A, dA, out: (m, n), db: (n,); out may be dA.
    In place on out, dA copied there first when it is another array: as in _activate."""
    cdef Py_ssize_t i, j
    cdef floating a, s, zero = 0, one = 1, slope = <floating>LEAKY_SLOPE
    cdef double dot
    cdef const floating* ar
    cdef floating* o
    if out != dA:
        memmove(out, dA, m * n * sizeof(floating))
    if db != NULL:
        for j in range(n):
            db[j] = 0
    for i in range(m):
        ar = A + i * n
        o = out + i * n
        if activation == SIGMOID:
            for j in range(n):
                a = ar[j]
                o[j] = o[j] * (a * (one - a))
        elif activation == RELU:
            for j in range(n):
                o[j] = o[j] * (one if ar[j] > 0 else zero)  # a multiply, as in NumPy: NaN * 0 is NaN
        elif activation == TANH:
            for j in range(n):
                a = ar[j]
                o[j] = o[j] * (one - a * a)
        elif activation == LEAKY_RELU:
            for j in range(n):
                o[j] = o[j] * (one if ar[j] > 0 else slope)
        elif activation == EXP:
            for j in range(n):
                o[j] = o[j] * ar[j]
        elif activation == SOFTMAX:  # the Jacobian-vector product A * (dA - sum(dA * A, row))
            dot = 0
            for j in range(n):
                dot += o[j] * ar[j]
            s = <floating>dot
            for j in range(n):
                o[j] = ar[j] * (o[j] - s)
        # LINEAR: out already holds dA
        if db != NULL:  # a loop of its own: a test inside the loops above would stop them vectorising
            for j in range(n):
                db[j] += o[j]


def activation_grad(const floating[:, ::1] A not None, const floating[:, ::1] dA not None, int activation,
                    floating[:, ::1] out not None):
    """out = dA * f'(Z), with f' written through A = f(Z). A, dA, out: (batch, n); out may be dA.

    For softmax this is the Jacobian-vector product A * (dA - sum(dA * A, row)).
    """
    if not _is_activation(activation):
        raise _activation_error(activation)
    if dA.shape[0] != A.shape[0] or dA.shape[1] != A.shape[1]:
        raise _shape_error("dA", dA, (A.shape[0], A.shape[1]))
    if out.shape[0] != A.shape[0] or out.shape[1] != A.shape[1]:
        raise _shape_error("out", out, (A.shape[0], A.shape[1]))
    with nogil:
        _activation_grad(_in2(A), _in2(dA), activation, _out2(out), NULL, A.shape[0], A.shape[1])


# ----------------------------------------------------------------------------- dense layer
# Three products: Z = X·W (forward), dW = Xᵀ·dZ and dX = dZ·Wᵀ (backward). BLAS is column-major,
# where a row-major matrix reads as its transpose: the row-major C = op(A)·op(B) is computed as the
# column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, i.e. gemm with the operands swapped (as scikit-learn's _gemm).

cdef void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                floating* C, Py_ssize_t ldc) noexcept nogil:
    """Row-major C (m, n) = op(A) (m, k) · op(B) (k, n), op = transpose when trans_*; ld* are the
    row lengths of the arrays as stored. m, n, k >= 1."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int im = <int>m, jn = <int>n, kk = <int>k, la = <int>lda, lb = <int>ldb, lc = <int>ldc
    cdef floating one = 1, zero = 0
    if floating is float:
        sgemm(&tb, &ta, &jn, &im, &kk, &one, <float*>B, &lb, <float*>A, &la, &zero, C, &lc)
    else:
        dgemm(&tb, &ta, &jn, &im, &kk, &one, <double*>B, &lb, <double*>A, &la, &zero, C, &lc)


cdef void _dot_each(const floating* A, Py_ssize_t a_row, Py_ssize_t a_inner, const floating* B, floating* C,
                    Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """C (m, n) = sum over p < k of A[i*a_row + p*a_inner] * B[p*n + j], one dot product per
    element of C: for outputs too narrow (n < 4) for loops along their rows. The operands as
    fastnn_rows (_microkernels.h) takes them."""
    cdef Py_ssize_t i, j, p
    cdef floating acc
    cdef const floating* a
    for i in range(m):
        a = A + i * a_row
        for j in range(n):
            acc = a[0] * B[j]  # from the first term (k >= 1): the sum from 0, one pass fewer
            for p in range(1, k):
                acc += a[p * a_inner] * B[p * n + j]
            C[i * n + j] = acc


# The three products for a narrow layer (n_out below a vector, see _simd_narrow), each through the
# transposed copy: functions of their own, so that the other paths don't reserve its stack.

cdef void _matmul_narrow(const floating* X, const floating* W, floating* out,
                         Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """out = X·W as the dot products of X's rows with W's columns. X: (m, k), W: (k, n), out: (m, n)."""
    cdef floating wt[NARROW_MAX]
    _transpose(W, wt, k, n)
    _dots(X, wt, out, m, n, k)


cdef void _matmul_tn_narrow(const floating* X, const floating* dZ, floating* dW,
                            Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """dW = Xᵀ·dZ computed as dWᵀ = dZᵀ·X, which streams X's rows. X: (m, k), dZ: (m, n), dW: (k, n)."""
    cdef floating dwt[NARROW_MAX]
    _rows(dZ, 1, n, X, dwt, n, m, k)  # row j of dWᵀ reads column j of dZ
    _transpose(dwt, dW, n, k)


cdef void _matmul_nt_narrow(const floating* dZ, const floating* W, floating* dX,
                            Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dX = dZ·Wᵀ, streaming the rows of Wᵀ. dZ: (m, n), W: (k, n), dX: (m, k)."""
    cdef floating wt[NARROW_MAX]
    _transpose(W, wt, k, n)
    _rows(dZ, n, 1, wt, dX, m, n, k)


cdef void _matmul(const floating* X, const floating* W, floating* out,
                  Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """out = X·W. X: (m, k), W: (k, n), out: (m, n)."""
    cdef Py_ssize_t i, p, j
    cdef floating x0, x1, x2, x3
    cdef const floating* w
    cdef floating* o
    if m == 0 or n == 0:
        return
    if k == 0:
        memset(out, 0, m * n * sizeof(floating))
        return
    if _simd_fits(m * n * k, n, k * n, sizeof(floating)):
        _rows(X, k, 1, W, out, m, k, n)
        return
    if _simd_narrow(m * n * k, n, k, sizeof(floating)):
        _matmul_narrow(X, W, out, m, k, n)
        return
    if m * n * k > GEMM_CROSSOVER and m > 1:
        _gemm(False, False, m, n, k, X, k, W, n, out, n)
        return
    if n < 4:  # rows too narrow for the j-loops below to pay their setup
        _dot_each(X, k, 1, W, out, m, k, n)
        return
    # k-i-j, four rows of W per pass: each group of rows of W is read once (it stays in L1 while
    # every row of out takes its share), and the inner loops stream rows of W into a row of out.
    p = 4 if k >= 4 else 1
    for i in range(m):  # the first pass sets out
        o = out + i * n
        if k >= 4:
            x0 = X[i * k]; x1 = X[i * k + 1]; x2 = X[i * k + 2]; x3 = X[i * k + 3]
            for j in range(n):
                o[j] = x0 * W[j] + x1 * W[n + j] + x2 * W[2 * n + j] + x3 * W[3 * n + j]
        else:
            x0 = X[i * k]
            for j in range(n):
                o[j] = x0 * W[j]
    while p + 4 <= k:
        w = W + p * n
        for i in range(m):
            o = out + i * n
            x0 = X[i * k + p]; x1 = X[i * k + p + 1]; x2 = X[i * k + p + 2]; x3 = X[i * k + p + 3]
            for j in range(n):
                o[j] += x0 * w[j] + x1 * w[n + j] + x2 * w[2 * n + j] + x3 * w[3 * n + j]
        p += 4
    while p < k:
        w = W + p * n
        for i in range(m):
            o = out + i * n
            x0 = X[i * k + p]
            for j in range(n):
                o[j] += x0 * w[j]
        p += 1


cdef void _matmul_tn(const floating* X, const floating* dZ, floating* dW,
                     Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """dW = Xᵀ·dZ. X: (m, k), dZ: (m, n), dW: (k, n)."""
    cdef Py_ssize_t i, p, j
    cdef floating x0, x1, x2, x3
    cdef const floating* d
    cdef floating* o
    if k == 0 or n == 0:
        return
    if m == 0:
        memset(dW, 0, k * n * sizeof(floating))
        return
    if _simd_fits(m * n * k, n, m * n, sizeof(floating)):  # row p of dW reads column p of X
        _rows(X, 1, k, dZ, dW, k, m, n)
        return
    if _simd_narrow(m * n * k, n, k, sizeof(floating)):
        _matmul_tn_narrow(X, dZ, dW, m, k, n)
        return
    if m * n * k > GEMM_CROSSOVER and m > 1:
        _gemm(True, False, k, n, m, X, k, dZ, n, dW, n)
        return
    if n < 4:  # as in _matmul; row p of dW reads column p of X
        _dot_each(X, 1, k, dZ, dW, k, m, n)
        return
    # Sum over the batch of outer products X[i]ᵀ·dZ[i], four batch rows per pass; the inner loops
    # stream rows of dZ into a row of dW.
    for p in range(k):  # the first pass sets dW
        o = dW + p * n
        if m >= 4:
            x0 = X[p]; x1 = X[k + p]; x2 = X[2 * k + p]; x3 = X[3 * k + p]
            for j in range(n):
                o[j] = x0 * dZ[j] + x1 * dZ[n + j] + x2 * dZ[2 * n + j] + x3 * dZ[3 * n + j]
        else:
            x0 = X[p]
            for j in range(n):
                o[j] = x0 * dZ[j]
    i = 4 if m >= 4 else 1
    while i + 4 <= m:
        d = dZ + i * n
        for p in range(k):
            o = dW + p * n
            x0 = X[i * k + p]; x1 = X[(i + 1) * k + p]; x2 = X[(i + 2) * k + p]; x3 = X[(i + 3) * k + p]
            for j in range(n):
                o[j] += x0 * d[j] + x1 * d[n + j] + x2 * d[2 * n + j] + x3 * d[3 * n + j]
        i += 4
    while i < m:
        d = dZ + i * n
        for p in range(k):
            o = dW + p * n
            x0 = X[i * k + p]
            for j in range(n):
                o[j] += x0 * d[j]
        i += 1


cdef void _matmul_nt(const floating* dZ, const floating* W, floating* dX,
                     Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dX = dZ·Wᵀ. dZ: (m, n), W: (k, n), dX: (m, k)."""
    cdef Py_ssize_t i, p, j
    cdef floating g, acc0, acc1, acc2, acc3
    cdef const floating* d
    cdef const floating* w
    if m == 0 or k == 0:
        return
    if n == 0:
        memset(dX, 0, m * k * sizeof(floating))
        return
    if _simd_fits(m * n * k, n, k * n, sizeof(floating)):
        _dots(dZ, W, dX, m, k, n)
        return
    if _simd_narrow(m * n * k, n, k, sizeof(floating)):
        _matmul_nt_narrow(dZ, W, dX, m, n, k)
        return
    if m * n * k > GEMM_CROSSOVER and m > 1:
        _gemm(False, True, m, k, n, dZ, n, W, n, dX, k)
        return
    # Each dX[i, p] is the dot product of two contiguous rows, dZ[i] and W[p]. Four rows of W per
    # pass share the loads of dZ[i], and each group of rows of W is read once (it stays in L1).
    # Each sum starts from its first term (n >= 1 here), as in _dot_each.
    p = 0
    while p + 4 <= k:
        w = W + p * n
        for i in range(m):
            d = dZ + i * n
            g = d[0]
            acc0 = g * w[0]; acc1 = g * w[n]; acc2 = g * w[2 * n]; acc3 = g * w[3 * n]
            for j in range(1, n):
                g = d[j]
                acc0 += g * w[j]; acc1 += g * w[n + j]; acc2 += g * w[2 * n + j]; acc3 += g * w[3 * n + j]
            dX[i * k + p] = acc0; dX[i * k + p + 1] = acc1; dX[i * k + p + 2] = acc2; dX[i * k + p + 3] = acc3
        p += 4
    while p < k:
        w = W + p * n
        for i in range(m):
            d = dZ + i * n
            acc0 = d[0] * w[0]
            for j in range(1, n):
                acc0 += d[j] * w[j]
            dX[i * k + p] = acc0
        p += 1


cdef void _dense_forward(const floating* X, const floating* W, const floating* b, int activation, floating* out,
                         Py_ssize_t batch, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    _matmul(X, W, out, batch, n_in, n_out)
    _activate(out, b, activation, out, batch, n_out)  # + b and f in one pass


def dense_forward(const floating[:, ::1] X not None, const floating[:, ::1] W not None,
                  const floating[::1] b not None, int activation, floating[:, ::1] out not None):
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out)."""
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    if b.shape[0] != W.shape[1]:
        raise _shape_error("b", b, (W.shape[1],))
    if out.shape[0] != X.shape[0] or out.shape[1] != W.shape[1]:
        raise _shape_error("out", out, (X.shape[0], W.shape[1]))
    if not _is_activation(activation):
        raise _activation_error(activation)
    if activation == SOFTMAX and out.shape[1] == 0:
        raise _empty_softmax_error("out", out)
    with nogil:
        _dense_forward(_in2(X), _in2(W), _in1(b), activation, _out2(out), X.shape[0], X.shape[1], W.shape[1])


cdef void _dense_backward(const floating* X, const floating* W, const floating* A, const floating* dA,
                          int activation, floating* dZ, floating* dW, floating* db, floating* dX,
                          Py_ssize_t batch, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """As dense_backward; dX NULL: no input gradient."""
    _activation_grad(A, dA, activation, dZ, db, batch, n_out)  # dZ and db in one pass
    _matmul_tn(X, dZ, dW, batch, n_in, n_out)
    if dX != NULL:
        _matmul_nt(dZ, W, dX, batch, n_out, n_in)


def dense_backward(const floating[:, ::1] X not None, const floating[:, ::1] W not None,
                   const floating[:, ::1] A not None, const floating[:, ::1] dA not None, int activation,
                   floating[:, ::1] dZ not None, floating[:, ::1] dW not None, floating[::1] db not None,
                   floating[:, ::1] dX=None):
    """Backward pass of one dense layer whose forward was A = f(X @ W + b).

    dZ = dA * f'(Z) (dZ may be dA), db = sum over the batch of dZ, dW = X.T @ dZ, and, unless
    dX is None (the network's input needs no gradient), dX = dZ @ W.T.
    X: (batch, n_in), W: (n_in, n_out), A, dA, dZ: (batch, n_out), dW: (n_in, n_out),
    db: (n_out,), dX: (batch, n_in) or None.
    """
    cdef Py_ssize_t batch = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in:
        raise _shape_error("W", W, (n_in, n_out))
    if A.shape[0] != batch or A.shape[1] != n_out:
        raise _shape_error("A", A, (batch, n_out))
    if dW.shape[0] != n_in or dW.shape[1] != n_out:
        raise _shape_error("dW", dW, (n_in, n_out))
    if db.shape[0] != n_out:
        raise _shape_error("db", db, (n_out,))
    if not _is_activation(activation):
        raise _activation_error(activation)
    if dA.shape[0] != batch or dA.shape[1] != n_out:
        raise _shape_error("dA", dA, (batch, n_out))
    if dZ.shape[0] != batch or dZ.shape[1] != n_out:
        raise _shape_error("dZ", dZ, (batch, n_out))
    cdef floating* input_grad = NULL
    if dX is not None:
        if dX.shape[0] != batch or dX.shape[1] != n_in:
            raise _shape_error("dX", dX, (batch, n_in))
        input_grad = _out2(dX)  # NULL also when empty: nothing to write
    with nogil:
        _dense_backward(_in2(X), _in2(W), _in2(A), _in2(dA), activation, _out2(dZ), _out2(dW), _out1(db),
                        input_grad, batch, n_in, n_out)


# ----------------------------------------------------------------------------- losses
# Each loss is a mean over rows, weighted when sample_weight (batch,) is given: sum_i w_i loss_i /
# sum_i w_i (unweighted: every w_i = 1). The gradient written is that of the returned loss.
# The workers take w = NULL for no weights and return the (weighted) mean.

cdef inline double _weight_sum(const floating* w, Py_ssize_t m) noexcept nogil:
    cdef double total = 0
    cdef Py_ssize_t i
    if w == NULL:
        return <double>m
    for i in range(m):
        total += w[i]
    return total


cdef double _sigmoid_bce(const floating* Z, const floating* Y, const floating* w, floating* dZ, Py_ssize_t m,
                         Py_ssize_t n) noexcept nogil:
    # Each element's loss is max(z, 0) - z*y + log1p(e), e = exp(-|z|): finite for every finite z.
    # Unweighted, the log1p terms are summed as one log1p(q), 1 + q = prod(1 + e): one call per
    # batch, not per element (the XOR net's epoch spent 1/6 of its time in log1p). q += e + q*e
    # adds positive terms only, so it loses no digits; it is flushed into the sum long before it
    # could overflow (each factor is at most 2).
    cdef Py_ssize_t i, j
    cdef floating z, y, e, wi = 1, zero = 0, one = 1
    cdef double w_sum = _weight_sum(w, m), loss_sum = 0, q = 0
    cdef floating scale = <floating>(1 / (w_sum * n))  # a multiply per element, not a second divide
    for i in range(m):
        if w != NULL:
            wi = w[i]
        for j in range(i * n, i * n + n):
            z = Z[j]
            y = Y[j]
            e = _exp(-_abs(z))
            if w == NULL:
                loss_sum += (zero if z < 0 else z) - z * y
                q += e + q * e
                if q > 1e100:
                    loss_sum += log1p(q)
                    q = 0
            else:
                loss_sum += (((zero if z < 0 else z) - z * y) + _log1p(e)) * wi
            dZ[j] = ((one if z >= 0 else e) / (one + e) - y) * (wi * scale)  # w (sigmoid(z) - y) / (n sum(w))
    return (loss_sum + log1p(q)) / (w_sum * n)


cdef inline const floating* _weights_ptr(object sample_weight, Py_ssize_t m, floating kind) except? NULL:
    """The data of sample_weight (None, or (m,) of the loss' dtype) for a worker, after its check.
    `kind` is only there to pick the float or double version of this fused function."""
    cdef const floating[::1] w
    if sample_weight is None:
        return NULL
    w = sample_weight
    if w.shape[0] != m:
        raise _shape_error("sample_weight", w, (m,))
    return &w[0] if m else NULL


cdef const floating* _check_loss_args(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] dZ,
                                      str d_name, object sample_weight) except? NULL:
    """The checks of a loss on Z with targets Y and gradient dZ (all (batch, n)); returns the
    weights' data (NULL: unweighted)."""
    if Y.shape[0] != Z.shape[0] or Y.shape[1] != Z.shape[1]:
        raise _shape_error("Y", Y, (Z.shape[0], Z.shape[1]))
    if dZ.shape[0] != Z.shape[0] or dZ.shape[1] != Z.shape[1]:
        raise _shape_error(d_name, dZ, (Z.shape[0], Z.shape[1]))
    return _weights_ptr(sample_weight, Z.shape[0], <floating>0)


def sigmoid_bce(const floating[:, ::1] Z not None, const floating[:, ::1] Y not None,
                floating[:, ::1] dZ not None, sample_weight=None):
    """Binary cross-entropy of sigmoid(Z) against Y, from the logits Z; mean over all elements.

    Writes dZ = w (sigmoid(Z) - Y) / (n_out sum(w)) ((sigmoid(Z) - Y) / Z.size unweighted) and
    returns the loss. Z, Y, dZ: (batch, n_out); sample_weight: (batch,) or None.
    """
    cdef const floating* w = _check_loss_args(Z, Y, dZ, "dZ", sample_weight)
    if Z.shape[0] * Z.shape[1] == 0:
        raise _empty_mean_error()
    cdef double loss
    with nogil:
        loss = _sigmoid_bce(_in2(Z), _in2(Y), w, _out2(dZ), Z.shape[0], Z.shape[1])
    return loss


cdef double _softmax_cce(const floating* Z, const floating* Y, const floating* w, floating* dZ, Py_ssize_t m,
                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating top, shifted, e, y, total, log_sum, y_sum, wi = 1
    cdef double sum_e, sum_y, w_sum = _weight_sum(w, m), loss_sum = 0
    cdef floating denom = <floating>w_sum
    # Each exp is computed once and kept in d, unless d is Z (in place): z is still needed then.
    cdef bint keep = dZ != Z
    cdef const floating* z
    cdef const floating* t
    cdef floating* d
    for i in range(m):
        z = Z + i * n
        t = Y + i * n
        d = dZ + i * n
        if w != NULL:
            wi = w[i]
        top = _row_max(z, n)
        sum_e = 0
        sum_y = 0
        for j in range(n):
            e = _exp(z[j] - top)
            if keep:
                d[j] = e
            sum_e += e
            sum_y += t[j]
        total = <floating>sum_e
        log_sum = _log(total)
        y_sum = <floating>sum_y
        for j in range(n):  # reads z[j] and t[j] before writing d[j]
            shifted = z[j] - top
            e = d[j] if keep else _exp(shifted)
            y = t[j]
            # -sum_j y_j log p_j with log p_j = shifted_j - log_sum (log-sum-exp, no log of 0).
            loss_sum += (y * (log_sum - shifted)) * wi
            d[j] = ((((e / total) * y_sum) - y) * wi) / denom
    return loss_sum / w_sum


def softmax_cce(const floating[:, ::1] Z not None, const floating[:, ::1] Y not None,
                floating[:, ::1] dZ not None, sample_weight=None):
    """Categorical cross-entropy of softmax(Z) against Y (rows of class probabilities, one-hot
    usually), from the logits; mean over the batch of each row's sum.

    Writes dZ = w (softmax(Z) * sum(Y, row) - Y) / sum(w) (p - y over batch for one-hot rows,
    unweighted) and returns the loss. Z, Y, dZ: (batch, n_classes); sample_weight: (batch,) or None.
    """
    cdef const floating* w = _check_loss_args(Z, Y, dZ, "dZ", sample_weight)
    if Z.shape[1] == 0:
        raise _empty_softmax_error("Z", Z)
    if Z.shape[0] == 0:
        raise _empty_mean_error()
    cdef double loss
    with nogil:
        loss = _softmax_cce(_in2(Z), _in2(Y), w, _out2(dZ), Z.shape[0], Z.shape[1])
    return loss


cdef bint _in_range(const int64_t* values, Py_ssize_t size, Py_ssize_t n) noexcept nogil:
    """Every value in [0, n): class labels, and train_epochs' row orders."""
    cdef Py_ssize_t i
    for i in range(size):
        if values[i] < 0 or values[i] >= n:
            return False
    return True


cdef double _softmax_sparse_cce(const floating* Z, const int64_t* labels, const floating* w, floating* dZ,
                                Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j, label
    cdef floating top, total, shifted_label, e_label, wi = 1, one = 1
    cdef double sum_e, w_sum = _weight_sum(w, m), loss_sum = 0
    cdef floating denom = <floating>w_sum
    cdef const floating* z
    cdef floating* d
    for i in range(m):
        z = Z + i * n
        d = dZ + i * n
        if w != NULL:
            wi = w[i]
        top = _row_max(z, n)
        label = <Py_ssize_t>labels[i]
        shifted_label = z[label] - top  # read before d overwrites it: dZ may be Z
        sum_e = 0
        for j in range(n):  # each exp once (a libm call costs more than the rest of the row's work)
            d[j] = _exp(z[j] - top)
            sum_e += d[j]
        total = <floating>sum_e
        loss_sum += (_log(total) - shifted_label) * wi
        e_label = d[label]
        for j in range(n):
            d[j] = ((d[j] / total) * wi) / denom
        d[label] = ((e_label / total - one) * wi) / denom
    return loss_sum / w_sum


def softmax_sparse_cce(const floating[:, ::1] Z not None, const int64_t[::1] labels not None,
                       floating[:, ::1] dZ not None, sample_weight=None):
    """softmax_cce with integer class labels instead of one-hot rows.

    labels: (batch,) int64, each in [0, n_classes) (checked here, as in the pure-Python twin).
    Z, dZ: (batch, n_classes); sample_weight: (batch,) or None.
    """
    if labels.shape[0] != Z.shape[0]:
        raise _shape_error("labels", labels, (Z.shape[0],))
    if dZ.shape[0] != Z.shape[0] or dZ.shape[1] != Z.shape[1]:
        raise _shape_error("dZ", dZ, (Z.shape[0], Z.shape[1]))
    if not _in_range(_labels_ptr(labels), labels.shape[0], Z.shape[1]):
        raise _label_range_error(Z.shape[1])
    cdef const floating* w = _weights_ptr(sample_weight, Z.shape[0], <floating>0)
    if Z.shape[1] == 0:
        raise _empty_softmax_error("Z", Z)
    if Z.shape[0] == 0:
        raise _empty_mean_error()
    cdef double loss
    with nogil:
        loss = _softmax_sparse_cce(_in2(Z), _labels_ptr(labels), w, _out2(dZ), Z.shape[0], Z.shape[1])
    return loss


cdef double _mse(const floating* A, const floating* Y, const floating* w, floating* dA, Py_ssize_t m,
                 Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating d, wi = 1
    cdef double w_sum = _weight_sum(w, m), loss_sum = 0
    cdef floating denom = <floating>(w_sum * n / 2.0)
    for i in range(m):
        if w != NULL:
            wi = w[i]
        for j in range(i * n, i * n + n):
            d = A[j] - Y[j]
            loss_sum += (<double>d * d) * wi
            dA[j] = (d * wi) / denom
    return loss_sum / (w_sum * n)


def mse(const floating[:, ::1] A not None, const floating[:, ::1] Y not None, floating[:, ::1] dA not None,
        sample_weight=None):
    """Mean squared error over all elements. Writes dA = 2 w (A - Y) / (n_out sum(w))
    (2 (A - Y) / A.size unweighted), returns the loss. A, Y, dA: (batch, n_out);
    sample_weight: (batch,) or None."""
    cdef const floating* w = _check_loss_args(A, Y, dA, "dA", sample_weight)
    if A.shape[0] * A.shape[1] == 0:
        raise _empty_mean_error()
    cdef double loss
    with nogil:
        loss = _mse(_in2(A), _in2(Y), w, _out2(dA), A.shape[0], A.shape[1])
    return loss


cdef double _poisson_nll(const floating* Z, const floating* Y, const floating* w, floating* dZ, Py_ssize_t m,
                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating z, y, e, y_log_y, wi = 1, zero = 0
    cdef double w_sum = _weight_sum(w, m), loss_sum = 0
    cdef floating denom = <floating>(w_sum * n)
    for i in range(m):
        if w != NULL:
            wi = w[i]
        for j in range(i * n, i * n + n):
            z = Z[j]
            y = Y[j]
            e = _exp(z)
            y_log_y = y * _log(y) if y > 0 else zero  # 0 log 0 = 0, as scipy's xlogy
            loss_sum += ((e - y * z) + (y_log_y - y)) * wi
            dZ[j] = ((e - y) * wi) / denom
    return loss_sum / (w_sum * n)


def poisson_nll(const floating[:, ::1] Z not None, const floating[:, ::1] Y not None,
                floating[:, ::1] dZ not None, sample_weight=None):
    """Half the Poisson deviance of the rates exp(Z) against counts Y >= 0, from the log-rates Z;
    mean over all elements: exp(z) - y z + y log(y) - y (scikit-learn's poisson_loss per element).

    Writes dZ = w (exp(Z) - Y) / (n_out sum(w)) and returns the loss. exp(Z) overflows to inf for
    Z > ~709 (float64), which the caller's finiteness check reports.
    Z, Y, dZ: (batch, n_out); sample_weight: (batch,) or None.
    """
    cdef const floating* w = _check_loss_args(Z, Y, dZ, "dZ", sample_weight)
    if Z.shape[0] * Z.shape[1] == 0:
        raise _empty_mean_error()
    cdef double loss
    with nogil:
        loss = _poisson_nll(_in2(Z), _in2(Y), w, _out2(dZ), Z.shape[0], Z.shape[1])
    return loss


# ----------------------------------------------------------------------------- accuracy counts

cdef inline Py_ssize_t _row_argmax(const floating* z, Py_ssize_t n) noexcept nogil:
    """argmax(z[:n]) as np.argmax computes it: the first maximum, or the first NaN. n >= 1."""
    cdef Py_ssize_t j, best = 0
    cdef floating top = z[0]
    if top != top:
        return 0
    for j in range(1, n):
        if z[j] != z[j]:
            return j
        if z[j] > top:
            top = z[j]
            best = j
    return best


cdef Py_ssize_t _binary_correct(const floating* Z, const floating* Y, Py_ssize_t m,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    cdef floating half = 0.5
    for i in range(m * n):
        count += (Z[i] > 0) == (Y[i] > half)
    return count


def binary_correct(const floating[:, ::1] Z not None, const floating[:, ::1] Y not None):
    """How many elements the logits put on the right side: (Z > 0) == (Y > 0.5). Z, Y: (batch, n)."""
    if Y.shape[0] != Z.shape[0] or Y.shape[1] != Z.shape[1]:
        raise _shape_error("Y", Y, (Z.shape[0], Z.shape[1]))
    cdef Py_ssize_t count
    with nogil:
        count = _binary_correct(_in2(Z), _in2(Y), Z.shape[0], Z.shape[1])
    return count


cdef Py_ssize_t _categorical_correct(const floating* Z, const floating* Y, Py_ssize_t m,
                                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    for i in range(m):
        count += _row_argmax(Z + i * n, n) == _row_argmax(Y + i * n, n)
    return count


def categorical_correct(const floating[:, ::1] Z not None, const floating[:, ::1] Y not None):
    """How many rows have argmax Z == argmax Y (first maximum on ties). Z, Y: (batch, n)."""
    if Y.shape[0] != Z.shape[0] or Y.shape[1] != Z.shape[1]:
        raise _shape_error("Y", Y, (Z.shape[0], Z.shape[1]))
    if Z.shape[1] == 0:
        raise _empty_argmax_error("Z", Z)
    cdef Py_ssize_t count
    with nogil:
        count = _categorical_correct(_in2(Z), _in2(Y), Z.shape[0], Z.shape[1])
    return count


cdef Py_ssize_t _sparse_correct(const floating* Z, const int64_t* labels, Py_ssize_t m,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    for i in range(m):
        count += _row_argmax(Z + i * n, n) == labels[i]
    return count


def sparse_correct(const floating[:, ::1] Z not None, const int64_t[::1] labels not None):
    """How many rows have argmax Z == label. Z: (batch, n), labels: (batch,) int64."""
    if labels.shape[0] != Z.shape[0]:
        raise _shape_error("labels", labels, (Z.shape[0],))
    if Z.shape[1] == 0:
        raise _empty_argmax_error("Z", Z)
    cdef Py_ssize_t count
    with nogil:
        count = _sparse_correct(_in2(Z), _labels_ptr(labels), Z.shape[0], Z.shape[1])
    return count


# ----------------------------------------------------------------------------- optimizer steps
# Parameters, gradients and optimizer state are flat 1-D buffers of equal length: the model keeps
# every layer's W and b as views into one buffer, so one call updates the whole network.
# Each step is one pass over the buffers; scalars are cast to the data's dtype first, as in _fallback.

cdef void _sgd_step(floating* param, const floating* grad, Py_ssize_t size, floating lr) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] = param[i] - lr * grad[i]


def sgd_step(floating[::1] param not None, const floating[::1] grad not None, double lr):
    """param -= lr * grad."""
    if grad.shape[0] != param.shape[0]:
        raise _shape_error("grad", grad, (param.shape[0],))
    with nogil:
        _sgd_step(_out1(param), _in1(grad), param.shape[0], <floating>lr)


cdef void _momentum_step(floating* param, const floating* grad, floating* velocity, Py_ssize_t size,
                         floating lr, floating momentum, bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    if nesterov:  # two loops, not a test inside one: a loop with a branch in it does not vectorise
        for i in range(size):
            v = velocity[i] * momentum - lr * grad[i]
            velocity[i] = v
            param[i] = param[i] + (momentum * v - lr * grad[i])
    else:
        for i in range(size):
            v = velocity[i] * momentum - lr * grad[i]
            velocity[i] = v
            param[i] = param[i] + v


def momentum_step(floating[::1] param not None, const floating[::1] grad not None,
                  floating[::1] velocity not None, double lr, double momentum, bint nesterov=False):
    """SGD with momentum as Keras and scikit-learn write it: velocity = momentum * velocity - lr * grad;
    param += velocity, or with Nesterov's momentum param += momentum * velocity - lr * grad."""
    if grad.shape[0] != param.shape[0]:
        raise _shape_error("grad", grad, (param.shape[0],))
    if velocity.shape[0] != param.shape[0]:
        raise _shape_error("velocity", velocity, (param.shape[0],))
    with nogil:
        _momentum_step(_out1(param), _in1(grad), _out1(velocity), param.shape[0], <floating>lr,
                       <floating>momentum, nesterov)


cdef void _adam_step(floating* param, const floating* grad, floating* m, floating* v, Py_ssize_t size,
                     double lr, double beta1, double beta2, double eps, long long step) noexcept nogil:
    # Python's float ** int and ** 0.5 are C pow, as here.
    cdef double step_size = lr * pow(1 - pow(beta2, <double>step), 0.5) / (1 - pow(beta1, <double>step))
    cdef floating b1 = <floating>beta1, c1 = <floating>(1 - beta1), b2 = <floating>beta2
    cdef floating c2 = <floating>(1 - beta2), s = <floating>step_size
    cdef floating e = <floating>eps, g, mi, vi
    cdef Py_ssize_t i
    for i in range(size):
        g = grad[i]
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * g * g
        m[i] = mi
        v[i] = vi
        param[i] = param[i] - s * mi / (_sqrt(vi) + e)


def adam_step(floating[::1] param not None, const floating[::1] grad not None, floating[::1] m not None,
              floating[::1] v not None, double lr, double beta1, double beta2, double eps, long long step):
    """Adam (Kingma & Ba, section 2's efficient form, as Keras and scikit-learn write it) at step
    number `step` (1 for the first update): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
    param -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)."""
    if grad.shape[0] != param.shape[0]:
        raise _shape_error("grad", grad, (param.shape[0],))
    if m.shape[0] != param.shape[0]:
        raise _shape_error("m", m, (param.shape[0],))
    if v.shape[0] != param.shape[0]:
        raise _shape_error("v", v, (param.shape[0],))
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    with nogil:
        _adam_step(_out1(param), _in1(grad), _out1(m), _out1(v), param.shape[0], lr, beta1, beta2, eps, step)


# ----------------------------------------------------------------------------- whole training runs
# For small networks the cost of training is per call, not per FLOP; train_epochs runs many epochs
# (gather, forward, loss, backward, update for every batch) in one call, without the GIL. It is the
# same sequence of kernels as Sequential's step-by-step path, so both give the same numbers.

cdef inline bint _finite(double x) noexcept nogil:
    return x - x == 0  # false for inf and NaN (no -ffast-math here, so this is not folded away)


cdef bint _all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if not (x[i] - x[i] == 0):
            return False
    return True


_LANE_ACTIVATIONS = {LINEAR: FASTNN_LANE_LINEAR, SIGMOID: FASTNN_LANE_SIGMOID, TANH: FASTNN_LANE_TANH,
                     RELU: FASTNN_LANE_RELU, LEAKY_RELU: FASTNN_LANE_LEAKY_RELU}


def _lane_codes(sizes, codes, int loss, bint weighted, Py_ssize_t item_size):
    """(activation codes, loss code) of _lanes.h when its lanes train this network, else None:
    micro-kernels on, every layer 1 to 64 bytes wide (8 float64, 16 float32: where the micro-kernels
    stop; measured: at 16 float64 wide, 5-16-16-3 ReLU trained 0.75x as fast in the lanes),
    activations linear, sigmoid, tanh, ReLU or leaky ReLU, binary cross-entropy from logits or MSE,
    unweighted rows."""
    if not _simd or weighted or min(sizes) < 1 or max(sizes) * item_size > FASTNN_LANE_MAX_BYTES:
        return None
    if any(code not in _LANE_ACTIVATIONS for code in codes):
        return None
    if loss == BINARY_CROSSENTROPY and codes[len(codes) - 1] == LINEAR:  # (wraparound is off)
        lane_loss = FASTNN_LANE_BCE
    elif loss == MSE:
        lane_loss = FASTNN_LANE_MSE
    else:
        return None
    return np.array([_LANE_ACTIVATIONS[code] for code in codes], np.int64), lane_loss


def train_epochs(const floating[:, ::1] X not None, const floating[:, ::1] Y not None,
                 const int64_t[::1] labels not None, const floating[::1] sample_weight not None,
                 const int64_t[:, ::1] order not None, sizes, codes, int loss, Py_ssize_t batch,
                 floating[::1] params not None, floating[::1] grads not None, int optimizer,
                 floating[::1] state1 not None, floating[::1] state2 not None, const double[::1] hyper not None,
                 long long step, double[::1] epoch_loss not None, int64_t[::1] epoch_correct not None):
    """Train for len(epoch_loss) epochs in one call; returns (epochs finished, optimizer step count).

    X: (n, sizes[0]); Y: (n, sizes[-1]) targets, or (0, sizes[-1]) when `labels` (n,) int64 holds
    class labels (sparse loss; otherwise labels is (0,)). sample_weight: (n,) row weights of X's
    dtype, or (0,) for none. order: (epochs, n) int64 row order of each epoch, or (0, n) to take
    rows in order. sizes: (L+1,) int64 layer widths; codes: (L,) int64 activation codes, the
    output's LINEAR when the loss takes logits; loss: loss code; batch >= 1.
    params, grads: flat (n_params,) buffers, W then b per layer; optimizer: SGD | MOMENTUM | ADAM |
    NESTEROV | GRADIENT_ONLY with state1/state2 (velocity; Adam's m, v; (0,) when unused) and
    hyper = (lr, momentum or beta1, beta2, eps, l2, loss_scale) float64 (6,): each batch's loss and
    its gradient are multiplied by loss_scale, and the L2 penalty l2/2 * sum(W²) / sum(batch
    weights) on the weights (not the biases) is added, as scikit-learn's MLP does; step: the number
    of updates made so far (Adam's t).
    Writes per epoch the mean loss (float64) and the number of correct predictions. If an epoch's loss
    or parameters are not finite, the parameters are put back as they were before that epoch and the
    call returns early: epochs finished < len(epoch_loss), epoch_loss[finished] holds the bad loss.
    """
    sizes = [int(s) for s in sizes]
    codes = [int(c) for c in codes]
    cdef Py_ssize_t n = X.shape[0], epochs = epoch_loss.shape[0]
    _check_train_args(X, Y, labels, sample_weight, order, sizes, codes, loss, batch, params, grads, optimizer,
                      state1, state2, hyper, epoch_correct, epochs, check_values=False)
    n_classes = sizes[len(codes)]  # (no negative indices: wraparound is off in this module)
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY and not _in_range(&labels[0], n, n_classes):
        raise _label_range_error(n_classes)
    if order.shape[0] and not _in_range(&order[0, 0], epochs * n, n):
        raise _order_range_error(n)
    if optimizer == ADAM and step + 1 < 1:  # what _fallback's first adam_step would raise
        raise ValueError(f"step must be >= 1, got {step + 1}")
    cdef Py_ssize_t L = len(codes), rows_max = min(batch, n), n_params = params.shape[0]
    cdef Py_ssize_t n_x = sizes[0], n_y = sizes[L]
    cdef bint sparse = loss == SPARSE_CATEGORICAL_CROSSENTROPY, shuffled = order.shape[0] > 0
    cdef bint weighted = sample_weight.shape[0] > 0
    # Per layer l: width[l] (width[L] is the output's), code[l], the offsets of W and b in params,
    # and the offsets in `work` of its output activation and of the gradient with respect to it.
    offsets, _ = _layout(sizes)
    act_at, delta_at, at = [0], [0], 0
    for width in sizes[1:]:
        act_at.append(at)
        delta_at.append(at + rows_max * width)
        at += 2 * rows_max * width
    table = np.array([sizes, codes + [0], [o[0] for o in offsets] + [0], [o[1] for o in offsets] + [0],
                      act_at, delta_at], np.int64)
    cdef const int64_t[:, ::1] t = table
    # work: activations and their gradients, the gathered batch (X rows, Y rows, weights), the
    # parameters as they were before the epoch.
    cdef Py_ssize_t batch_at = at, targets_at = at + rows_max * n_x, weights_at = targets_at + rows_max * n_y
    cdef Py_ssize_t last_at = weights_at + rows_max
    work_array = np.empty(last_at + n_params, np.float32 if floating is float else np.float64)
    batch_labels = np.empty(rows_max, np.int64)
    cdef floating[::1] work = work_array
    # Tiny networks train a whole batch at a time in the lanes of _lanes.h, with its own scratch.
    lanes = _lane_codes(sizes, codes, loss, weighted, sizeof(floating))
    cdef bint in_lanes = lanes is not None
    cdef const int64_t[::1] lane_codes = lanes[0] if in_lanes else np.zeros(0, np.int64)
    cdef int lane_loss = lanes[1] if in_lanes else 0
    cdef Py_ssize_t lane_scratch = 0
    if in_lanes:
        if floating is float:
            lane_scratch = fastnn_lanes_scratch_f(&t[0, 0], L, n_params)
        else:
            lane_scratch = fastnn_lanes_scratch_d(&t[0, 0], L, n_params)
    lane_work_array = np.zeros(lane_scratch, np.float32 if floating is float else np.float64)
    cdef floating[::1] lane_work = lane_work_array
    cdef const int64_t* rows_at = NULL
    cdef int64_t[::1] label_rows = batch_labels
    cdef floating* w = &work[0]
    cdef floating* P = &params[0]
    cdef floating* G = &grads[0]
    cdef floating* S1 = _out1(state1)
    cdef floating* S2 = _out1(state2)
    cdef double lr = hyper[0], mu_or_beta1 = hyper[1], beta2 = hyper[2], eps = hyper[3], l2 = hyper[4]
    cdef double loss_scale = hyper[5], total, batch_loss, w_sum, penalty
    cdef floating scale_f = <floating>loss_scale, l2_f
    cdef Py_ssize_t epoch, start, rows, r, l, i, idx, finished = epochs, correct
    cdef const floating* x
    cdef const floating* y = NULL
    cdef const floating* sw = NULL
    cdef const int64_t* lab = NULL
    cdef const floating* a
    cdef floating* z
    cdef floating* d
    with nogil:
        for epoch in range(epochs):
            memcpy(w + last_at, P, n_params * sizeof(floating))
            total = 0
            correct = 0
            start = 0
            while start < n:
                rows = min(batch, n - start)
                x = &X[start, 0]
                if sparse:
                    lab = &labels[start]
                else:
                    y = &Y[start, 0]
                if weighted:
                    sw = &sample_weight[start]
                if in_lanes:  # the lanes read the batch's rows where they are
                    if shuffled:
                        x, y, rows_at = &X[0, 0], &Y[0, 0], &order[epoch, start]
                    if floating is float:
                        batch_loss = fastnn_lanes_batch_f(x, y, rows_at, rows, &t[0, 0], &lane_codes[0], L,
                                                          lane_loss, loss_scale, <float>LEAKY_SLOPE, P, G,
                                                          &lane_work[0], n_params, &correct)
                    else:
                        batch_loss = fastnn_lanes_batch_d(x, y, rows_at, rows, &t[0, 0], &lane_codes[0], L,
                                                          lane_loss, loss_scale, LEAKY_SLOPE, P, G,
                                                          &lane_work[0], n_params, &correct)
                else:
                    if shuffled:  # gather this batch's rows
                        for r in range(rows):
                            idx = <Py_ssize_t>order[epoch, start + r]
                            memcpy(w + batch_at + r * n_x, &X[idx, 0], n_x * sizeof(floating))
                            if sparse:
                                label_rows[r] = labels[idx]
                            else:
                                memcpy(w + targets_at + r * n_y, &Y[idx, 0], n_y * sizeof(floating))
                            if weighted:
                                w[weights_at + r] = sample_weight[idx]
                        x = w + batch_at
                        y = w + targets_at
                        lab = &label_rows[0]
                        if weighted:
                            sw = w + weights_at
                    a = x
                    for l in range(L):
                        z = w + t[4, l + 1]
                        _dense_forward(a, P + t[2, l], P + t[3, l], <int>t[1, l], z, rows, t[0, l], t[0, l + 1])
                        a = z
                    d = w + t[5, L]
                    if loss == BINARY_CROSSENTROPY:
                        batch_loss = _sigmoid_bce(a, y, sw, d, rows, n_y)
                        correct += _binary_correct(a, y, rows, n_y)
                    elif loss == CATEGORICAL_CROSSENTROPY:
                        batch_loss = _softmax_cce(a, y, sw, d, rows, n_y)
                        correct += _categorical_correct(a, y, rows, n_y)
                    elif loss == SPARSE_CATEGORICAL_CROSSENTROPY:
                        batch_loss = _softmax_sparse_cce(a, lab, sw, d, rows, n_y)
                        correct += _sparse_correct(a, lab, rows, n_y)
                    elif loss == MSE:
                        batch_loss = _mse(a, y, sw, d, rows, n_y)
                    else:  # POISSON
                        batch_loss = _poisson_nll(a, y, sw, d, rows, n_y)
                    if loss_scale != 1.0:
                        for i in range(rows * n_y):
                            d[i] = d[i] * scale_f
                    for l in range(L - 1, -1, -1):
                        d = w + t[5, l + 1]
                        _dense_backward(x if l == 0 else w + t[4, l], P + t[2, l], w + t[4, l + 1], d, <int>t[1, l],
                                        d, G + t[2, l], G + t[3, l], NULL if l == 0 else w + t[5, l],
                                        rows, t[0, l], t[0, l + 1])
                if loss_scale != 1.0:
                    batch_loss = batch_loss * loss_scale
                if l2 != 0.0:  # scikit-learn's penalty: on the weights, over the batch's weight sum
                    w_sum = _weight_sum(sw, rows)
                    l2_f = <floating>(l2 / w_sum)
                    for l in range(L):
                        penalty = 0
                        for i in range(t[2, l], t[3, l]):
                            G[i] = G[i] + l2_f * P[i]
                            penalty += <double>P[i] * P[i]
                        batch_loss = batch_loss + 0.5 * l2 * penalty / w_sum
                total += batch_loss * rows
                start += rows
                if optimizer == GRADIENT_ONLY:
                    continue
                step += 1
                if optimizer == SGD:
                    _sgd_step(P, G, n_params, <floating>lr)
                elif optimizer == MOMENTUM or optimizer == NESTEROV:
                    _momentum_step(P, G, S1, n_params, <floating>lr, <floating>mu_or_beta1, optimizer == NESTEROV)
                else:
                    _adam_step(P, G, S1, S2, n_params, lr, mu_or_beta1, beta2, eps, step)
            epoch_loss[epoch] = total / n
            epoch_correct[epoch] = correct
            if not (_finite(epoch_loss[epoch]) and _all_finite(P, n_params)):
                memcpy(P, w + last_at, n_params * sizeof(floating))
                finished = epoch
                break
    return finished, step
