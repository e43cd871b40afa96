"""Losses and their gradients in NumPy, from logits where the output activation is fused into the
loss (fastnn._contract.LOSSES); the compiled twin is fastnn/_compiled/losses.pxi.

Each loss is a mean over rows, weighted when sample_weight (batch,) is given: sum_i w_i loss_i /
sum_i w_i (unweighted: every w_i = 1; a batch whose weights sum to 0 has loss 0 and gradient 0).
The gradient written is that of the returned loss.
"""
import numpy as np

from .._contract import label_range_error, same_shape
from .activations import sigmoid


def _row_weights(sample_weight, Z):
    """(w as a column or None, sum of the weights as a float; 1 where they sum to 0, so that a
    batch of weightless rows has loss 0 and gradient 0)."""
    if sample_weight is None:
        return None, float(Z.shape[0])
    same_shape("sample_weight", sample_weight, (Z.shape[0],))
    total = float(np.sum(sample_weight, dtype=np.float64))
    return sample_weight[:, None], total if total > 0 else 1.0


def _weighted_mean(terms, w, w_sum, per_row):
    """Weighted mean over rows of terms' rows, each row a sum over its elements divided by per_row."""
    if w is not None:
        terms = terms * w
    return float(np.sum(terms, dtype=np.float64)) / (w_sum * per_row)


def _scale_rows(dZ, w, denominator):
    if w is not None:
        dZ *= w
    dZ /= dZ.dtype.type(denominator)


def _check_targets(Z, Y, dZ, d_name="dZ"):
    same_shape("Y", Y, Z.shape)
    same_shape(d_name, dZ, Z.shape)


def sigmoid_bce(Z, Y, dZ, sample_weight=None):
    """Binary cross-entropy of sigmoid(Z) against Y, from the logits Z; mean over all elements.

    Writes dZ = w (sigmoid(Z) - Y) / (n_out sum(w)) ((sigmoid(Z) - Y) / Z.size unweighted) and
    returns the loss. Z, Y, dZ: (batch, n_out); sample_weight: (batch,) or None.
    """
    _check_targets(Z, Y, dZ)
    w, w_sum = _row_weights(sample_weight, Z)
    # max(z, 0) - z*y + log1p(exp(-|z|)): finite for every finite z.
    terms = np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
    loss = _weighted_mean(terms, w, w_sum, Z.shape[1])
    sigmoid(Z, dZ)
    dZ -= Y
    _scale_rows(dZ, w, w_sum * Z.shape[1])
    return loss


def softmax_cce(Z, Y, dZ, sample_weight=None):
    """Categorical cross-entropy of softmax(Z) against Y (rows of class probabilities, one-hot
    usually), from the logits; mean over the batch of each row's sum.

    Writes dZ = w (softmax(Z) * sum(Y, row) - Y) / sum(w) (p - y over batch for one-hot rows,
    unweighted) and returns the loss. Z, Y, dZ: (batch, n_classes); sample_weight: (batch,) or None.
    """
    _check_targets(Z, Y, dZ)
    w, w_sum = _row_weights(sample_weight, Z)
    shifted = Z - Z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    sums = e.sum(axis=1, keepdims=True)
    log_sum = np.log(sums)
    # -sum_j y_j log p_j with log p_j = shifted_j - log_sum (log-sum-exp, no log of 0).
    loss = _weighted_mean(Y * (log_sum - shifted), w, w_sum, 1)
    np.multiply(e / sums, Y.sum(axis=1, keepdims=True), out=dZ)
    dZ -= Y
    _scale_rows(dZ, w, w_sum)
    return loss


def softmax_sparse_cce(Z, labels, dZ, sample_weight=None):
    """softmax_cce with integer class labels instead of one-hot rows.

    labels: (batch,) int64, each in [0, n_classes) (checked here, as in the compiled twin).
    Z, dZ: (batch, n_classes); sample_weight: (batch,) or None.
    """
    same_shape("labels", labels, (Z.shape[0],))
    same_shape("dZ", dZ, Z.shape)
    if labels.size and (labels.min() < 0 or labels.max() >= Z.shape[1]):
        raise label_range_error(Z.shape[1])
    w, w_sum = _row_weights(sample_weight, Z)
    rows = np.arange(Z.shape[0])
    shifted = Z - Z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    sums = e.sum(axis=1, keepdims=True)
    loss = _weighted_mean((np.log(sums[:, 0]) - shifted[rows, labels])[:, None], w, w_sum, 1)
    np.divide(e, sums, out=dZ)
    dZ[rows, labels] -= 1
    _scale_rows(dZ, w, w_sum)
    return loss


def mse(A, Y, dA, sample_weight=None):
    """Mean squared error over all elements. Writes dA = 2 w (A - Y) / (n_out sum(w))
    (2 (A - Y) / A.size unweighted), returns the loss. A, Y, dA: (batch, n_out);
    sample_weight: (batch,) or None."""
    _check_targets(A, Y, dA, "dA")
    w, w_sum = _row_weights(sample_weight, A)
    np.subtract(A, Y, out=dA)
    loss = _weighted_mean(np.square(dA, dtype=np.float64), w, w_sum, A.shape[1])
    _scale_rows(dA, w, w_sum * A.shape[1] / 2.0)
    return loss


def poisson_nll(Z, Y, dZ, sample_weight=None):
    """Half the Poisson deviance of the rates exp(Z) against counts Y >= 0, from the log-rates Z;
    mean over all elements: exp(z) - y z + y log(y) - y (scikit-learn's poisson_loss per element).

    Writes dZ = w (exp(Z) - Y) / (n_out sum(w)) and returns the loss. exp(Z) overflows to inf for
    Z > ~709 (float64), which the caller's finiteness check reports.
    Z, Y, dZ: (batch, n_out); sample_weight: (batch,) or None.
    """
    _check_targets(Z, Y, dZ)
    w, w_sum = _row_weights(sample_weight, Z)
    with np.errstate(over="ignore"):
        np.exp(Z, out=dZ)
    # y log y with 0 log 0 = 0, as scipy's xlogy.
    y_log_y = Y * np.log(np.where(Y > 0, Y, 1))
    loss = _weighted_mean(dZ - Y * Z + (y_log_y - Y), w, w_sum, Z.shape[1])
    dZ -= Y
    _scale_rows(dZ, w, w_sum * Z.shape[1])
    return loss
