"""Optimizers: their hyper-parameters and their state, as the training step takes them
(`update()`: a fastnn._contract.Update), and a step of their own for code outside fit.

The model keeps every parameter in one flat buffer (and every gradient in another), so a step is a
single pass over memory, whatever the number of layers.
"""
import numpy as np

from . import _contract
from .backend import ops
from .validation import check_real


class SGD:
    """Gradient descent, with Keras' momentum when momentum > 0: v = μ v - η g; w += v
    (Nesterov's: w += μ v - η g)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        self.momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        self._velocity = None
        self.iterations = 0

    def build(self, n_params: int, dtype: np.dtype) -> None:
        """(Re)create the state for a network of `n_params` parameters."""
        self._velocity = np.zeros(n_params, dtype) if self.momentum > 0 else None
        self.iterations = 0

    def update(self) -> _contract.Update:
        """The training step's optimizer step: these settings, and the state it updates in place."""
        if self._velocity is None:
            return _contract.Update(optimizer=_contract.SGD, lr=self.lr)
        return _contract.Update(optimizer=_contract.NESTEROV if self.nesterov else _contract.MOMENTUM,
                                lr=self.lr, momentum=self.momentum, velocity=self._velocity)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update params (flat, (n_params,)) in place from grads (same shape)."""
        self.iterations += 1
        if self._velocity is None:
            ops().sgd_step(params, grads, self.lr)
        else:
            ops().momentum_step(params, grads, self._velocity, self.lr, self.momentum, self.nesterov)

    def config(self) -> dict:
        return {"name": "sgd", "lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov})"


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction, in the form Keras and scikit-learn use:
    the step is η sqrt(1 - β2^t) / (1 - β1^t) · m / (sqrt(v) + ε)."""

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        self.beta1 = check_real("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = check_real("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = check_real("eps", eps, low=0.0, low_open=True)
        self._m = self._v = None
        self.iterations = 0

    def build(self, n_params: int, dtype: np.dtype) -> None:
        self._m = np.zeros(n_params, dtype)
        self._v = np.zeros(n_params, dtype)
        self.iterations = 0

    def update(self) -> _contract.Update:
        """The training step's optimizer step: these settings, and the state it updates in place."""
        return _contract.Update(optimizer=_contract.ADAM, lr=self.lr, beta1=self.beta1, beta2=self.beta2,
                                eps=self.eps, m=self._m, v=self._v)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        self.iterations += 1
        ops().adam_step(params, grads, self._m, self._v, self.lr, self.beta1, self.beta2, self.eps,
                        self.iterations)

    def config(self) -> dict:
        return {"name": "adam", "lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})"


# Optimizers by name, with Keras' defaults.
OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(optimizer):
    """An optimizer instance from a name or an instance (instances are used as given)."""
    if isinstance(optimizer, (SGD, Adam)):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an fnn.SGD / fnn.Adam instance, "
                     f"got {optimizer!r}")


def from_config(config: dict):
    config = dict(config)
    return OPTIMIZERS[config.pop("name")](**config)
