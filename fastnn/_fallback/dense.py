"""One dense layer, A = f(X @ W + b), forward and backward in NumPy; the compiled twin is
fastnn/_compiled/dense.pxi (its products: fastnn/_compiled/matmul.pxi)."""
import numpy as np

from .._contract import same_shape
from .activations import activate, activation_grad


def dense_forward(X, W, b, activation, out):
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out)."""
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    same_shape("b", b, (W.shape[1],))
    same_shape("out", out, (X.shape[0], W.shape[1]))
    np.matmul(X, W, out=out)
    out += b
    activate(out, activation, out)


def dense_backward(X, W, A, dA, activation, dZ, dW, db, dX=None):
    """Backward pass of one dense layer whose forward was A = f(X @ W + b).

    dZ = dA * f'(Z) (dZ may be dA), db = sum over the batch of dZ, dW = X.T @ dZ, and, unless
    dX is None (the network's input needs no gradient), dX = dZ @ W.T.
    X: (batch, n_in), W: (n_in, n_out), A, dA, dZ: (batch, n_out), dW: (n_in, n_out),
    db: (n_out,), dX: (batch, n_in) or None.
    """
    batch, n_in = X.shape
    n_out = W.shape[1]
    same_shape("W", W, (n_in, n_out))
    same_shape("A", A, (batch, n_out))
    same_shape("dW", dW, (n_in, n_out))
    same_shape("db", db, (n_out,))
    activation_grad(A, dA, activation, dZ)
    np.sum(dZ, axis=0, out=db)
    np.matmul(X.T, dZ, out=dW)
    if dX is not None:
        same_shape("dX", dX, (batch, n_in))
        np.matmul(dZ, W.T, out=dX)
