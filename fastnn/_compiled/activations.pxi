# Activations and their derivatives (the NumPy twin: fastnn/_fallback/activations.py).
# _activate and _activation_grad are also the dense layer's fused passes (dense.pxi).

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


cdef inline int _ew_code(int activation) noexcept nogil:
    """elementwise.h's code of an activation; FASTNN_EW_NONE (softmax, and any activation added
    without a vector version) keeps the loops here."""
    if activation == SIGMOID:
        return FASTNN_EW_SIGMOID
    if activation == RELU:
        return FASTNN_EW_RELU
    if activation == TANH:
        return FASTNN_EW_TANH
    if activation == LEAKY_RELU:
        return FASTNN_EW_LEAKY_RELU
    if activation == EXP:
        return FASTNN_EW_EXP
    if activation == LINEAR:
        return FASTNN_EW_LINEAR
    return FASTNN_EW_NONE


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
    # elementwise.h's pass on whole vectors (exp stays here, libm's: its argument may be positive;
    # linear without a bias is a copy)
    cdef int code = FASTNN_EW_SOFTMAX if activation == SOFTMAX else _ew_code(activation)
    if _simd and (activation == RELU or activation == LEAKY_RELU or activation == SIGMOID or activation == TANH or
                  activation == SOFTMAX or (activation == LINEAR and b != NULL)):
        if _overlap(out, Z, m * n * sizeof(floating)):
            memmove(out, Z, m * n * sizeof(floating))
            Z = out
        if floating is float:
            fastnn_ew_activate_f(Z, b, code, out, m, n, slope, _wide)
        else:
            fastnn_ew_activate_d(Z, b, code, out, m, n, slope, _wide)
        return
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
        raise _contract.activation_error(activation)
    if out.shape[0] != Z.shape[0] or out.shape[1] != Z.shape[1]:
        raise _contract.shape_error("out", out, (Z.shape[0], Z.shape[1]))
    if activation == SOFTMAX and Z.shape[1] == 0:
        raise _contract.empty_softmax_error("Z", Z)
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
    if _simd and _ew_code(activation) != FASTNN_EW_NONE:  # elementwise.h: the same operations on whole vectors
        if _overlap(out, dA, m * n * sizeof(floating)):
            memmove(out, dA, m * n * sizeof(floating))
            dA = out
        if floating is float:
            fastnn_ew_grad_f(A, dA, _ew_code(activation), out, db, m, n, slope, _wide)
        else:
            fastnn_ew_grad_d(A, dA, _ew_code(activation), out, db, m, n, slope, _wide)
        return
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
        raise _contract.activation_error(activation)
    if dA.shape[0] != A.shape[0] or dA.shape[1] != A.shape[1]:
        raise _contract.shape_error("dA", dA, (A.shape[0], A.shape[1]))
    if out.shape[0] != A.shape[0] or out.shape[1] != A.shape[1]:
        raise _contract.shape_error("out", out, (A.shape[0], A.shape[1]))
    with nogil:
        _activation_grad(_in2(A), _in2(dA), activation, _out2(out), NULL, A.shape[0], A.shape[1])
