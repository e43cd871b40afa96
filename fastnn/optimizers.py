"""Optimizers: their hyper-parameters and their state, as the training step takes them
(`update()`: a fastnn._contract.Update), and a step of their own for code outside fit.

The model keeps every parameter in one flat buffer (and every gradient in another), so a step is a
single pass over memory, whatever the number of layers.
"""
from typing import Optional

import numpy as np

from . import _contract
from .backend import ops
from .validation import check_real


class Optimizer:
    """What every optimizer has: `learning_rate` (alias `lr`, Keras' old name), `iterations` (the
    steps taken), and the one model it belongs to once compiled. A callback may change
    `learning_rate` (or any setting) during fit: the change takes effect from the next epoch."""

    name = ""

    def __init__(self, learning_rate: float, lr, default: float):
        if lr is not None:
            if learning_rate != default:
                raise TypeError("give the learning rate once: learning_rate= (or its alias lr=)")
            learning_rate = lr
        self.learning_rate = learning_rate
        self.iterations = 0
        self.owner = None  # the Sequential whose parameters this optimizer's state is for

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self._learning_rate = check_real("learning_rate", value, low=0.0, low_open=True)

    @property
    def lr(self) -> float:
        """Alias of learning_rate."""
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = value

    def attach(self, model) -> None:
        """Make this optimizer `model`'s (compile does): ValueError if another model has it, since
        its state (moments, velocity) belongs to that model's parameters."""
        if self.owner is not None and self.owner is not model:
            raise ValueError(f"this {type(self).__name__} is already compiled into another model, whose "
                             f"state it holds; give each model its own optimizer (e.g. "
                             f"fnn.optimizers.from_config(opt.config()))")
        self.owner = model

    def build(self, n_params: int, dtype: np.dtype) -> None:
        """(Re)create the state for a network of `n_params` parameters; iterations restart at 0."""
        self.iterations = 0
        self._build(n_params, np.dtype(dtype))

    def _build(self, n_params: int, dtype: np.dtype) -> None:
        raise NotImplementedError

    def update(self) -> _contract.Update:
        """The training step's optimizer step: the current settings, and the state it updates in place."""
        raise NotImplementedError

    def config(self) -> dict:
        """The settings (not the state): from_config(config()) is a fresh optimizer like this one."""
        return {"name": self.name, "learning_rate": self.learning_rate, **self._settings()}

    def _settings(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """Gradient descent, with Keras' momentum when momentum > 0: v = μ v - η g; w += v
    (Nesterov's: w += μ v - η g)."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 *, lr: Optional[float] = None):
        super().__init__(learning_rate, lr, default=0.01)
        self.momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        self._velocity = None

    def _build(self, n_params: int, dtype: np.dtype) -> None:
        self._velocity = np.zeros(n_params, dtype) if self.momentum > 0 else None

    def update(self) -> _contract.Update:
        if self._velocity is None:
            return _contract.Update(optimizer=_contract.SGD, lr=self.learning_rate)
        return _contract.Update(optimizer=_contract.NESTEROV if self.nesterov else _contract.MOMENTUM,
                                lr=self.learning_rate, momentum=self.momentum, velocity=self._velocity)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update params (flat, (n_params,)) in place from grads (same shape)."""
        self.iterations += 1
        if self._velocity is None:
            ops().sgd_step(params, grads, self.learning_rate)
        else:
            ops().momentum_step(params, grads, self._velocity, self.learning_rate, self.momentum, self.nesterov)

    def _settings(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, in the form Keras and scikit-learn use:
    the step is η sqrt(1 - β2^t) / (1 - β1^t) · m / (sqrt(v) + ε). Keras' spellings beta_1,
    beta_2, epsilon are accepted too (Keras' default epsilon is 1e-7, fastnn's 1e-8)."""

    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 *, lr: Optional[float] = None, beta_1: Optional[float] = None, beta_2: Optional[float] = None,
                 epsilon: Optional[float] = None):
        super().__init__(learning_rate, lr, default=0.001)
        beta1, beta2, eps = (_alias(name, value, keras, default) for name, value, keras, default in
                             (("beta1", beta1, beta_1, 0.9), ("beta2", beta2, beta_2, 0.999), ("eps", eps, epsilon, 1e-8)))
        self.beta1 = check_real("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = check_real("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = check_real("eps", eps, low=0.0, low_open=True)
        self._m = self._v = None

    def _build(self, n_params: int, dtype: np.dtype) -> None:
        self._m = np.zeros(n_params, dtype)
        self._v = np.zeros(n_params, dtype)

    def update(self) -> _contract.Update:
        return _contract.Update(optimizer=_contract.ADAM, lr=self.learning_rate, beta1=self.beta1, beta2=self.beta2,
                                eps=self.eps, m=self._m, v=self._v)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        self.iterations += 1
        ops().adam_step(params, grads, self._m, self._v, self.learning_rate, self.beta1, self.beta2, self.eps,
                        self.iterations)

    def _settings(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


def _alias(name: str, value, keras_value, default):
    """value, or the same setting under Keras' spelling (beta_1 for beta1, ...), given once."""
    if keras_value is None:
        return value
    if value != default:
        raise TypeError(f"give {name} once (it was given under Keras' name too)")
    return keras_value


# Optimizers by name, with Keras' defaults.
OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(optimizer) -> Optimizer:
    """An optimizer instance from a name or an instance (instances are used as given)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an optimizer instance (fnn.SGD(...), "
                     f"fnn.Adam(...), ...), got {optimizer!r}")


def from_config(config: dict) -> Optimizer:
    """A fresh optimizer from `config()`'s dict (files written before learning_rate say "lr")."""
    config = dict(config)
    return OPTIMIZERS[config.pop("name")](**config)
