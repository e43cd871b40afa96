"""Whole training runs in NumPy: the training step written once for this twin; the compiled twin
is fastnn/_compiled/trainer.pxi.

Each batch: gather its rows, forward layer by layer, the loss and its gradient from the output,
backward layer by layer, the optimizer step. fastnn.trainer is the one caller of train_epochs.
"""
import contextlib
import signal
import threading

import numpy as np

from .. import _contract as C
from . import losses as _losses
from . import metrics as _metrics
from .activations import activate
from .dense import dense_backward, dense_forward
from .metrics import metric_sum, sparse_metric_sum
from .optimizers import apply_update, segments

# The loss table's kernels in this twin: code -> (loss and gradient, correct count or None).
_LOSS_KERNELS = {code: (getattr(_losses, row.kernel), row.counts and getattr(_metrics, row.counts))
                 for code, row in C.LOSSES.items()}


def step_path(run):
    """Which specialisation of the step train_epochs takes for `run`: always "layers" here (the
    compiled twin also has "lanes", for tiny networks, and "pool", for large ones on several threads)."""
    return "layers"


def _lowbias32(x):
    """fastnn._contract.lowbias32 over a uint32 array (the multiplies wrap)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _keep_bits(base, count):
    """fastnn._contract.keep_bits(base, e) for e in [0, count), vectorised."""
    e = np.arange(count, dtype=np.uint32) + np.uint32(base & 0xFFFFFFFF)
    return _lowbias32(_lowbias32(e) ^ np.uint32(base >> 32))


def _dropout_mask(run, step, layer, shape, dtype):
    """The (rows, width) mask of layer `layer`'s input at step `step`: 1 / (1 - rate) where kept, else 0."""
    rate = float(run.dropout[layer])
    bits = _keep_bits(C.mask_base(run.dropout_seed, step, layer), shape[0] * shape[1]).reshape(shape)
    return np.where(bits >= np.uint32(C.keep_threshold(rate)), dtype.type(1.0 / (1.0 - rate)), dtype.type(0.0))


@contextlib.contextmanager
def _sigint_as_flag():
    """A [bool] that Ctrl-C sets while the block runs, instead of raising KeyboardInterrupt
    wherever Python happens to be (in the middle of an update, say): in the main thread, while
    SIGINT has Python's default handler; elsewhere a flag that stays False."""
    flag = [False]
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def train_epochs(run, order, step, epoch_loss, epoch_correct, epoch_metrics):
    """Train run (fastnn._contract.TrainingRun) for len(epoch_loss) epochs in one call; returns
    (epochs finished, optimizer step count, stopped).

    order: (epochs, n) int64 row order of each epoch, or None to take the rows in order. step: the
    number of updates made so far (Adam's t). Writes per epoch the mean loss into epoch_loss
    (float64 (epochs,)), the number of correct predictions into epoch_correct (int64 (epochs,)) and
    the sums of run.metrics into epoch_metrics (float64 (epochs, k)).
    If an epoch's loss or parameters are not finite, the parameters are put back as they were
    before that epoch and the call returns early: epochs finished < len(epoch_loss), and
    epoch_loss[finished] holds the bad loss. A stop request (run.stop) or Ctrl-C ends the call
    after the batch it is in (stopped True): the parameters, the optimizer state and the step
    count are those of that last batch, and a partly trained epoch does not count as finished.
    """
    epochs = C.check_run(run, order, step, epoch_loss, epoch_correct, epoch_metrics)
    # Overflow is the run's to report (its finiteness checks), as in the compiled twin: no warnings.
    with _sigint_as_flag() as interrupted, np.errstate(all="ignore"):
        finished, step, stopped = _train(run, order, step, epoch_loss, epoch_correct, epoch_metrics, epochs,
                                         interrupted)
    return finished, step, stopped or interrupted[0]  # a Ctrl-C after the last batch's check counts too


def _train(run, order, step, epoch_loss, epoch_correct, epoch_metrics, epochs, interrupted):
    """train_epochs after its checks; interrupted[0] becomes True on Ctrl-C."""
    X, params, grads, batch, update = run.X, run.params, run.grads, run.batch, run.update
    sizes = [int(s) for s in run.sizes]
    codes = [int(c) for c in run.codes]
    n, L, dtype = X.shape[0], len(codes), X.dtype
    sparse = run.loss == C.SPARSE_CATEGORICAL_CROSSENTROPY
    targets = run.labels if sparse else run.Y
    slices, _ = C.layout(sizes)
    segs = segments(sizes)
    Ws = [params[s.w_at:s.b_at].reshape(i, o) for s, i, o in zip(slices, sizes[:-1], sizes[1:])]
    bs = [params[s.b_at:s.end] for s in slices]
    dWs = [grads[s.w_at:s.b_at].reshape(i, o) for s, i, o in zip(slices, sizes[:-1], sizes[1:])]
    dbs = [grads[s.b_at:s.end] for s in slices]
    acts = [None] + [np.empty((batch, s), dtype) for s in sizes[1:]]
    deltas = [None] + [np.empty((batch, s), dtype) for s in sizes[1:]]
    X_batch = np.empty((batch, sizes[0]), dtype)
    t_batch = np.empty((batch,) + targets.shape[1:], targets.dtype)
    w_batch = np.empty(batch, dtype)
    weights = run.sample_weight
    last_good = np.empty_like(params)
    loss_fn, correct_fn = _LOSS_KERNELS[run.loss]
    l2, loss_scale = float(run.l2), float(run.loss_scale)
    metrics = [] if run.metrics is None else [int(m) for m in run.metrics]
    fused = C.LOSSES[run.loss].fused
    predictions = np.empty((batch, sizes[-1]), dtype) if metrics and fused is not None else None
    dropping = [] if run.dropout is None else [l for l in range(L) if run.dropout[l] > 0]
    penalties = [] if run.penalties is None else [(l, float(a), float(b)) for l, (a, b) in enumerate(run.penalties)
                                                  if a > 0 or b > 0]
    for epoch in range(epochs):
        np.copyto(last_good, params)
        total, correct = 0.0, 0
        sums = np.zeros(len(metrics))
        for start in range(0, n, batch):
            rows = min(batch, n - start)
            w = None
            if order is not None:
                idx = order[epoch, start:start + rows]
                acts[0] = np.take(X, idx, axis=0, out=X_batch[:rows])
                t = np.take(targets, idx, axis=0, out=t_batch[:rows])
                if weights is not None:
                    w = np.take(weights, idx, out=w_batch[:rows])
            else:
                acts[0], t = X[start:start + rows], targets[start:start + rows]
                if weights is not None:
                    w = weights[start:start + rows]
            # what each layer multiplies: its input, or the dropped-out copy (the backward pass
            # reuses the mask)
            inputs, masks = [], {}
            for l in range(L):
                inputs.append(acts[l][:rows])
                if l in dropping:
                    masks[l] = _dropout_mask(run, step + 1, l, (rows, sizes[l]), dtype)
                    inputs[l] = inputs[l] * masks[l]
                dense_forward(inputs[l], Ws[l], bs[l], codes[l], acts[l + 1][:rows], run.bfloat16)
            out = acts[L][:rows]
            batch_loss = loss_fn(out, t, deltas[L][:rows], w)
            if loss_scale != 1.0:
                batch_loss *= loss_scale
                deltas[L][:rows] *= dtype.type(loss_scale)
            if correct_fn is not None and run.count_correct:
                correct += correct_fn(out, t)
            if metrics:
                P = out
                if fused is not None:  # the metrics see probabilities, not the logits the loss takes
                    P = predictions[:rows]
                    activate(out, fused, P)
                for j, m in enumerate(metrics):
                    sums[j] += sparse_metric_sum(P, t, m, run.top_k) if sparse else metric_sum(P, t, m, run.top_k)
            for l in range(L - 1, -1, -1):
                dA = deltas[l + 1][:rows]
                dense_backward(inputs[l], Ws[l], acts[l + 1][:rows], dA, codes[l], dA, dWs[l], dbs[l],
                               deltas[l][:rows] if l > 0 else None, run.bfloat16)
                if l in masks and l > 0:
                    deltas[l][:rows] *= masks[l]
            if l2 != 0.0:
                w_sum = float(np.sum(w, dtype=np.float64)) if w is not None else float(rows)
                w_sum = w_sum if w_sum > 0 else 1.0
                for W, dW in zip(Ws, dWs):
                    dW += dtype.type(l2 / w_sum) * W
                    batch_loss += 0.5 * l2 * float(np.sum(np.square(W, dtype=np.float64))) / w_sum
            for l, l1_, l2_ in penalties:  # Keras' kernel regularizers
                if l1_ > 0:
                    dWs[l] += dtype.type(l1_) * np.sign(Ws[l])
                    batch_loss += l1_ * float(np.sum(np.abs(Ws[l]), dtype=np.float64))
                if l2_ > 0:
                    dWs[l] += dtype.type(2.0 * l2_) * Ws[l]
                    batch_loss += l2_ * float(np.sum(np.square(Ws[l], dtype=np.float64)))
            total += batch_loss * rows
            if update is not None:
                step += 1
                apply_update(update, params, grads, step, segs)
            if interrupted[0] or (run.stop is not None and run.stop[0]):
                stopped = True
                break
        else:
            stopped = False
        if stopped and start + batch < n:  # within an epoch: it does not count as finished
            return epoch, step, True
        epoch_loss[epoch] = total / n
        epoch_correct[epoch] = correct
        epoch_metrics[epoch] = sums
        if not (np.isfinite(epoch_loss[epoch]) and np.isfinite(params).all()):
            np.copyto(params, last_good)
            return epoch, step, stopped
        if stopped:
            return epoch + 1, step, True
    return epochs, step, False
