"""Activations and their derivatives in NumPy; the compiled twin is fastnn/_compiled/activations.pxi."""
import numpy as np

from .._contract import (EXP, LEAKY_RELU, LEAKY_SLOPE, LINEAR, RELU, SIGMOID, TANH, check_activation,
                         same_shape)


def sigmoid(Z, out):
    """out = sigmoid(Z). exp(-|z|) never overflows; sigmoid(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0."""
    e = np.exp(-np.abs(Z))
    np.divide(np.where(Z >= 0, 1.0, e), 1.0 + e, out=out)


def activate(Z, activation, out):
    """out = f(Z), row-wise for softmax. Z, out: (batch, n); out may be Z."""
    check_activation(activation)
    same_shape("out", out, Z.shape)
    if activation == LINEAR:
        np.copyto(out, Z)
    elif activation == SIGMOID:
        sigmoid(Z, out)
    elif activation == RELU:
        np.maximum(Z, 0, out=out)
    elif activation == TANH:
        np.tanh(Z, out=out)
    elif activation == LEAKY_RELU:
        np.copyto(out, np.where(Z > 0, Z, Z * Z.dtype.type(LEAKY_SLOPE)))
    elif activation == EXP:
        with np.errstate(over="ignore"):  # inf, as C's exp gives; the training run reports it
            np.exp(Z, out=out)
    else:  # SOFTMAX, shifted by the row max so exp never overflows
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        np.divide(e, e.sum(axis=1, keepdims=True), out=out)


def activation_grad(A, dA, activation, out):
    """out = dA * f'(Z), with f' written through A = f(Z). A, dA, out: (batch, n); out may be dA.

    For softmax this is the Jacobian-vector product A * (dA - sum(dA * A, row)).
    """
    check_activation(activation)
    same_shape("dA", dA, A.shape)
    same_shape("out", out, A.shape)
    if activation == LINEAR:
        if out is not dA:  # in place (the output layer of a loss from logits): nothing to write
            np.copyto(out, dA)
    elif activation == SIGMOID:
        np.multiply(dA, A * (1 - A), out=out)
    elif activation == RELU:
        np.multiply(dA, A > 0, out=out)
    elif activation == TANH:
        np.multiply(dA, 1 - A * A, out=out)
    elif activation == LEAKY_RELU:
        np.multiply(dA, np.where(A > 0, 1.0, LEAKY_SLOPE).astype(A.dtype), out=out)
    elif activation == EXP:
        np.multiply(dA, A, out=out)
    else:
        s = (dA * A).sum(axis=1, keepdims=True)
        np.multiply(A, dA - s, out=out)
