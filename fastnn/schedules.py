"""Learning-rate schedules, as Keras names them (also reachable as fnn.optimizers.schedules):

    schedule = fnn.optimizers.schedules.CosineDecay(0.0, decay_steps=1000, warmup_target=1e-3, warmup_steps=100)
    model.compile("binary_crossentropy", fnn.AdamW(learning_rate=schedule))

A schedule maps the optimizer's step count to a learning rate; the training step evaluates it at
every update inside the compiled run (fastnn._contract.SCHEDULES holds the formulas), so a
schedule costs no trip to Python. Step decay is ExponentialDecay(..., staircase=True). Every
schedule's numbers are checked when it is made, so none can give a NaN or a negative rate.
"""
from typing import Sequence

import numpy as np

from . import _contract
from .backend import ops
from .validation import check_positive_int, check_real


class LearningRateSchedule:
    """A schedule: schedule(iterations) is the learning rate of the step after `iterations` steps."""

    code = _contract.CONSTANT
    name = ""

    def args(self) -> np.ndarray:
        """Its numbers as the training step takes them (fastnn._contract.SCHEDULES[code])."""
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    def __call__(self, iterations: int) -> float:
        update = _contract.Update(optimizer=_contract.SGD, lr=0.0, schedule=self.code, schedule_args=self.args())
        return ops().scheduled_lr(update, check_positive_int("iterations", iterations, minimum=0) + 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items() if k != 'name')})"


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with staircase=True the
    exponent is floored, a step decay: the rate is multiplied by decay_rate every decay_steps."""

    code = _contract.EXPONENTIAL
    name = "exponential_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False):
        self.initial_learning_rate = check_real("initial_learning_rate", initial_learning_rate, low=0.0, low_open=True)
        self.decay_steps = check_positive_int("decay_steps", decay_steps)
        self.decay_rate = check_real("decay_rate", decay_rate, low=0.0, low_open=True)
        if not isinstance(staircase, (bool, np.bool_)):
            raise TypeError(f"staircase must be True or False, got {staircase!r}")
        self.staircase = bool(staircase)

    def args(self) -> np.ndarray:
        return np.array([self.initial_learning_rate, self.decay_steps, self.decay_rate, float(self.staircase)])

    def config(self) -> dict:
        return {"name": self.name, "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate, "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to step boundaries[0], values[1] up to boundaries[1], ..., values[-1] after the
    last boundary (len(values) == len(boundaries) + 1; boundaries increasing)."""

    code = _contract.PIECEWISE
    name = "piecewise_constant_decay"

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        self.boundaries = [check_real(f"boundaries[{i}]", b, low=0.0) for i, b in enumerate(boundaries)]
        self.values = [check_real(f"values[{i}]", v, low=0.0, low_open=True) for i, v in enumerate(values)]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"values must have one more entry than boundaries, got {len(self.values)} values "
                             f"and {len(self.boundaries)} boundaries")
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must increase, got {self.boundaries}")

    def args(self) -> np.ndarray:
        return np.array(self.boundaries + self.values, np.float64)

    def config(self) -> dict:
        return {"name": self.name, "boundaries": self.boundaries, "values": self.values}


class CosineDecay(LearningRateSchedule):
    """Keras' cosine decay with optional linear warm-up: from initial_learning_rate up to
    warmup_target over warmup_steps, then from warmup_target (or, without one, from
    initial_learning_rate) down along half a cosine to alpha times it over decay_steps, and
    there it stays."""

    code = _contract.COSINE
    name = "cosine_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target=None, warmup_steps: int = 0):
        self.warmup_target = None if warmup_target is None else check_real("warmup_target", warmup_target, low=0.0,
                                                                           low_open=True)
        self.initial_learning_rate = check_real("initial_learning_rate", initial_learning_rate, low=0.0,
                                                low_open=warmup_target is None)
        self.decay_steps = check_positive_int("decay_steps", decay_steps)
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0)
        self.warmup_steps = check_positive_int("warmup_steps", warmup_steps, minimum=0)

    def args(self) -> np.ndarray:
        if self.warmup_target is None:
            return np.array([self.initial_learning_rate, self.decay_steps, self.alpha, self.initial_learning_rate, 0.0])
        return np.array([self.initial_learning_rate, self.decay_steps, self.alpha, self.warmup_target,
                         float(self.warmup_steps)])

    def config(self) -> dict:
        return {"name": self.name, "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


SCHEDULES = {cls.name: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}


def from_config(config: dict) -> LearningRateSchedule:
    config = dict(config)
    name = config.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known: {sorted(SCHEDULES)}")
    return SCHEDULES[name](**config)


__all__ = ["CosineDecay", "ExponentialDecay", "LearningRateSchedule", "PiecewiseConstantDecay", "from_config"]
