"""Pure-Python (NumPy) twin of fastnn._kernels: same names, same signatures, same results.

Conventions shared with the compiled kernels:
- row-major arrays: X (batch, n_in), W (n_in, n_out), b (n_out,);
- outputs are preallocated by the caller and passed in, nothing is returned but scalars;
- all float arrays of one call share one dtype (float32 or float64), C-contiguous;
- activations are integer codes (fastnn.activations), derivatives are taken through A = f(Z);
- loss sums are accumulated in float64 and returned as a Python float.
Each function checks the shapes it relies on and raises ValueError, as its compiled twin does.
"""
import numpy as np

from .activations import EXP, LEAKY_SLOPE, LINEAR, RELU, LEAKY_RELU, SIGMOID, SOFTMAX, TANH
from .losses import BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY, MSE, POISSON, SPARSE_CATEGORICAL_CROSSENTROPY


# ----------------------------------------------------------------------------- checks

def _same_shape(name, a, shape):
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")


def _check_activation(activation):
    if activation not in (LINEAR, SIGMOID, RELU, TANH, LEAKY_RELU, SOFTMAX, EXP):
        raise ValueError(f"unknown activation code {activation!r}")


# ----------------------------------------------------------------------------- activations

def _sigmoid(Z, out):
    # exp(-|z|) never overflows; sigmoid(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0.
    e = np.exp(-np.abs(Z))
    np.divide(np.where(Z >= 0, 1.0, e), 1.0 + e, out=out)


def activate(Z, activation, out):
    """out = f(Z), row-wise for softmax. Z, out: (batch, n); out may be Z."""
    _check_activation(activation)
    _same_shape("out", out, Z.shape)
    if activation == LINEAR:
        np.copyto(out, Z)
    elif activation == SIGMOID:
        _sigmoid(Z, out)
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
    _check_activation(activation)
    _same_shape("dA", dA, A.shape)
    _same_shape("out", out, A.shape)
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


# ----------------------------------------------------------------------------- dense layer

def dense_forward(X, W, b, activation, out):
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out)."""
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    _same_shape("b", b, (W.shape[1],))
    _same_shape("out", out, (X.shape[0], W.shape[1]))
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
    _same_shape("W", W, (n_in, n_out))
    _same_shape("A", A, (batch, n_out))
    _same_shape("dW", dW, (n_in, n_out))
    _same_shape("db", db, (n_out,))
    activation_grad(A, dA, activation, dZ)
    np.sum(dZ, axis=0, out=db)
    np.matmul(X.T, dZ, out=dW)
    if dX is not None:
        _same_shape("dX", dX, (batch, n_in))
        np.matmul(dZ, W.T, out=dX)


# ----------------------------------------------------------------------------- losses
# Each loss is a mean over rows, weighted when sample_weight (batch,) is given: sum_i w_i loss_i /
# sum_i w_i (unweighted: every w_i = 1). The gradient written is that of the returned loss.

def _row_weights(sample_weight, Z):
    """(w as a column or None, sum of the weights as a float)."""
    if sample_weight is None:
        return None, float(Z.shape[0])
    _same_shape("sample_weight", sample_weight, (Z.shape[0],))
    return sample_weight[:, None], float(np.sum(sample_weight, dtype=np.float64))


def _weighted_mean(terms, w, w_sum, per_row):
    """Weighted mean over rows of terms' rows, each row a sum over its elements divided by per_row."""
    if w is not None:
        terms = terms * w
    return float(np.sum(terms, dtype=np.float64)) / (w_sum * per_row)


def _scale_rows(dZ, w, denominator):
    if w is not None:
        dZ *= w
    dZ /= dZ.dtype.type(denominator)


def sigmoid_bce(Z, Y, dZ, sample_weight=None):
    """Binary cross-entropy of sigmoid(Z) against Y, from the logits Z; mean over all elements.

    Writes dZ = w (sigmoid(Z) - Y) / (n_out sum(w)) ((sigmoid(Z) - Y) / Z.size unweighted) and
    returns the loss. Z, Y, dZ: (batch, n_out); sample_weight: (batch,) or None.
    """
    _same_shape("Y", Y, Z.shape)
    _same_shape("dZ", dZ, Z.shape)
    w, w_sum = _row_weights(sample_weight, Z)
    # max(z, 0) - z*y + log1p(exp(-|z|)): finite for every finite z.
    terms = np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
    loss = _weighted_mean(terms, w, w_sum, Z.shape[1])
    _sigmoid(Z, dZ)
    dZ -= Y
    _scale_rows(dZ, w, w_sum * Z.shape[1])
    return loss


def softmax_cce(Z, Y, dZ, sample_weight=None):
    """Categorical cross-entropy of softmax(Z) against Y (rows of class probabilities, one-hot
    usually), from the logits; mean over the batch of each row's sum.

    Writes dZ = w (softmax(Z) * sum(Y, row) - Y) / sum(w) (p - y over batch for one-hot rows,
    unweighted) and returns the loss. Z, Y, dZ: (batch, n_classes); sample_weight: (batch,) or None.
    """
    _same_shape("Y", Y, Z.shape)
    _same_shape("dZ", dZ, Z.shape)
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
    _same_shape("labels", labels, (Z.shape[0],))
    _same_shape("dZ", dZ, Z.shape)
    if labels.size and (labels.min() < 0 or labels.max() >= Z.shape[1]):
        raise _label_range_error(Z.shape[1])
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
    _same_shape("Y", Y, A.shape)
    _same_shape("dA", dA, A.shape)
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
    _same_shape("Y", Y, Z.shape)
    _same_shape("dZ", dZ, Z.shape)
    w, w_sum = _row_weights(sample_weight, Z)
    with np.errstate(over="ignore"):
        np.exp(Z, out=dZ)
    # y log y with 0 log 0 = 0, as scipy's xlogy.
    y_log_y = Y * np.log(np.where(Y > 0, Y, 1))
    loss = _weighted_mean(dZ - Y * Z + (y_log_y - Y), w, w_sum, Z.shape[1])
    dZ -= Y
    _scale_rows(dZ, w, w_sum * Z.shape[1])
    return loss


# ----------------------------------------------------------------------------- accuracy counts

def binary_correct(Z, Y):
    """How many elements the logits put on the right side: (Z > 0) == (Y > 0.5). Z, Y: (batch, n)."""
    _same_shape("Y", Y, Z.shape)
    return int(np.count_nonzero((Z > 0) == (Y > 0.5)))


def categorical_correct(Z, Y):
    """How many rows have argmax Z == argmax Y (first maximum on ties). Z, Y: (batch, n)."""
    _same_shape("Y", Y, Z.shape)
    return int(np.count_nonzero(Z.argmax(axis=1) == Y.argmax(axis=1)))


def sparse_correct(Z, labels):
    """How many rows have argmax Z == label. Z: (batch, n), labels: (batch,) int64."""
    _same_shape("labels", labels, (Z.shape[0],))
    return int(np.count_nonzero(Z.argmax(axis=1) == labels))


# ----------------------------------------------------------------------------- optimizer steps
# Parameters, gradients and optimizer state are flat 1-D buffers of equal length: the model keeps
# every layer's W and b as views into one buffer, so one call updates the whole network.

def _check_flat(param, *others):
    for name, a in others:
        _same_shape(name, a, param.shape)


def sgd_step(param, grad, lr):
    """param -= lr * grad."""
    _check_flat(param, ("grad", grad))
    param -= param.dtype.type(lr) * grad


def momentum_step(param, grad, velocity, lr, momentum, nesterov=False):
    """SGD with momentum as Keras and scikit-learn write it: velocity = momentum * velocity - lr * grad;
    param += velocity, or with Nesterov's momentum param += momentum * velocity - lr * grad."""
    _check_flat(param, ("grad", grad), ("velocity", velocity))
    t = param.dtype.type
    velocity *= t(momentum)
    velocity -= t(lr) * grad
    if nesterov:
        param += t(momentum) * velocity - t(lr) * grad
    else:
        param += velocity


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, step):
    """Adam (Kingma & Ba, section 2's efficient form, as Keras and scikit-learn write it) at step
    number `step` (1 for the first update): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
    param -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)."""
    _check_flat(param, ("grad", grad), ("m", m), ("v", v))
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    t = param.dtype.type
    m *= t(beta1)
    m += t(1 - beta1) * grad
    v *= t(beta2)
    v += t(1 - beta2) * grad * grad
    step_size = lr * (1 - beta2 ** step) ** 0.5 / (1 - beta1 ** step)
    param -= t(step_size) * m / (np.sqrt(v) + t(eps))


# ----------------------------------------------------------------------------- whole training runs
# For small networks the cost of training is per call, not per FLOP; train_epochs runs many epochs
# (gather, forward, loss, backward, update for every batch) in one call. It is the same sequence of
# kernel calls as Sequential's step-by-step path, so both give the same numbers.

# Optimizer codes. GRADIENT_ONLY updates nothing: the run leaves the gradient of its last batch in
# `grads`, for an optimizer outside the kernel (scikit-learn's L-BFGS, one full batch per call).
SGD, MOMENTUM, ADAM, NESTEROV, GRADIENT_ONLY = 0, 1, 2, 3, 4

_LOSS_KERNELS = {  # loss code -> (loss and gradient, correct count)
    BINARY_CROSSENTROPY: (sigmoid_bce, binary_correct),
    CATEGORICAL_CROSSENTROPY: (softmax_cce, categorical_correct),
    SPARSE_CATEGORICAL_CROSSENTROPY: (softmax_sparse_cce, sparse_correct),
    MSE: (mse, None),
    POISSON: (poisson_nll, None)}


def _layout(sizes):
    """Offsets of each layer's W and b in the flat parameter buffer."""
    offsets, at = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        offsets.append((at, at + n_in * n_out, at + n_in * n_out + n_out))
        at += n_in * n_out + n_out
    return offsets, at


def train_epochs(X, Y, labels, sample_weight, order, sizes, codes, loss, batch, params, grads, optimizer,
                 state1, state2, hyper, step, epoch_loss, epoch_correct):
    """Train for len(epoch_loss) epochs in one call; returns (epochs finished, optimizer step count).

    X: (n, sizes[0]); Y: (n, sizes[-1]) targets, or (0, sizes[-1]) when `labels` (n,) int64 holds
    class labels (sparse loss; otherwise labels is (0,)). sample_weight: (n,) row weights of X's
    dtype, or (0,) for none. order: (epochs, n) int64 row order of each epoch, or (0, n) to take
    rows in order. sizes: (L+1,) int64 layer widths; codes: (L,) int64 activation codes, the
    output's LINEAR when the loss takes logits; loss: loss code; batch >= 1.
    params, grads: flat (n_params,) buffers, W then b per layer; optimizer: SGD | MOMENTUM | ADAM |
    NESTEROV | GRADIENT_ONLY with state1/state2 (velocity; Adam's m, v; (0,) when unused) and
    hyper = (lr, momentum or beta1, beta2, eps, l2, loss_scale) float64 (6,): each batch's loss and
    its gradient are multiplied by loss_scale, and the L2 penalty l2/2 * sum(W²) / sum(batch
    weights) on the weights (not the biases) is added, as scikit-learn's MLP does; step: the number
    of updates made so far (Adam's t).
    Writes per epoch the mean loss (float64) and the number of correct predictions. If an epoch's loss
    or parameters are not finite, the parameters are put back as they were before that epoch and the
    call returns early: epochs finished < len(epoch_loss), epoch_loss[finished] holds the bad loss.
    """
    sizes = [int(s) for s in sizes]
    codes = [int(c) for c in codes]
    n = X.shape[0]
    targets = labels if loss == SPARSE_CATEGORICAL_CROSSENTROPY else Y
    epochs = epoch_loss.shape[0]
    _check_train_args(X, Y, labels, sample_weight, order, sizes, codes, loss, batch, params, grads, optimizer,
                      state1, state2, hyper, epoch_correct, epochs)
    offsets, _ = _layout(sizes)
    Ws = [params[a:b].reshape(i, o) for (a, b, _), i, o in zip(offsets, sizes[:-1], sizes[1:])]
    bs = [params[b:c] for (_, b, c) in offsets]
    dWs = [grads[a:b].reshape(i, o) for (a, b, _), i, o in zip(offsets, sizes[:-1], sizes[1:])]
    dbs = [grads[b:c] for (_, b, c) in offsets]
    acts = [None] + [np.empty((batch, s), X.dtype) for s in sizes[1:]]
    deltas = [None] + [np.empty((batch, s), X.dtype) for s in sizes[1:]]
    X_batch = np.empty((batch, sizes[0]), X.dtype)
    t_batch = np.empty((batch,) + targets.shape[1:], targets.dtype)
    w_batch = np.empty(batch, X.dtype)
    weighted = sample_weight.shape[0] > 0
    last_good = np.empty_like(params)
    loss_fn, correct_fn = _LOSS_KERNELS[loss]
    lr, mu_or_beta1, beta2, eps, l2, loss_scale = (float(h) for h in hyper)
    L = len(codes)
    for epoch in range(epochs):
        np.copyto(last_good, params)
        total, correct = 0.0, 0
        for start in range(0, n, batch):
            rows = min(batch, n - start)
            w = None
            if order.shape[0]:
                idx = order[epoch, start:start + rows]
                acts[0] = np.take(X, idx, axis=0, out=X_batch[:rows])
                t = np.take(targets, idx, axis=0, out=t_batch[:rows])
                if weighted:
                    w = np.take(sample_weight, idx, out=w_batch[:rows])
            else:
                acts[0], t = X[start:start + rows], targets[start:start + rows]
                if weighted:
                    w = sample_weight[start:start + rows]
            for l in range(L):
                dense_forward(acts[l][:rows], Ws[l], bs[l], codes[l], acts[l + 1][:rows])
            batch_loss = loss_fn(acts[L][:rows], t, deltas[L][:rows], w)
            if loss_scale != 1.0:
                batch_loss *= loss_scale
                deltas[L][:rows] *= X.dtype.type(loss_scale)
            if correct_fn is not None:
                correct += correct_fn(acts[L][:rows], t)
            for l in range(L - 1, -1, -1):
                dA = deltas[l + 1][:rows]
                dense_backward(acts[l][:rows], Ws[l], acts[l + 1][:rows], dA, codes[l], dA, dWs[l], dbs[l],
                               deltas[l][:rows] if l > 0 else None)
            if l2 != 0.0:
                w_sum = float(np.sum(w, dtype=np.float64)) if weighted else float(rows)
                for W, dW in zip(Ws, dWs):
                    dW += X.dtype.type(l2 / w_sum) * W
                    batch_loss += 0.5 * l2 * float(np.sum(np.square(W, dtype=np.float64))) / w_sum
            total += batch_loss * rows
            if optimizer == GRADIENT_ONLY:
                continue
            step += 1
            if optimizer == SGD:
                sgd_step(params, grads, lr)
            elif optimizer in (MOMENTUM, NESTEROV):
                momentum_step(params, grads, state1, lr, mu_or_beta1, optimizer == NESTEROV)
            else:
                adam_step(params, grads, state1, state2, lr, mu_or_beta1, beta2, eps, step)
        epoch_loss[epoch] = total / n
        epoch_correct[epoch] = correct
        if not (np.isfinite(epoch_loss[epoch]) and np.isfinite(params).all()):
            np.copyto(params, last_good)
            return epoch, step
    return epochs, step


def _check_train_args(X, Y, labels, sample_weight, order, sizes, codes, loss, batch, params, grads, optimizer,
                      state1, state2, hyper, epoch_correct, epochs, check_values=True):
    """train_epochs' checks, shared by the compiled twin (its arrays arrive as memoryviews: only
    .shape is used on them). The compiled twin checks the values of labels and order itself
    (check_values=False), with the messages of _label_range_error and _order_range_error: NumPy
    reductions over memoryviews would cost more than a small epoch."""
    n = X.shape[0]
    if len(sizes) != len(codes) + 1 or len(codes) < 1 or min(sizes) < 1:
        raise ValueError(f"sizes {list(sizes)} and codes {list(codes)} do not describe a network")
    for c in codes:
        _check_activation(c)
    if loss not in _LOSS_KERNELS:
        raise ValueError(f"unknown loss code {loss!r}")
    if optimizer not in (SGD, MOMENTUM, ADAM, NESTEROV, GRADIENT_ONLY):
        raise ValueError(f"unknown optimizer code {optimizer!r}")
    if n < 1 or batch < 1:
        raise ValueError(f"need n >= 1 rows and batch >= 1, got n={n}, batch={batch}")
    _same_shape("X", X, (n, sizes[0]))
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        _same_shape("labels", labels, (n,))
        if check_values and (np.min(labels) < 0 or np.max(labels) >= sizes[-1]):
            raise _label_range_error(sizes[-1])
    else:
        _same_shape("Y", Y, (n, sizes[-1]))
        _same_shape("labels", labels, (0,))
    if sample_weight.shape[0]:
        _same_shape("sample_weight", sample_weight, (n,))
    else:
        _same_shape("sample_weight", sample_weight, (0,))
    if order.shape[0]:
        _same_shape("order", order, (epochs, n))
        if check_values and (np.min(order) < 0 or np.max(order) >= n):
            raise _order_range_error(n)
    else:
        _same_shape("order", order, (0, n))
    _, n_params = _layout(sizes)
    _same_shape("params", params, (n_params,))
    _same_shape("grads", grads, (n_params,))
    need = {SGD: (0, 0), MOMENTUM: (n_params, 0), ADAM: (n_params, n_params), NESTEROV: (n_params, 0),
            GRADIENT_ONLY: (0, 0)}[optimizer]
    _same_shape("state1", state1, (need[0],))
    _same_shape("state2", state2, (need[1],))
    _same_shape("hyper", hyper, (6,))
    _same_shape("epoch_correct", epoch_correct, (epochs,))


def _label_range_error(n_classes):
    return ValueError(f"labels must lie in [0, {n_classes})")


def _order_range_error(n):
    return ValueError(f"order must hold row numbers in [0, {n})")
