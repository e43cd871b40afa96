# Losses and their gradients, from logits where the contract's loss table fuses the output
# activation into the loss (the NumPy twin: fastnn/_fallback/losses.py).
# Each loss is a mean over rows, weighted when sample_weight (batch,) is given: sum_i w_i loss_i /
# sum_i w_i (unweighted: every w_i = 1; a batch whose weights sum to 0 has loss 0 and gradient 0).
# The gradient written is that of the returned loss.
# The workers take w = NULL for no weights and return the (weighted) mean; _loss_batch is the
# trainer's way in, by loss code.

cdef inline double _weight_sum(const floating* w, Py_ssize_t m) noexcept nogil:
    """The weights' sum, or 1 where they sum to 0 (a batch of weightless rows: loss 0, gradient 0)."""
    cdef double total = 0
    cdef Py_ssize_t i
    if w == NULL:
        return <double>m
    for i in range(m):
        total += w[i]
    return total if total > 0 else 1.0


cdef double _sigmoid_bce(const floating* Z, const floating* Y, const floating* w, floating* dZ, Py_ssize_t m,
                         Py_ssize_t n) noexcept nogil:
    # Each element's loss is max(z, 0) - z*y + log1p(e), e = exp(-|z|): finite for every finite z.
    # Unweighted, the log1p terms are summed as one log1p(q), 1 + q = prod(1 + e): one call per
    # batch, not per element (libm's log1p costs more than the rest of an element's work). q += e + q*e
    # adds positive terms only, so it loses no digits; it is flushed into the sum long before it
    # could overflow (each factor is at most 2).
    cdef Py_ssize_t i, j
    cdef floating z, y, e, wi = 1, zero = 0, one = 1
    cdef double w_sum = _weight_sum(w, m), loss_sum = 0, q = 0
    cdef floating scale = <floating>(1 / (w_sum * n))  # a multiply per element, not a second divide
    if _simd and w == NULL:  # elementwise.h: exp on whole vectors, a running product per lane
        if floating is float:
            return fastnn_ew_sigmoid_bce_f(Z, Y, dZ, m * n, scale, _wide) / (w_sum * n)
        else:
            return fastnn_ew_sigmoid_bce_d(Z, Y, dZ, m * n, scale, _wide) / (w_sum * n)
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
        raise _contract.shape_error("sample_weight", w, (m,))
    return &w[0] if m else NULL


cdef const floating* _check_loss_args(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] dZ,
                                      str d_name, object sample_weight) except? NULL:
    """The checks of a loss on Z with targets Y and gradient dZ (all (batch, n)); returns the
    weights' data (NULL: unweighted)."""
    if Y.shape[0] != Z.shape[0] or Y.shape[1] != Z.shape[1]:
        raise _contract.shape_error("Y", Y, (Z.shape[0], Z.shape[1]))
    if dZ.shape[0] != Z.shape[0] or dZ.shape[1] != Z.shape[1]:
        raise _contract.shape_error(d_name, dZ, (Z.shape[0], Z.shape[1]))
    return _weights_ptr(sample_weight, Z.shape[0], <floating>0)


def sigmoid_bce(const floating[:, ::1] Z not None, const floating[:, ::1] Y not None,
                floating[:, ::1] dZ not None, sample_weight=None):
    """Binary cross-entropy of sigmoid(Z) against Y, from the logits Z; mean over all elements.

    Writes dZ = w (sigmoid(Z) - Y) / (n_out sum(w)) ((sigmoid(Z) - Y) / Z.size unweighted) and
    returns the loss. Z, Y, dZ: (batch, n_out); sample_weight: (batch,) or None.
    """
    cdef const floating* w = _check_loss_args(Z, Y, dZ, "dZ", sample_weight)
    if Z.shape[0] * Z.shape[1] == 0:
        raise _contract.empty_mean_error()
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
    if _simd and keep:  # elementwise.h: these loops with exp on whole vectors
        if floating is float:
            return fastnn_ew_softmax_dense_f(Z, Y, w, dZ, m, n, w_sum, _wide) / w_sum
        else:
            return fastnn_ew_softmax_dense_d(Z, Y, w, dZ, m, n, w_sum, _wide) / w_sum
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
        raise _contract.empty_softmax_error("Z", Z)
    if Z.shape[0] == 0:
        raise _contract.empty_mean_error()
    cdef double loss
    with nogil:
        loss = _softmax_cce(_in2(Z), _in2(Y), w, _out2(dZ), Z.shape[0], Z.shape[1])
    return loss


cdef double _softmax_sparse_cce(const floating* Z, const int64_t* labels, const floating* w, floating* dZ,
                                Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j, label
    cdef floating top, total, shifted_label, e_label, wi = 1, one = 1
    cdef double sum_e, w_sum = _weight_sum(w, m), loss_sum = 0
    cdef floating denom = <floating>w_sum
    cdef const floating* z
    cdef floating* d
    if _simd:  # elementwise.h: these loops with exp on whole vectors
        if floating is float:
            return fastnn_ew_softmax_sparse_f(Z, labels, w, dZ, m, n, w_sum, _wide) / w_sum
        else:
            return fastnn_ew_softmax_sparse_d(Z, labels, w, dZ, m, n, w_sum, _wide) / w_sum
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
        raise _contract.shape_error("labels", labels, (Z.shape[0],))
    if dZ.shape[0] != Z.shape[0] or dZ.shape[1] != Z.shape[1]:
        raise _contract.shape_error("dZ", dZ, (Z.shape[0], Z.shape[1]))
    if not _in_range(_labels_ptr(labels), labels.shape[0], Z.shape[1]):
        raise _contract.label_range_error(Z.shape[1])
    cdef const floating* w = _weights_ptr(sample_weight, Z.shape[0], <floating>0)
    if Z.shape[1] == 0:
        raise _contract.empty_softmax_error("Z", Z)
    if Z.shape[0] == 0:
        raise _contract.empty_mean_error()
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
        raise _contract.empty_mean_error()
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
        raise _contract.empty_mean_error()
    cdef double loss
    with nogil:
        loss = _poisson_nll(_in2(Z), _in2(Y), w, _out2(dZ), Z.shape[0], Z.shape[1])
    return loss


cdef double _loss_batch(int loss, const floating* Z, const floating* Y, const int64_t* labels, const floating* w,
                        floating* dZ, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """The loss of code `loss` (the contract's table) on one batch, its gradient written into dZ.
    Z, dZ: (m, n); Y: (m, n) targets, or labels: (m,) for the sparse loss; w: (m,) or NULL."""
    if loss == BINARY_CROSSENTROPY:
        return _sigmoid_bce(Z, Y, w, dZ, m, n)
    elif loss == CATEGORICAL_CROSSENTROPY:
        return _softmax_cce(Z, Y, w, dZ, m, n)
    elif loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        return _softmax_sparse_cce(Z, labels, w, dZ, m, n)
    elif loss == MSE:
        return _mse(Z, Y, w, dZ, m, n)
    return _poisson_nll(Z, Y, w, dZ, m, n)
