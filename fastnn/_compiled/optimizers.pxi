# Optimizer steps over the flat parameter buffer, the formulas of fastnn._contract.Update (the NumPy
# twin: fastnn/_fallback/optimizers.py). Parameters, gradients and state are flat 1-D buffers of
# equal length, so one pass updates the whole network; scalars are cast to the data's dtype first,
# as in the NumPy twin. _update is the trainer's way in, by optimizer code.

cdef void _sgd_step(floating* param, const floating* grad, Py_ssize_t size, floating lr) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] = param[i] - lr * grad[i]


def sgd_step(floating[::1] param not None, const floating[::1] grad not None, double lr):
    """param -= lr * grad."""
    if grad.shape[0] != param.shape[0]:
        raise _contract.shape_error("grad", grad, (param.shape[0],))
    with nogil:
        _sgd_step(_out1(param), _in1(grad), param.shape[0], <floating>lr)


cdef void _momentum_step(floating* param, const floating* grad, floating* velocity, Py_ssize_t size,
                         floating lr, floating momentum, bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    if nesterov:  # two loops, not a test inside one: a loop with a branch in it does not vectorise
        for i in range(size):
            v = velocity[i] * momentum - lr * grad[i]
            velocity[i] = v
            param[i] = param[i] + (momentum * v - lr * grad[i])
    else:
        for i in range(size):
            v = velocity[i] * momentum - lr * grad[i]
            velocity[i] = v
            param[i] = param[i] + v


def momentum_step(floating[::1] param not None, const floating[::1] grad not None,
                  floating[::1] velocity not None, double lr, double momentum, bint nesterov=False):
    """SGD with momentum as Keras and scikit-learn write it: velocity = momentum * velocity - lr * grad;
    param += velocity, or with Nesterov's momentum param += momentum * velocity - lr * grad."""
    if grad.shape[0] != param.shape[0]:
        raise _contract.shape_error("grad", grad, (param.shape[0],))
    if velocity.shape[0] != param.shape[0]:
        raise _contract.shape_error("velocity", velocity, (param.shape[0],))
    with nogil:
        _momentum_step(_out1(param), _in1(grad), _out1(velocity), param.shape[0], <floating>lr,
                       <floating>momentum, nesterov)


cdef void _adam_step(floating* param, const floating* grad, floating* m, floating* v, Py_ssize_t size,
                     double lr, double beta1, double beta2, double eps, long long step) noexcept nogil:
    # Python's float ** int and ** 0.5 are C pow, as here.
    cdef double step_size = lr * pow(1 - pow(beta2, <double>step), 0.5) / (1 - pow(beta1, <double>step))
    cdef floating b1 = <floating>beta1, c1 = <floating>(1 - beta1), b2 = <floating>beta2
    cdef floating c2 = <floating>(1 - beta2), s = <floating>step_size
    cdef floating e = <floating>eps, g, mi, vi
    cdef Py_ssize_t i
    for i in range(size):
        g = grad[i]
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * g * g
        m[i] = mi
        v[i] = vi
        param[i] = param[i] - s * mi / (_sqrt(vi) + e)


def adam_step(floating[::1] param not None, const floating[::1] grad not None, floating[::1] m not None,
              floating[::1] v not None, double lr, double beta1, double beta2, double eps, long long step):
    """Adam (Kingma & Ba, section 2's efficient form, as Keras and scikit-learn write it) at step
    number `step` (1 for the first update): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
    param -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)."""
    if grad.shape[0] != param.shape[0]:
        raise _contract.shape_error("grad", grad, (param.shape[0],))
    if m.shape[0] != param.shape[0]:
        raise _contract.shape_error("m", m, (param.shape[0],))
    if v.shape[0] != param.shape[0]:
        raise _contract.shape_error("v", v, (param.shape[0],))
    if step < 1:
        raise _contract.step_error(step)
    with nogil:
        _adam_step(_out1(param), _in1(grad), _out1(m), _out1(v), param.shape[0], lr, beta1, beta2, eps, step)


cdef struct UpdateArgs:
    int optimizer
    double lr, momentum, beta1, beta2, eps


cdef void _update(const UpdateArgs* u, floating* P, const floating* G, floating* velocity, floating* m, floating* v,
                  Py_ssize_t size, long long step) noexcept nogil:
    """One step of optimizer u (the contract's Update) over the flat buffers; step >= 1 (Adam's t)."""
    if u.optimizer == SGD:
        _sgd_step(P, G, size, <floating>u.lr)
    elif u.optimizer == MOMENTUM or u.optimizer == NESTEROV:
        _momentum_step(P, G, velocity, size, <floating>u.lr, <floating>u.momentum, u.optimizer == NESTEROV)
    else:
        _adam_step(P, G, m, v, size, u.lr, u.beta1, u.beta2, u.eps, step)
