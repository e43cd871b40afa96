# The three products of a dense layer, Z = X·W (forward), dW = Xᵀ·dZ and dX = dZ·Wᵀ (backward), and
# the one place that chooses how each is computed (_path):
#   ROWS      the AVX2 + FMA micro-kernels (microkernels.h; AVX-512 where the CPU has it) for small products whose streamed operand
#             (the one read as vectors: W in X·W and dZ·Wᵀ, dZ in Xᵀ·dZ) is at least two vectors
#             wide and fits in L1: no packing, no per-call cost; dZ·Wᵀ streams the rows of a
#             transposed copy of W when it fits on the stack (NARROW_MAX), else takes the dot
#             products of rows (`dots`), which reduce every output across a vector;
#   NARROW    the same kernels through a transposed copy of W for layers narrower than a vector
#             (a classifier's 1-10 outputs), whose inputs are the wide side; and, at AVX-512's
#             width, dZ·Wᵀ at any batch while W fits the stack, where streaming Wᵀ's rows beats BLAS;
#   GEMM      BLAS (scipy.linalg.cython_blas) beyond GEMM_CROSSOVER multiply-adds, where its cache
#             blocking wins, unless the batch is one row (gemm packs all of W for it); a tall
#             product of a narrow layer by blocks of rows (_tall_block);
#   DOT_EACH  one dot product per output element, for outputs too narrow (n < 4) for row loops;
#   LOOPS     portable loops that stream rows of the right-hand operand into a row of the output.
# bench/bench_kernels.py times the dense kernels at shapes on each path (and with the micro-kernels off).
# BLAS is column-major, where a row-major matrix reads as its transpose: the row-major
# C = op(A)·op(B) is computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ (as scikit-learn's _gemm).

cdef extern from "microkernels.h" nogil:
    void fastnn_rows_f(const float* A, Py_ssize_t a_row, Py_ssize_t a_inner, const float* B, float* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_rows_d(const double* A, Py_ssize_t a_row, Py_ssize_t a_inner, const double* B, double* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_rows_f512(const float* A, Py_ssize_t a_row, Py_ssize_t a_inner, const float* B, float* C,
                          Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_rows_d512(const double* A, Py_ssize_t a_row, Py_ssize_t a_inner, const double* B, double* C,
                          Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_rows_relu_f(const float* A, Py_ssize_t a_row, Py_ssize_t a_inner, const float* B, float* C,
                            Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const float* act, float* db)
    void fastnn_rows_relu_d(const double* A, Py_ssize_t a_row, Py_ssize_t a_inner, const double* B, double* C,
                            Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const double* act, double* db)
    void fastnn_rows_relu_f512(const float* A, Py_ssize_t a_row, Py_ssize_t a_inner, const float* B, float* C,
                               Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const float* act, float* db)
    void fastnn_rows_relu_d512(const double* A, Py_ssize_t a_row, Py_ssize_t a_inner, const double* B, double* C,
                               Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const double* act, double* db)
    void fastnn_dots_f(const float* P, const float* Q, float* C, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_dots_d(const double* P, const double* Q, double* C, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_dots_f512(const float* P, const float* Q, float* C, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
    void fastnn_dots_d512(const double* P, const double* Q, double* C, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)

cdef Py_ssize_t GEMM_CROSSOVER = 1024  # m*n*k
cdef Py_ssize_t SIMD_MAX_PRODUCT = 1 << 16  # m*n*k
cdef Py_ssize_t SIMD_MAX_OPERAND = 1 << 15  # bytes of the streamed operand: L1

cdef enum:
    NARROW_MAX = 4096  # elements of NARROW's transposed copy on the stack: 32 KB of float64
    BLAS_SMALL = 1000000  # m*n*k: OpenBLAS's limit for its small-matrix kernels (AVX-512 builds)
    TALL_MIN_ROWS = 128  # rows: below this, blocks cost more calls than they save

cdef enum:
    ROWS, NARROW, GEMM, DOT_EACH, LOOPS


cdef inline int _path(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, Py_ssize_t streamed, bint dot_each,
                      Py_ssize_t item_size) noexcept nogil:
    """How to compute a product of a layer of k inputs and n outputs for a batch of m rows
    (m, n, k >= 1); streamed: the elements of the operand the micro-kernels read as vectors;
    dot_each: whether DOT_EACH suits this product."""
    cdef Py_ssize_t product = m * n * k
    if _simd and product <= SIMD_MAX_PRODUCT:
        if n * item_size >= 64 and streamed * item_size <= SIMD_MAX_OPERAND:
            return ROWS
        if n * item_size < 64 and k * item_size >= 64 and n * k <= NARROW_MAX:
            return NARROW
    if product > GEMM_CROSSOVER and m > 1:
        return GEMM
    if dot_each and n < 4:
        return DOT_EACH
    return LOOPS


cdef inline void _rows(const floating* A, Py_ssize_t a_row, Py_ssize_t a_inner, const floating* B, floating* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating* relu_act=NULL,
                       floating* db=NULL) noexcept nogil:
    """The rows micro-kernel at the width in use; with relu_act (C's shape) its epilogue multiplies
    C by ReLU's derivative there and adds C's column sums into db (rows_relu, microkernel_body.h)."""
    if floating is float:
        if relu_act != NULL:
            (fastnn_rows_relu_f512 if _wide else fastnn_rows_relu_f)(A, a_row, a_inner, B, C, m, k, n, relu_act, db)
        elif _wide:
            fastnn_rows_f512(A, a_row, a_inner, B, C, m, k, n)
        else:
            fastnn_rows_f(A, a_row, a_inner, B, C, m, k, n)
    else:
        if relu_act != NULL:
            (fastnn_rows_relu_d512 if _wide else fastnn_rows_relu_d)(A, a_row, a_inner, B, C, m, k, n, relu_act, db)
        elif _wide:
            fastnn_rows_d512(A, a_row, a_inner, B, C, m, k, n)
        else:
            fastnn_rows_d(A, a_row, a_inner, B, C, m, k, n)


cdef inline void _dots(const floating* P, const floating* Q, floating* C,
                       Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    if floating is float:
        if _wide:
            fastnn_dots_f512(P, Q, C, m, k, n)
        else:
            fastnn_dots_f(P, Q, C, m, k, n)
    else:
        if _wide:
            fastnn_dots_d512(P, Q, C, m, k, n)
        else:
            fastnn_dots_d(P, Q, C, m, k, n)


cdef inline void _transpose(const floating* A, floating* out, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """out (cols, rows) = Aᵀ, A: (rows, cols)."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            out[j * rows + i] = A[i * cols + j]


cdef void _blas(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb, floating beta,
                floating* C, Py_ssize_t ldc) noexcept nogil:
    """Row-major C (m, n) = op(A) (m, k) · op(B) (k, n) + beta·C, op = transpose when trans_*; ld*
    are the row lengths of the arrays as stored. m, n, k >= 1."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int im = <int>m, jn = <int>n, kk = <int>k, la = <int>lda, lb = <int>ldb, lc = <int>ldc
    cdef floating one = 1
    if floating is float:
        sgemm(&tb, &ta, &jn, &im, &kk, &one, <float*>B, &lb, <float*>A, &la, &beta, C, &lc)
    else:
        dgemm(&tb, &ta, &jn, &im, &kk, &one, <double*>B, &lb, <double*>A, &la, &beta, C, &lc)


cdef void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                floating* C, Py_ssize_t ldc) noexcept nogil:
    """Row-major C (m, n) = op(A) (m, k) · op(B) (k, n): _blas with beta 0."""
    _blas(trans_a, trans_b, m, n, k, A, lda, B, ldb, <floating>0, C, ldc)


cdef inline Py_ssize_t _tall_block(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The batch rows per BLAS call of a layer's X·W or Xᵀ·dZ (k inputs, n outputs) over `rows`
    rows. OpenBLAS's AVX-512 kernels compute a product of at most BLAS_SMALL multiply-adds
    without packing its operands, which at a narrow layer is up to twice as fast as the packed
    path of one tall product (bench/bench_kernels.py, the "row blocks" rows): such products are
    cut into blocks of rows under that size, where the blocks are at least TALL_MIN_ROWS rows.
    Without AVX-512 (no such kernels) and for wide layers, one call."""
    if not _wide or n * k * TALL_MIN_ROWS > BLAS_SMALL:
        return rows
    return min(rows, BLAS_SMALL // (n * k))


cdef void _gemm_xw(const floating* X, const floating* W, floating* out,
                   Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """out = X·W through BLAS, by _tall_block's blocks of rows. X: (m, k), W: (k, n), out: (m, n)."""
    cdef Py_ssize_t block = _tall_block(m, n, k), at = 0
    while at < m:
        _gemm(False, False, min(block, m - at), n, k, X + at * k, k, W, n, out + at * n, n)
        at += block


cdef void _gemm_tn(const floating* X, const floating* dZ, floating* dW,
                   Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """dW = Xᵀ·dZ through BLAS, summed over _tall_block's blocks of rows in order. X: (m, k),
    dZ: (m, n), dW: (k, n)."""
    cdef Py_ssize_t block = _tall_block(m, n, k), at = 0
    while at < m:
        _blas(True, False, k, n, min(block, m - at), X + at * k, k, dZ + at * n, n, <floating>(0 if at == 0 else 1),
              dW, n)
        at += block


cdef void _dot_each(const floating* A, Py_ssize_t a_row, Py_ssize_t a_inner, const floating* B, floating* C,
                    Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """C (m, n) = sum over p < k of A[i*a_row + p*a_inner] * B[p*n + j], one dot product per
    element of C. The operands as fastnn_rows (microkernels.h) takes them."""
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


# NARROW's three products, each through the transposed copy: functions of their own, so that the
# other paths don't reserve its stack.

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


cdef void _matmul_nt_narrow(const floating* dZ, const floating* W, floating* dX, Py_ssize_t m, Py_ssize_t n,
                            Py_ssize_t k, const floating* relu_act=NULL, floating* db=NULL) noexcept nogil:
    """dX = dZ·Wᵀ, streaming the rows of Wᵀ (with relu_act: _rows' ReLU epilogue). dZ: (m, n),
    W: (k, n), dX: (m, k)."""
    cdef floating wt[NARROW_MAX]
    _transpose(W, wt, k, n)
    _rows(dZ, n, 1, wt, dX, m, n, k, relu_act, db)


# LOOPS for each product.

cdef void _loops_xw(const floating* X, const floating* W, floating* out,
                    Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """out = X·W. X: (m, k), W: (k, n), out: (m, n); m, k, n >= 1."""
    cdef Py_ssize_t i, p, j
    cdef floating x0, x1, x2, x3
    cdef const floating* w
    cdef floating* o
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


cdef void _loops_tn(const floating* X, const floating* dZ, floating* dW,
                    Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """dW = Xᵀ·dZ. X: (m, k), dZ: (m, n), dW: (k, n); m, k, n >= 1."""
    cdef Py_ssize_t i, p, j
    cdef floating x0, x1, x2, x3
    cdef const floating* d
    cdef floating* o
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


cdef void _loops_nt(const floating* dZ, const floating* W, floating* dX,
                    Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dX = dZ·Wᵀ. dZ: (m, n), W: (k, n), dX: (m, k); m, k, n >= 1."""
    cdef Py_ssize_t i, p, j
    cdef floating g, acc0, acc1, acc2, acc3
    cdef const floating* d
    cdef const floating* w
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


# The products, each by the path _path chooses.

cdef void _matmul(const floating* X, const floating* W, floating* out,
                  Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """out = X·W. X: (m, k), W: (k, n), out: (m, n)."""
    if m == 0 or n == 0:
        return
    if k == 0:
        memset(out, 0, m * n * sizeof(floating))
        return
    cdef int path = _path(m, k, n, k * n, True, sizeof(floating))
    if path == ROWS:
        _rows(X, k, 1, W, out, m, k, n)
    elif path == NARROW:
        _matmul_narrow(X, W, out, m, k, n)
    elif path == GEMM:
        _gemm_xw(X, W, out, m, k, n)
    elif path == DOT_EACH:
        _dot_each(X, k, 1, W, out, m, k, n)
    else:
        _loops_xw(X, W, out, m, k, n)


cdef void _matmul_tn(const floating* X, const floating* dZ, floating* dW,
                     Py_ssize_t m, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """dW = Xᵀ·dZ. X: (m, k), dZ: (m, n), dW: (k, n)."""
    if k == 0 or n == 0:
        return
    if m == 0:
        memset(dW, 0, k * n * sizeof(floating))
        return
    cdef int path = _path(m, k, n, m * n, True, sizeof(floating))
    if path == ROWS:  # row p of dW reads column p of X
        _rows(X, 1, k, dZ, dW, k, m, n)
    elif path == NARROW:
        _matmul_tn_narrow(X, dZ, dW, m, k, n)
    elif path == GEMM:
        _gemm_tn(X, dZ, dW, m, k, n)
    elif path == DOT_EACH:  # row p of dW reads column p of X
        _dot_each(X, 1, k, dZ, dW, k, m, n)
    else:
        _loops_tn(X, dZ, dW, m, k, n)


cdef void _nt_micro(const floating* dZ, const floating* W, floating* dX,
                    Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dX = dZ·Wᵀ by the micro-kernels: streaming the rows of a transposed W while it fits on the
    stack (faster than the dots: bench/compare_builds.py, "small"), else the dot products of rows.
    dZ: (m, n), W: (k, n), dX: (m, k)."""
    if n * k <= NARROW_MAX:
        _matmul_nt_narrow(dZ, W, dX, m, n, k)
    else:
        _dots(dZ, W, dX, m, k, n)


cdef inline int _nt_path(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t item_size) noexcept nogil:
    """dZ·Wᵀ's path (m, n, k >= 1; item_size: the data's bytes): _path's, except that at AVX-512 streaming Wᵀ's rows beats BLAS
    at any batch while W fits the stack (not at AVX2's width): bench/bench_kernels.py, "dZ·Wᵀ"."""
    cdef int path = _path(m, k, n, k * n, False, item_size)
    if path == GEMM and _simd and _wide and n * k <= NARROW_MAX and k * item_size >= 64:
        return NARROW
    return path


cdef void _matmul_nt(const floating* dZ, const floating* W, floating* dX,
                     Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dX = dZ·Wᵀ. dZ: (m, n), W: (k, n), dX: (m, k)."""
    if m == 0 or k == 0:
        return
    if n == 0:
        memset(dX, 0, m * k * sizeof(floating))
        return
    cdef int path = _nt_path(m, n, k, sizeof(floating))
    if path == ROWS or path == NARROW:
        _nt_micro(dZ, W, dX, m, n, k)
    elif path == GEMM:
        _gemm(False, True, m, k, n, dZ, n, W, n, dX, k)
    else:
        _loops_nt(dZ, W, dX, m, n, k)


cdef bint _fused = True  # _set_fused: the ReLU derivative in dZ·Wᵀ's epilogue, or apart (for tests)


def _set_fused(bint on):
    """Fuse the derivative pass of a ReLU layer into the product that computes its dA (where that
    product streams a transposed W), or keep them apart; returns the previous setting. For tests."""
    global _fused
    previous = _fused
    _fused = on
    return previous


cdef bint _matmul_nt_relu(const floating* dZ, const floating* W, floating* dX, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t k, const floating* act, floating* db) noexcept nogil:
    """dX = (dZ·Wᵀ) * relu'(act) and db = dX's column sums, as _matmul_nt and then the ReLU layer's
    _activation_grad compute them, bit for bit, when dZ·Wᵀ streams the rows of a transposed W;
    False, with nothing written, otherwise. dZ: (m, n), W: (k, n), dX and act: (m, k), db: (k,)."""
    if not _fused or m == 0 or k == 0 or n == 0 or n * k > NARROW_MAX:
        return False
    cdef int path = _nt_path(m, n, k, sizeof(floating))
    if path != ROWS and path != NARROW:
        return False
    memset(db, 0, k * sizeof(floating))
    _matmul_nt_narrow(dZ, W, dX, m, n, k, act, db)
    return True


def _product_rounds(int product, bint blas, const floating[:, ::1] A not None, const floating[:, ::1] B not None,
                    floating[:, ::1] C not None, Py_ssize_t reps, bint blocks=False):
    """For benchmarks: `reps` times one of a dense layer's products by the path asked for, not the
    one _path chooses, without returning to Python in between. product 0: C = A·B (X·W: A (m, k),
    B (k, n)); 1: C = Aᵀ·B (Xᵀ·dZ: A (m, k), B (m, n), C (k, n)); 2: C = A·Bᵀ (dZ·Wᵀ: A (m, n),
    B (k, n), C (m, k)). blas: the GEMM call (blocks: cut into _tall_block's row blocks, products 0
    and 1); otherwise the micro-kernels at the width in use."""
    cdef Py_ssize_t m, k, n, r
    if product == 0:
        m, k, n = A.shape[0], A.shape[1], B.shape[1]
        if B.shape[0] != k or C.shape[0] != m or C.shape[1] != n:
            raise ValueError("X·W: A (m, k), B (k, n), C (m, n)")
    elif product == 1:
        m, k, n = A.shape[0], A.shape[1], B.shape[1]
        if B.shape[0] != m or C.shape[0] != k or C.shape[1] != n:
            raise ValueError("Xᵀ·dZ: A (m, k), B (m, n), C (k, n)")
    elif product == 2:
        m, n, k = A.shape[0], A.shape[1], B.shape[0]
        if B.shape[1] != n or C.shape[0] != m or C.shape[1] != k:
            raise ValueError("dZ·Wᵀ: A (m, n), B (k, n), C (m, k)")
    else:
        raise ValueError(f"product must be 0, 1 or 2, not {product}")
    if m == 0 or k == 0 or n == 0:
        raise ValueError("empty operands")
    if blocks and (not blas or product == 2):
        raise ValueError("blocks: BLAS's X·W or Xᵀ·dZ only")
    if not blas and not _simd:
        raise RuntimeError("the micro-kernels are off (FASTNN_SIMD=0 or a CPU without AVX2 and FMA)")
    cdef const floating* a = _in2(A)
    cdef const floating* b = _in2(B)
    cdef floating* c = _out2(C)
    with nogil:
        for r in range(reps):
            if product == 0:
                if blocks:
                    _gemm_xw(a, b, c, m, k, n)
                elif blas:
                    _gemm(False, False, m, n, k, a, k, b, n, c, n)
                else:
                    _rows(a, k, 1, b, c, m, k, n)
            elif product == 1:
                if blocks:
                    _gemm_tn(a, b, c, m, k, n)
                elif blas:
                    _gemm(True, False, k, n, m, a, k, b, n, c, n)
                else:
                    _rows(a, 1, k, b, c, k, m, n)
            else:
                if blas:
                    _gemm(False, True, m, k, n, a, n, b, n, c, k)
                else:
                    _nt_micro(a, b, c, m, n, k)
