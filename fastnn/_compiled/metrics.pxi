# Counts of correct predictions, the accuracy's numerator (the NumPy twin: fastnn/_fallback/metrics.py);
# _count_correct is the trainer's way in, by loss code.

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
        raise _contract.shape_error("Y", Y, (Z.shape[0], Z.shape[1]))
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
        raise _contract.shape_error("Y", Y, (Z.shape[0], Z.shape[1]))
    if Z.shape[1] == 0:
        raise _contract.empty_argmax_error("Z", Z)
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
        raise _contract.shape_error("labels", labels, (Z.shape[0],))
    if Z.shape[1] == 0:
        raise _contract.empty_argmax_error("Z", Z)
    cdef Py_ssize_t count
    with nogil:
        count = _sparse_correct(_in2(Z), _labels_ptr(labels), Z.shape[0], Z.shape[1])
    return count


cdef Py_ssize_t _count_correct(int loss, const floating* Z, const floating* Y, const int64_t* labels,
                               Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """The correct predictions of one batch for a classification loss (the contract's table), else 0."""
    if loss == BINARY_CROSSENTROPY:
        return _binary_correct(Z, Y, m, n)
    elif loss == CATEGORICAL_CROSSENTROPY:
        return _categorical_correct(Z, Y, m, n)
    elif loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        return _sparse_correct(Z, labels, m, n)
    return 0
