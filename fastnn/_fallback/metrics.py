"""Counts of correct predictions (the accuracy's numerator), and the sums of the compiled metrics
(fastnn._contract.METRICS), in NumPy; the compiled twin is fastnn/_compiled/metrics.pxi."""
import numpy as np

from .. import _contract as C
from .._contract import same_shape


def binary_correct(Z, Y):
    """How many elements the logits put on the right side: (Z > 0) == (Y > 0.5). Z, Y: (batch, n)."""
    same_shape("Y", Y, Z.shape)
    return int(np.count_nonzero((Z > 0) == (Y > 0.5)))


def categorical_correct(Z, Y):
    """How many rows have argmax Z == argmax Y (first maximum on ties). Z, Y: (batch, n)."""
    same_shape("Y", Y, Z.shape)
    return int(np.count_nonzero(Z.argmax(axis=1) == Y.argmax(axis=1)))


def sparse_correct(Z, labels):
    """How many rows have argmax Z == label. Z: (batch, n), labels: (batch,) int64."""
    same_shape("labels", labels, (Z.shape[0],))
    return int(np.count_nonzero(Z.argmax(axis=1) == labels))


def metric_sum(P, Y, metric, k=5):
    """The sum over a batch of metric `metric` (a fastnn._contract.METRICS code that takes
    targets Y): per element or per row, as its table row says. P: (batch, n) predictions
    (probabilities for sigmoid and softmax outputs), Y: (batch, n) targets; k: top-k's k."""
    same_shape("Y", Y, P.shape)
    if metric not in C.METRICS or C.METRICS[metric].sparse:
        raise C.metric_error(metric, sparse=False)
    if metric == C.BINARY_ACCURACY:
        return float(np.count_nonzero((P > 0.5) == (Y > 0.5)))
    if metric == C.MEAN_ABSOLUTE_ERROR:
        return float(np.sum(np.abs(P - Y), dtype=np.float64))
    if metric == C.MEAN_SQUARED_ERROR:
        return float(np.sum(np.square(P - Y), dtype=np.float64))
    if P.shape[1] == 0:
        raise C.empty_argmax_error("P", P)
    truth = Y.argmax(axis=1)
    if metric == C.CATEGORICAL_ACCURACY:
        return float(np.count_nonzero(P.argmax(axis=1) == truth))
    return _top_k(P, truth, k)


def sparse_metric_sum(P, labels, metric, k=5):
    """metric_sum for the metrics that take class labels (batch,) int64 in [0, n)."""
    same_shape("labels", labels, (P.shape[0],))
    if metric not in C.METRICS or not C.METRICS[metric].sparse:
        raise C.metric_error(metric, sparse=True)
    if P.shape[1] == 0:
        raise C.empty_argmax_error("P", P)
    if labels.size and (labels.min() < 0 or labels.max() >= P.shape[1]):
        raise C.label_range_error(P.shape[1])
    if metric == C.SPARSE_CATEGORICAL_ACCURACY:
        return float(np.count_nonzero(P.argmax(axis=1) == labels))
    return _top_k(P, labels, k)


def _top_k(P, truth, k):
    """Rows whose true class is among the k largest: fewer than k classes score higher (ties count in)."""
    higher = np.count_nonzero(P > P[np.arange(P.shape[0]), truth][:, None], axis=1)
    return float(np.count_nonzero(higher < k))
