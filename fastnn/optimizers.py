"""Optimizers: their hyper-parameters and their state, as the training step takes them
(`update()`: a fastnn._contract.Update), and a step of their own for code outside fit.

The model keeps every parameter in one flat buffer (and every gradient in another), so a step is a
single pass over memory, whatever the number of layers. The learning rate may be a schedule
(fastnn.schedules, also fastnn.optimizers.schedules), evaluated at every step inside the run;
clipnorm (each W and b gradient), global_clipnorm (all of them) and clipvalue clip the gradient
first, as Keras' optimizers do.
"""
import dataclasses
from typing import Optional, Union

import numpy as np

from . import _contract, schedules
from .backend import ops
from .validation import check_real


class Optimizer:
    """What every optimizer has: `learning_rate` (alias `lr`, Keras' old name: a number, or a
    schedule), gradient clipping, `iterations` (the steps taken), and the one model it belongs to
    once compiled. A callback may change `learning_rate` (or any setting) during fit: the change
    takes effect from the next epoch."""

    name = ""
    code = _contract.SGD

    def __init__(self, learning_rate, lr, default: float, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None):
        if lr is not None:
            if learning_rate != default:
                raise TypeError("give the learning rate once: learning_rate= (or its alias lr=)")
            learning_rate = lr
        self._learning_rate = None
        self.learning_rate = learning_rate
        clips = {name: value for name, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                                 ("global_clipnorm", global_clipnorm)) if value is not None}
        if len(clips) > 1:
            raise ValueError(f"give at most one of clipnorm, clipvalue and global_clipnorm, got {sorted(clips)}")
        self.clipnorm, self.clipvalue, self.global_clipnorm = (
            None if clips.get(name) is None else check_real(name, clips[name], low=0.0, low_open=True)
            for name in ("clipnorm", "clipvalue", "global_clipnorm"))
        self.iterations = 0
        self.owner = None  # the Sequential whose parameters this optimizer's state is for
        self.state: dict[str, np.ndarray] = {}  # the state arrays by name, (n_params,) each, updated in place
        self._shape = None  # (n_params, dtype) of the network the state is for

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (a schedule's value at `iterations`)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return self._learning_rate(self.iterations)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(value, schedules.LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError(f"this optimizer's learning rate is the schedule {self._learning_rate!r}: it cannot be "
                            f"set to a number (give it another schedule, or compile with a number)")
        self._learning_rate = check_real("learning_rate", value, low=0.0, low_open=True)

    @property
    def lr(self) -> float:
        """Alias of learning_rate."""
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = value

    @property
    def schedule(self) -> Optional[schedules.LearningRateSchedule]:
        """The learning-rate schedule, or None for a constant rate."""
        rate = self._learning_rate
        return rate if isinstance(rate, schedules.LearningRateSchedule) else None

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
        self._shape = (n_params, np.dtype(dtype))
        self.state = {name: np.zeros(n_params, dtype) for name in self.state_names()}

    def state_names(self) -> tuple:
        """The names of the state arrays the training step updates (fastnn._contract.STATE)."""
        return _contract.STATE[self.code]

    def update(self) -> _contract.Update:
        """The training step's optimizer step: the current settings, and the state it updates in
        place (created at zero the first time a setting needs it: momentum set during fit, say)."""
        if self._shape is None:
            raise RuntimeError("this optimizer has no state yet: compile a model with it and build the model")
        n_params, dtype = self._shape
        for name in self.state_names():
            if name not in self.state:
                self.state[name] = np.zeros(n_params, dtype)
        schedule = self.schedule
        settings = {k: v for k, v in self._settings().items() if k in _UPDATE_FIELDS}
        return _contract.Update(
            optimizer=self.code, lr=0.0 if schedule else self._learning_rate,
            schedule=schedule.code if schedule else _contract.CONSTANT,
            schedule_args=schedule.args() if schedule else None,
            clipnorm=self.clipnorm or 0.0, clipvalue=self.clipvalue or 0.0,
            global_clipnorm=self.global_clipnorm or 0.0, **settings,
            **{name: self.state[name] for name in self.state_names()})

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """One update of the compiled model's flat params (n_params,) from grads (the same shape;
        clipped in place), outside fit."""
        if self.owner is None or self.owner.network is None:
            raise RuntimeError("step() updates a built model's parameters: compile a built model with this optimizer")
        self.iterations += 1
        ops().optimizer_step(self.update(), params, grads, self.iterations, self.owner.network.sizes)

    def config(self) -> dict:
        """The settings (not the state): from_config(config()) is a fresh optimizer like this one."""
        schedule = self.schedule
        config = {"name": self.name, "learning_rate": schedule.config() if schedule else self._learning_rate,
                  **self._settings()}
        for name in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, name) is not None:
                config[name] = getattr(self, name)
        return config

    def _settings(self) -> dict:
        """The optimizer's own settings, in Update's names."""
        return {}

    def __repr__(self) -> str:
        settings = {**self.config(), "learning_rate": self.schedule or self._learning_rate}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items() if k != 'name')})"


class SGD(Optimizer):
    """Gradient descent, with Keras' momentum when momentum > 0: v = μ v - η g; w += v
    (Nesterov's: w += μ v - η g)."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 *, lr: Optional[float] = None, **clipping):
        super().__init__(learning_rate, lr, default=0.01, **clipping)
        self.momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)

    @property
    def code(self) -> int:
        if self.momentum == 0:
            return _contract.SGD
        return _contract.NESTEROV if self.nesterov else _contract.MOMENTUM

    def _settings(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, in the form Keras and scikit-learn use:
    the step is η sqrt(1 - β2^t) / (1 - β1^t) · m / (sqrt(v) + ε). Keras' spellings beta_1,
    beta_2, epsilon are accepted too (Keras' default epsilon is 1e-7, fastnn's 1e-8)."""

    name = "adam"
    code = _contract.ADAM

    def __init__(self, learning_rate=0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 *, lr: Optional[float] = None, beta_1: Optional[float] = None, beta_2: Optional[float] = None,
                 epsilon: Optional[float] = None, **clipping):
        super().__init__(learning_rate, lr, default=0.001, **clipping)
        beta1 = _alias("beta1", beta1, beta_1, 0.9)
        beta2 = _alias("beta2", beta2, beta_2, 0.999)
        eps = _alias("eps", eps, epsilon, 1e-8)
        self.beta1 = check_real("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = check_real("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = check_real("eps", eps, low=0.0, low_open=True)

    def _settings(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): each step first shrinks every
    parameter by learning_rate * weight_decay of itself, then takes Adam's step. weight_decay's
    default is Keras' (0.004); like Keras and PyTorch, it applies to the biases too."""

    name = "adamw"
    code = _contract.ADAMW

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, **keywords):
        super().__init__(learning_rate, beta1, beta2, eps, **keywords)
        self.weight_decay = check_real("weight_decay", weight_decay, low=0.0)

    def _settings(self) -> dict:
        return {**super()._settings(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """RMSprop in Keras' form: v = ρ v + (1 - ρ) g²; the step is η g / sqrt(v + ε), through a
    momentum buffer when momentum > 0. Keras' defaults (ρ = 0.9, ε = 1e-7); no `centered`."""

    name = "rmsprop"
    code = _contract.RMSPROP

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0, eps: float = 1e-7,
                 *, lr: Optional[float] = None, epsilon: Optional[float] = None, **clipping):
        super().__init__(learning_rate, lr, default=0.001, **clipping)
        self.rho = check_real("rho", rho, low=0.0, high=1.0, high_open=True)
        self.momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.eps = check_real("eps", _alias("eps", eps, epsilon, 1e-7), low=0.0, low_open=True)

    def state_names(self) -> tuple:
        return _contract.STATE[self.code] + (("velocity",) if self.momentum > 0 else ())

    def _settings(self) -> dict:
        return {"rho": self.rho, "momentum": self.momentum, "eps": self.eps}


_UPDATE_FIELDS = {field.name for field in dataclasses.fields(_contract.Update)}


def _alias(name: str, value, keras_value, default):
    """value, or the same setting under Keras' spelling (beta_1 for beta1, ...), given once."""
    if keras_value is None:
        return value
    if value != default:
        raise TypeError(f"give {name} once (it was given under Keras' name too)")
    return keras_value


# Optimizers by name, with Keras' defaults.
OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSprop)}


def get(optimizer: Union[str, Optimizer]) -> Optimizer:
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
    cls = OPTIMIZERS[config.pop("name")]
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = schedules.from_config(config["learning_rate"])
    return cls(**config)
