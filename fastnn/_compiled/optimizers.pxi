# The optimizer step over the flat parameter buffer, the formulas of fastnn._contract.Update (the
# NumPy twin: fastnn/_fallback/optimizers.py): the learning rate (constant or scheduled), gradient
# clipping, then the step. Parameters, gradients and state are flat 1-D buffers of equal length,
# so one pass updates the whole network; scalars are computed in double and cast to the data's
# dtype first, as in the NumPy twin. _update is the trainer's way in; _update_args reads an Update.

from libc.math cimport cos, floor, M_PI
from libc.float cimport DBL_MIN, FLT_MIN


cdef inline floating _normal_or_zero(floating x) noexcept nogil:
    """x, or 0 where x is subnormal (the contract's flush of optimizer state); NaN stays NaN."""
    cdef floating tiny = FLT_MIN if floating is float else DBL_MIN
    return 0 if _abs(x) < tiny else x


cdef struct UpdateArgs:
    int optimizer
    double lr, momentum, beta1, beta2, eps, rho, weight_decay
    double clipvalue, clipnorm, global_clipnorm
    int schedule
    const double* schedule_args
    Py_ssize_t n_schedule_args
    const Py_ssize_t* segments  # 2L+1 offsets: each layer's W and b in the flat buffers (clipnorm)
    Py_ssize_t n_segments


cdef double _scheduled_lr(const UpdateArgs* u, long long step) noexcept nogil:
    """The learning rate at step `step` (1 for the first): the contract's SCHEDULES at it = step - 1."""
    cdef const double* a = u.schedule_args
    cdef double it = <double>(step - 1), p, s, cosine
    cdef Py_ssize_t i, k
    if u.schedule == CONSTANT:
        return u.lr
    if u.schedule == EXPONENTIAL:
        p = it / a[1]
        if a[3] != 0.0:
            p = floor(p)
        return a[0] * pow(a[2], p)
    if u.schedule == PIECEWISE:
        k = (u.n_schedule_args - 1) // 2
        for i in range(k):
            if it <= a[i]:
                return a[k + i]
        return a[2 * k]
    s = min(it, a[4] + a[1])  # COSINE
    if s < a[4]:
        return (a[3] - a[0]) * (s / a[4]) + a[0]
    cosine = 0.5 * (1.0 + cos(M_PI * ((s - a[4]) / a[1])))
    return a[3] * ((1.0 - a[2]) * cosine + a[2])


cdef void _scale(floating* g, Py_ssize_t size, double limit) noexcept nogil:
    """g *= limit / |g| where |g| > limit."""
    cdef double norm = sqrt(_sum_squares(g, size))
    cdef floating factor
    cdef Py_ssize_t i
    if norm > limit:
        factor = <floating>(limit / norm)
        for i in range(size):
            g[i] = g[i] * factor


cdef void _clip(const UpdateArgs* u, floating* G, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating c = <floating>u.clipvalue
    if u.clipvalue > 0:
        for i in range(size):
            G[i] = min(max(G[i], -c), c)
    elif u.clipnorm > 0:
        for i in range(u.n_segments - 1):
            _scale(G + u.segments[i], u.segments[i + 1] - u.segments[i], u.clipnorm)
    elif u.global_clipnorm > 0:
        _scale(G, size, u.global_clipnorm)


cdef void _sgd_step(floating* param, const floating* grad, Py_ssize_t size, floating lr) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] = param[i] - lr * grad[i]


cdef void _momentum_step(floating* param, const floating* grad, floating* velocity, Py_ssize_t size,
                         floating lr, floating momentum, bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    if _simd:  # elementwise.h: the same operations on whole vectors
        if floating is float:
            fastnn_ew_step_f(FASTNN_EW_NESTEROV if nesterov else FASTNN_EW_MOMENTUM, param, grad, velocity, NULL,
                             size, lr, momentum, 0, 0, 0, 0, 0, _wide)
        else:
            fastnn_ew_step_d(FASTNN_EW_NESTEROV if nesterov else FASTNN_EW_MOMENTUM, param, grad, velocity, NULL,
                             size, lr, momentum, 0, 0, 0, 0, 0, _wide)
        return
    if nesterov:  # two loops, not a test inside one: a loop with a branch in it does not vectorise
        for i in range(size):
            v = _normal_or_zero(velocity[i] * momentum - lr * grad[i])
            velocity[i] = v
            param[i] = param[i] + (momentum * v - lr * grad[i])
    else:
        for i in range(size):
            v = _normal_or_zero(velocity[i] * momentum - lr * grad[i])
            velocity[i] = v
            param[i] = param[i] + v


cdef void _adam_step(floating* param, const floating* grad, floating* m, floating* v, Py_ssize_t size,
                     double lr, double beta1, double beta2, double eps, long long step, bint decoupled,
                     floating decay) noexcept nogil:
    """Adam's update; with `decoupled` (AdamW) param -= decay * param first."""
    # Python's float ** int and ** 0.5 are C pow, as here.
    cdef double step_size = lr * pow(1 - pow(beta2, <double>step), 0.5) / (1 - pow(beta1, <double>step))
    cdef floating b1 = <floating>beta1, c1 = <floating>(1 - beta1), b2 = <floating>beta2
    cdef floating c2 = <floating>(1 - beta2), s = <floating>step_size
    cdef floating e = <floating>eps, g, mi, vi
    cdef Py_ssize_t i
    cdef int formula = FASTNN_EW_ADAMW if decoupled else FASTNN_EW_ADAM
    if _simd:  # elementwise.h: the same operations on whole vectors, the decay in the same pass
        if floating is float:
            fastnn_ew_step_f(formula, param, grad, m, v, size, b1, c1, b2, c2, s, e, decay, _wide)
        else:
            fastnn_ew_step_d(formula, param, grad, m, v, size, b1, c1, b2, c2, s, e, decay, _wide)
        return
    if decoupled:
        _decay(param, size, decay)
    for i in range(size):
        g = grad[i]
        mi = _normal_or_zero(m[i] * b1 + c1 * g)
        vi = _normal_or_zero(v[i] * b2 + c2 * g * g)
        m[i] = mi
        v[i] = vi
        param[i] = param[i] - s * mi / (_sqrt(vi) + e)


cdef void _rmsprop_step(floating* param, const floating* grad, floating* v, floating* velocity, Py_ssize_t size,
                        floating lr, floating rho, floating eps, floating momentum) noexcept nogil:
    cdef floating c = 1 - rho, g, vi, increment
    cdef Py_ssize_t i
    if _simd:  # elementwise.h: the same operations on whole vectors
        if floating is float:
            fastnn_ew_step_f(FASTNN_EW_RMSPROP, param, grad, v, velocity, size, lr, rho, eps, momentum, 0, 0, 0, _wide)
        else:
            fastnn_ew_step_d(FASTNN_EW_RMSPROP, param, grad, v, velocity, size, lr, rho, eps, momentum, 0, 0, 0, _wide)
        return
    for i in range(size):
        g = grad[i]
        vi = _normal_or_zero(v[i] * rho + c * g * g)
        v[i] = vi
        increment = lr * g / _sqrt(vi + eps)
        if velocity != NULL:
            increment = _normal_or_zero(velocity[i] * momentum + increment)
            velocity[i] = increment
        param[i] = param[i] - increment


cdef void _decay(floating* param, Py_ssize_t size, floating rate) noexcept nogil:
    """Decoupled weight decay: param -= rate * param."""
    cdef Py_ssize_t i
    for i in range(size):
        param[i] = param[i] - rate * param[i]


cdef void _update(const UpdateArgs* u, floating* P, floating* G, floating* velocity, floating* m, floating* v,
                  Py_ssize_t size, long long step) noexcept nogil:
    """One step of optimizer u (the contract's Update) over the flat buffers; step >= 1 (Adam's t).
    G is clipped in place."""
    cdef double lr = _scheduled_lr(u, step)
    _clip(u, G, size)
    _step(u, lr, P, G, velocity, m, v, size, step)


cdef void _step(const UpdateArgs* u, double lr, floating* P, const floating* G, floating* velocity, floating* m,
                floating* v, Py_ssize_t size, long long step) noexcept nogil:
    """The optimizer's formula at learning rate lr over size elements of the flat buffers (any
    range of them: every element's update depends on that element alone); state pointers NULL
    where the optimizer keeps none."""
    if u.optimizer == SGD:
        _sgd_step(P, G, size, <floating>lr)
    elif u.optimizer == MOMENTUM or u.optimizer == NESTEROV:
        _momentum_step(P, G, velocity, size, <floating>lr, <floating>u.momentum, u.optimizer == NESTEROV)
    elif u.optimizer == RMSPROP:
        _rmsprop_step(P, G, v, velocity if u.momentum > 0 else NULL, size, <floating>lr, <floating>u.rho,
                      <floating>u.eps, <floating>u.momentum)
    else:
        _adam_step(P, G, m, v, size, lr, u.beta1, u.beta2, u.eps, step, u.optimizer == ADAMW,
                   <floating>(lr * u.weight_decay))


cdef class _UpdateState:
    """An Update read for the nogil loop: its numbers in `args`, its state arrays' data pointers,
    the schedule's numbers and the layers' offsets kept alive here."""
    cdef UpdateArgs args
    cdef object schedule_args, segments
    cdef void* velocity
    cdef void* m
    cdef void* v


cdef _UpdateState _update_state(update, sizes):
    """The _UpdateState of update (a checked fastnn._contract.Update) for the network of layer
    widths `sizes` (a list)."""
    cdef _UpdateState state = _UpdateState()
    cdef UpdateArgs* u = &state.args
    memset(u, 0, sizeof(UpdateArgs))
    u.optimizer = update.optimizer
    u.lr = update.lr
    u.momentum = update.momentum
    u.beta1 = update.beta1
    u.beta2 = update.beta2
    u.eps = update.eps
    u.rho = update.rho
    u.weight_decay = update.weight_decay
    u.clipvalue = update.clipvalue
    u.clipnorm = update.clipnorm
    u.global_clipnorm = update.global_clipnorm
    u.schedule = update.schedule
    cdef const double[::1] schedule_view
    if update.schedule_args is not None:
        state.schedule_args = np.ascontiguousarray(update.schedule_args, np.float64)
        schedule_view = state.schedule_args
        u.schedule_args = &schedule_view[0]
        u.n_schedule_args = schedule_view.shape[0]
    slices, n_params = _contract.layout(sizes)
    state.segments = np.array([at for part in slices for at in (part.w_at, part.b_at)] + [n_params], np.intp)
    cdef const Py_ssize_t[::1] segment_view = state.segments
    u.segments = &segment_view[0]
    u.n_segments = segment_view.shape[0]
    state.velocity = _data_or_null(update.velocity)
    state.m = _data_or_null(update.m)
    state.v = _data_or_null(update.v)
    return state


cdef void* _data_or_null(a):
    """The data pointer of a C-contiguous array, or NULL for None (the caller holds the array)."""
    if a is None:
        return NULL
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError("the optimizer's state arrays must be C-contiguous and writeable")
    return <void*><Py_ssize_t>a.ctypes.data


def scheduled_lr(update, long long step):
    """The learning rate of update (a fastnn._contract.Update) at step `step` (1 for the first)."""
    if not isinstance(update, _contract.Update):
        raise TypeError(f"update must be a fastnn._contract.Update, got {type(update).__name__}")
    _contract.check_schedule(update)
    if step < 1:
        raise _contract.step_error(step)
    cdef _UpdateState state = _update_state(update, [1, 1])
    return _scheduled_lr(&state.args, step)


def optimizer_step(update, floating[::1] params not None, floating[::1] grads not None, long long step, sizes):
    """One step of update (fastnn._contract.Update) at step number `step` (1 for the first): its
    learning rate, the clipping of grads (in place), then the optimizer's formula over params and
    the state. params, grads: (n_params,), the flat buffers of the network with layer widths sizes
    ((L+1,) int64; clipnorm clips each layer's W and b gradient separately)."""
    if not isinstance(update, _contract.Update):
        raise TypeError(f"update must be a fastnn._contract.Update, got {type(update).__name__}")
    sizes = [int(s) for s in sizes]
    _contract.same_shape("params", params, (_contract.layout(sizes)[1],))
    _contract.same_shape("grads", grads, (params.shape[0],))
    _contract.check_update(update, np.asarray(params).dtype, params.shape[0], step - 1)
    if step < 1:
        raise _contract.step_error(step)
    cdef _UpdateState state = _update_state(update, sizes)
    with nogil:
        _update(&state.args, &params[0], &grads[0], <floating*>state.velocity, <floating*>state.m,
                <floating*>state.v, params.shape[0], step)
