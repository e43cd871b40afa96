"""Weight penalties for a Dense layer's kernel W, as Keras writes them:

    fnn.Dense(64, activation="relu", kernel_regularizer=fnn.regularizers.l2(1e-4))

L1L2(l1, l2) adds l1 * sum|W| + l2 * sum(W²) to every batch's loss (Keras' meaning: not divided
by the batch size), and its gradient to W's; biases are not penalised. The training step
computes it (fastnn._contract.TrainingRun.penalties).
"""
from typing import Optional, Union

from .validation import check_real


class L1L2:
    """The penalty l1 * sum|W| + l2 * sum(W²); l1, l2 >= 0."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = check_real("l1", l1, low=0.0)
        self.l2 = check_real("l2", l2, low=0.0)

    def config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def l1(l1: float = 0.01) -> L1L2:
    return L1L2(l1=l1)


def l2(l2: float = 0.01) -> L1L2:
    return L1L2(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1=l1, l2=l2)


_BY_NAME = {"l1": l1, "l2": l2, "l1_l2": l1_l2}


def get(regularizer: Union[None, str, dict, L1L2]) -> Optional[L1L2]:
    """A regularizer from None, a name ("l1", "l2", "l1_l2": Keras' defaults, 0.01), a config
    dict {"l1": .., "l2": ..}, or an L1L2."""
    if regularizer is None or isinstance(regularizer, L1L2):
        return regularizer
    if isinstance(regularizer, str) and regularizer in _BY_NAME:
        return _BY_NAME[regularizer]()
    if isinstance(regularizer, dict):
        return L1L2(**regularizer)
    raise ValueError(f"kernel_regularizer must be None, one of {sorted(_BY_NAME)} or "
                     f"fnn.regularizers.l1/l2/l1_l2(...), got {regularizer!r}")
