# Counts of correct predictions, the accuracy's numerator, and the sums of the compiled metrics
# (fastnn._contract.METRICS) (the NumPy twin: fastnn/_fallback/metrics.py); _count_correct and
# _metric_sum are the trainer's ways in.

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


cdef double _metric_sum(int metric, const floating* P, const floating* Y, const int64_t* labels, Py_ssize_t m,
                        Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The sum over a batch of metric `metric` (the contract's METRICS): P (m, n) predictions,
    Y (m, n) targets or, for the sparse metrics, labels (m,) in [0, n); k: top-k's k."""
    cdef Py_ssize_t i, j, truth, higher
    cdef double total = 0
    cdef floating half = 0.5, d, p_true
    if metric == BINARY_ACCURACY:
        for i in range(m * n):
            total += (P[i] > half) == (Y[i] > half)
    elif metric == MEAN_ABSOLUTE_ERROR:
        for i in range(m * n):
            total += _abs(P[i] - Y[i])
    elif metric == MEAN_SQUARED_ERROR:
        for i in range(m * n):
            d = P[i] - Y[i]
            total += d * d
    else:
        for i in range(m):
            if metric == SPARSE_CATEGORICAL_ACCURACY or metric == SPARSE_TOP_K_CATEGORICAL_ACCURACY:
                truth = labels[i]
            else:
                truth = _row_argmax(Y + i * n, n)
            if metric == CATEGORICAL_ACCURACY or metric == SPARSE_CATEGORICAL_ACCURACY:
                total += _row_argmax(P + i * n, n) == truth
            else:  # the top-k accuracies: fewer than k classes score higher than the true one
                p_true = P[i * n + truth]
                higher = 0
                for j in range(n):
                    higher += P[i * n + j] > p_true
                total += higher < k
    return total


def metric_sum(const floating[:, ::1] P not None, const floating[:, ::1] Y not None, int metric, Py_ssize_t k=5):
    """The sum over a batch of metric `metric` (a fastnn._contract.METRICS code that takes
    targets Y): per element or per row, as its table row says. P: (batch, n) predictions
    (probabilities for sigmoid and softmax outputs), Y: (batch, n) targets; k: top-k's k."""
    if Y.shape[0] != P.shape[0] or Y.shape[1] != P.shape[1]:
        raise _contract.shape_error("Y", Y, (P.shape[0], P.shape[1]))
    if metric not in _contract.METRICS or _contract.METRICS[metric].sparse:
        raise _contract.metric_error(metric, sparse=False)
    if P.shape[1] == 0 and metric in (CATEGORICAL_ACCURACY, TOP_K_CATEGORICAL_ACCURACY):
        raise _contract.empty_argmax_error("P", P)
    cdef double total
    with nogil:
        total = _metric_sum(metric, _in2(P), _in2(Y), NULL, P.shape[0], P.shape[1], k)
    return total


def sparse_metric_sum(const floating[:, ::1] P not None, const int64_t[::1] labels not None, int metric,
                      Py_ssize_t k=5):
    """metric_sum for the metrics that take class labels (batch,) int64 in [0, n)."""
    if labels.shape[0] != P.shape[0]:
        raise _contract.shape_error("labels", labels, (P.shape[0],))
    if metric not in _contract.METRICS or not _contract.METRICS[metric].sparse:
        raise _contract.metric_error(metric, sparse=True)
    if P.shape[1] == 0:
        raise _contract.empty_argmax_error("P", P)
    if not _in_range(_labels_ptr(labels), labels.shape[0], P.shape[1]):
        raise _contract.label_range_error(P.shape[1])
    cdef double total
    with nogil:
        total = _metric_sum(metric, _in2(P), NULL, _labels_ptr(labels), P.shape[0], P.shape[1], k)
    return total
