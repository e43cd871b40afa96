"""The metrics compile(metrics=[...]) takes, by the names Keras gives them.

A classification loss always reports "accuracy" (its own kind: binary, categorical or sparse).
"""
from typing import Optional, Sequence

from . import _contract

# Keras' names for the accuracy a loss reports.
ACCURACY_NAMES = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy")
_ACCURACY_OF = {_contract.BINARY_CROSSENTROPY: "binary_accuracy",
                _contract.CATEGORICAL_CROSSENTROPY: "categorical_accuracy",
                _contract.SPARSE_CATEGORICAL_CROSSENTROPY: "sparse_categorical_accuracy"}


def resolve(metrics: Optional[Sequence[str]], loss: int) -> list[str]:
    """The log keys a model with loss `loss` (a code) reports besides "loss", for compile's
    `metrics` (names); ValueError for a name that is unknown or does not fit the loss."""
    if metrics is None:
        metrics = []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names, e.g. metrics=['accuracy'], got {metrics!r}")
    own = _ACCURACY_OF.get(loss)
    keys = ["accuracy"] if own is not None else []
    for name in metrics:
        if name in ("accuracy", "acc", own) and own is not None:
            continue
        if name in ACCURACY_NAMES:
            why = "has no accuracy" if own is None else f"reports {own} as 'accuracy'"
            raise ValueError(f"metrics: {name!r} does not fit the loss {_contract.LOSSES[loss].name!r}, which {why}")
        raise ValueError(f"metrics: unknown metric {name!r}; known: {sorted(ACCURACY_NAMES)}")
    return keys
