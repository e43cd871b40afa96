# libm in the precision of the data (the f-versions for float32), the data pointers of the arrays
# a `def` received, and the small loops several families share.

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


cdef inline bint _finite(double x) noexcept nogil:
    return x - x == 0  # false for inf and NaN (no -ffast-math here, so this is not folded away)


cdef bint _all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if not (x[i] - x[i] == 0):
            return False
    return True


cdef double _sum_squares(const floating* x, Py_ssize_t size) noexcept nogil:
    """sum(x²) in double, in four running sums: one sum's chain of dependent adds would wait on
    each add's latency (the order differs from NumPy's pairwise sum only by rounding)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i, end = size - size % 4
    for i in range(0, end, 4):
        s0 += <double>x[i] * x[i]
        s1 += <double>x[i + 1] * x[i + 1]
        s2 += <double>x[i + 2] * x[i + 2]
        s3 += <double>x[i + 3] * x[i + 3]
    for i in range(end, size):
        s0 += <double>x[i] * x[i]
    return (s0 + s1) + (s2 + s3)


cdef bint _in_range(const int64_t* values, Py_ssize_t size, Py_ssize_t n) noexcept nogil:
    """Every value in [0, n): class labels, and the trainer's row orders."""
    cdef Py_ssize_t i
    for i in range(size):
        if values[i] < 0 or values[i] >= n:
            return False
    return True


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


