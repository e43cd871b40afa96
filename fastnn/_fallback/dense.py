"""One dense layer, A = f(X @ W + b), forward and backward in NumPy, and a network's output for
many rows; the compiled twins are fastnn/_compiled/dense.pxi (its products:
fastnn/_compiled/matmul.pxi) and pooled.pxi's network_predict."""
import numpy as np

from .._contract import check_bfloat16, check_predict, layout, same_shape
from .activations import activate, activation_grad
from .bfloat16 import rounded


def dense_forward(X, W, b, activation, out, bfloat16=False):
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out).
    bfloat16: X @ W of X and W rounded to bfloat16 (fastnn._contract's bfloat16 products)."""
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    same_shape("b", b, (W.shape[1],))
    same_shape("out", out, (X.shape[0], W.shape[1]))
    check_bfloat16(bfloat16, X.dtype)
    if bfloat16:
        X, W = rounded(X), rounded(W)
    np.matmul(X, W, out=out)
    out += b
    activate(out, activation, out)


def dense_backward(X, W, A, dA, activation, dZ, dW, db, dX=None, bfloat16=False):
    """Backward pass of one dense layer whose forward was A = f(X @ W + b).

    dZ = dA * f'(Z) (dZ may be dA), db = sum over the batch of dZ, dW = X.T @ dZ, and, unless
    dX is None (the network's input needs no gradient), dX = dZ @ W.T.
    X: (batch, n_in), W: (n_in, n_out), A, dA, dZ: (batch, n_out), dW: (n_in, n_out),
    db: (n_out,), dX: (batch, n_in) or None. bfloat16: both products of X, dZ and W rounded to
    bfloat16 (fastnn._contract's bfloat16 products); dZ and db are not rounded.
    """
    batch, n_in = X.shape
    n_out = W.shape[1]
    same_shape("W", W, (n_in, n_out))
    same_shape("A", A, (batch, n_out))
    same_shape("dW", dW, (n_in, n_out))
    same_shape("db", db, (n_out,))
    check_bfloat16(bfloat16, X.dtype)
    activation_grad(A, dA, activation, dZ)
    np.sum(dZ, axis=0, out=db)
    if bfloat16:
        X, W, dZ = rounded(X), rounded(W), rounded(dZ)
    np.matmul(X.T, dZ, out=dW)
    if dX is not None:
        same_shape("dX", dX, (batch, n_in))
        np.matmul(dZ, W.T, out=dX)


def network_predict(sizes, codes, params, X, out, rows, threads, bfloat16=False):
    """out = the output of the network (layer widths sizes (L+1,) int64, activation codes (L,)
    int64, params (n_params,) in the contract's layout) for X, `rows` rows at a time (threads:
    the compiled twin's; NumPy's matmul uses BLAS's), with bfloat16 products when `bfloat16`.
    X: (n, sizes[0]), out: (n, sizes[-1])."""
    check_predict(sizes, codes, params, X, out, rows, threads, bfloat16)
    slices, _ = layout(sizes)
    n, rows = X.shape[0], min(rows, max(X.shape[0], 1))
    hidden = [np.empty((rows, int(width)), X.dtype) for width in sizes[1:-1]]
    with np.errstate(all="ignore"):  # an overflow is the caller's to report, as the compiled twin leaves it
        for start in range(0, n, rows):
            m = min(rows, n - start)
            a = X[start:start + m]
            for l, (part, code) in enumerate(zip(slices, codes.tolist())):
                n_in, n_out = int(sizes[l]), int(sizes[l + 1])
                dst = out[start:start + m] if l == len(slices) - 1 else hidden[l][:m]
                dense_forward(a, params[part.w_at:part.b_at].reshape(n_in, n_out), params[part.b_at:part.end], code,
                              dst, bfloat16)
                a = dst
