"""Counts of correct predictions (the accuracy's numerator) in NumPy; the compiled twin is
fastnn/_compiled/metrics.pxi."""
import numpy as np

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
