"""The optimizer step over the flat parameter buffer in NumPy; the compiled twin is
fastnn/_compiled/optimizers.pxi. The formulas are fastnn._contract.Update's: the learning rate
(constant or scheduled), gradient clipping, then the step. Parameters, gradients and state are
flat (n_params,) buffers, so one call updates the whole network; scalars are computed in double
and cast to the data's dtype first, as in the compiled twin."""
import math

import numpy as np

from .. import _contract as C


def scheduled_lr(update, step):
    """The learning rate of update (a fastnn._contract.Update) at step `step` (1 for the first)."""
    if not isinstance(update, C.Update):
        raise TypeError(f"update must be a fastnn._contract.Update, got {type(update).__name__}")
    C.check_schedule(update)
    if step < 1:
        raise C.step_error(step)
    return _learning_rate(update, step)


def _learning_rate(update, step):
    """scheduled_lr after its checks (the optimizer step's way in, once per step)."""
    a = update.schedule_args
    it = float(step - 1)
    if update.schedule == C.CONSTANT:
        return float(update.lr)
    if update.schedule == C.EXPONENTIAL:
        initial, decay_steps, rate, staircase = (float(x) for x in a)
        p = it / decay_steps
        if staircase != 0.0:
            p = math.floor(p)
        return initial * math.pow(rate, p)
    if update.schedule == C.PIECEWISE:
        k = (a.shape[0] - 1) // 2
        for i in range(k):
            if it <= a[i]:
                return float(a[k + i])
        return float(a[2 * k])
    initial, decay_steps, alpha, target, warmup = (float(x) for x in a)  # COSINE
    s = min(it, warmup + decay_steps)
    if s < warmup:
        return (target - initial) * (s / warmup) + initial
    cosine = 0.5 * (1.0 + math.cos(math.pi * ((s - warmup) / decay_steps)))
    return target * ((1.0 - alpha) * cosine + alpha)


def _norm(g):
    return math.sqrt(float(np.dot(g.astype(np.float64), g.astype(np.float64))))


def segments(sizes):
    """[w_at of layer 0, b_at of layer 0, w_at of layer 1, ..., end]: each W and b of the network
    with layer widths `sizes` in the flat buffer (fastnn._contract.layout)."""
    slices, n_params = C.layout(sizes)
    return [at for s in slices for at in (s.w_at, s.b_at)] + [n_params]


def _clip(update, grads, segments):
    t = grads.dtype.type
    if update.clipvalue > 0:
        np.clip(grads, t(-update.clipvalue), t(update.clipvalue), out=grads)
        return
    if update.clipnorm > 0:
        parts = [grads[a:b] for a, b in zip(segments[:-1], segments[1:])]
        limit = update.clipnorm
    elif update.global_clipnorm > 0:
        parts, limit = [grads], update.global_clipnorm
    else:
        return
    for g in parts:
        norm = _norm(g)
        if norm > limit:
            g *= t(limit / norm)


def optimizer_step(update, params, grads, step, sizes):
    """One step of `update` (fastnn._contract.Update) at step number `step` (1 for the first):
    its learning rate, the clipping of grads (in place), then the optimizer's formula over params
    and the state. params, grads: (n_params,), the flat buffers of the network with layer widths
    sizes ((L+1,) int64; clipnorm clips each layer's W and b gradient separately)."""
    if not isinstance(update, C.Update):
        raise TypeError(f"update must be a fastnn._contract.Update, got {type(update).__name__}")
    C.same_shape("params", params, (C.layout(sizes)[1],))
    C.same_shape("grads", grads, params.shape)
    C.check_update(update, params.dtype, params.shape[0], step - 1)
    if step < 1:
        raise C.step_error(step)
    apply_update(update, params, grads, step, segments(sizes))


def _flush(state):
    """The contract's flush of optimizer state: subnormal values become 0 (NaN stays NaN)."""
    state[np.abs(state) < np.finfo(state.dtype).tiny] = 0


def apply_update(update, params, grads, step, segments):
    """optimizer_step after its checks (the trainer's way in); segments: `segments(sizes)`."""
    t = params.dtype.type
    lr = _learning_rate(update, step)
    _clip(update, grads, segments)
    kind = update.optimizer
    if kind == C.SGD:
        params -= t(lr) * grads
    elif kind in (C.MOMENTUM, C.NESTEROV):
        velocity = update.velocity
        velocity *= t(update.momentum)
        velocity -= t(lr) * grads
        _flush(velocity)
        if kind == C.NESTEROV:
            params += t(update.momentum) * velocity - t(lr) * grads
        else:
            params += velocity
    elif kind == C.RMSPROP:
        v = update.v
        v *= t(update.rho)
        v += t(1 - update.rho) * grads * grads
        _flush(v)
        increment = t(lr) * grads / np.sqrt(v + t(update.eps))
        if update.momentum > 0:
            update.velocity *= t(update.momentum)
            update.velocity += increment
            _flush(update.velocity)
            params -= update.velocity
        else:
            params -= increment
    else:  # ADAM, ADAMW
        if kind == C.ADAMW:
            params -= t(lr * update.weight_decay) * params
        m, v = update.m, update.v
        m *= t(update.beta1)
        m += t(1 - update.beta1) * grads
        v *= t(update.beta2)
        v += t(1 - update.beta2) * grads * grads
        _flush(m)
        _flush(v)
        step_size = lr * (1 - update.beta2 ** step) ** 0.5 / (1 - update.beta1 ** step)
        params -= t(step_size) * m / (np.sqrt(v) + t(update.eps))
