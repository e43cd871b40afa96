"""Optimizer steps over the flat parameter buffer in NumPy; the compiled twin is
fastnn/_compiled/optimizers.pxi. The formulas are fastnn._contract.Update's. Parameters, gradients
and state are flat (n_params,) buffers, so one call updates the whole network; scalars are cast
to the data's dtype first."""
import numpy as np

from .._contract import same_shape, step_error


def _check_flat(param, *others):
    for name, a in others:
        same_shape(name, a, param.shape)


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
        raise step_error(step)
    t = param.dtype.type
    m *= t(beta1)
    m += t(1 - beta1) * grad
    v *= t(beta2)
    v += t(1 - beta2) * grad * grad
    step_size = lr * (1 - beta2 ** step) ** 0.5 / (1 - beta1 ** step)
    param -= t(step_size) * m / (np.sqrt(v) + t(eps))
