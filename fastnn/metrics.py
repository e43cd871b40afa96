"""The metrics compile(metrics=[...]) takes, by the names Keras gives them, computed in the
training step's kernels (fastnn._contract.METRICS) on each batch before its update, unweighted.

    model.compile("sparse_categorical_crossentropy", "adam",
                  metrics=["accuracy", fnn.metrics.SparseTopKCategoricalAccuracy(k=3), "mae"])

A classification loss always reports "accuracy" (its own kind: binary, categorical or sparse).
Names: accuracy (acc), binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
top_k_categorical_accuracy, sparse_top_k_categorical_accuracy (k=5), mae (mean_absolute_error),
mse (mean_squared_error).
"""
from typing import NamedTuple, Optional, Sequence, Union

from . import _contract
from .validation import check_positive_int


class TopKCategoricalAccuracy:
    """Whether the true class (argmax of the one-hot target) is among the k largest outputs."""
    code = _contract.TOP_K_CATEGORICAL_ACCURACY

    def __init__(self, k: int = 5, name: Optional[str] = None):
        self.k = check_positive_int("k", k)
        self.name = name or _contract.METRICS[self.code].name  # Keras' default name, whatever k

    def config(self) -> dict:
        return {"class": type(self).__name__, "k": self.k, "name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, name={self.name!r})"


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """Whether the label is among the k largest outputs."""
    code = _contract.SPARSE_TOP_K_CATEGORICAL_ACCURACY


def from_config(metric: Union[str, dict]) -> Union[str, TopKCategoricalAccuracy]:
    """A metric as compile takes it, from a name or a metric object's config()."""
    if isinstance(metric, str):
        return metric
    config = dict(metric)
    classes = {cls.__name__: cls for cls in (TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy)}
    return classes[config.pop("class")](**config)


_BY_NAME = {m.name: code for code, m in _contract.METRICS.items()}
_BY_NAME.update(mae=_contract.MEAN_ABSOLUTE_ERROR, mse=_contract.MEAN_SQUARED_ERROR)
_ACCURACY_OF = {_contract.BINARY_CROSSENTROPY: _contract.BINARY_ACCURACY,
                _contract.CATEGORICAL_CROSSENTROPY: _contract.CATEGORICAL_ACCURACY,
                _contract.SPARSE_CATEGORICAL_CROSSENTROPY: _contract.SPARSE_CATEGORICAL_ACCURACY}
NAMES = sorted(list(_BY_NAME) + ["accuracy", "acc"])


class Reported(NamedTuple):
    """One value a model reports besides its loss: its key in the logs, and the metric code it
    is computed with, or None for the loss's own count of correct predictions."""
    key: str
    code: Optional[int]


def resolve(metrics: Optional[Sequence[Union[str, TopKCategoricalAccuracy]]], loss: int) -> tuple[list[Reported], int]:
    """(what a model with loss `loss` (a code) reports besides "loss", top-k's k) for compile's
    `metrics`; ValueError for a metric that is unknown or does not fit the loss."""
    if metrics is None:
        metrics = []
    if isinstance(metrics, (str, TopKCategoricalAccuracy)) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list, e.g. metrics=['accuracy'], got {metrics!r}")
    own = _ACCURACY_OF.get(loss)
    sparse = loss == _contract.SPARSE_CATEGORICAL_CROSSENTROPY
    reported = [Reported("accuracy", None)] if own is not None else []
    ks = set()
    for metric in metrics:
        if isinstance(metric, TopKCategoricalAccuracy):
            key, code = metric.name, metric.code
            ks.add(metric.k)
        elif isinstance(metric, str) and metric in ("accuracy", "acc"):
            if own is None:
                raise ValueError(f"metrics: {metric!r} needs a classification loss; "
                                 f"{_contract.LOSSES[loss].name!r} has no accuracy")
            key, code = metric, None
        elif isinstance(metric, str) and metric in _BY_NAME:
            key, code = metric, _BY_NAME[metric]
            if code in (_contract.TOP_K_CATEGORICAL_ACCURACY, _contract.SPARSE_TOP_K_CATEGORICAL_ACCURACY):
                ks.add(5)
        else:
            raise ValueError(f"metrics: unknown metric {metric!r}; known: {NAMES} and "
                             f"fnn.metrics.TopKCategoricalAccuracy(k)")
        if code == own:
            code = None  # the loss counts these already
        elif code is not None and _contract.METRICS[code].sparse != sparse:
            takes = "class labels" if _contract.METRICS[code].sparse else "targets shaped like the outputs"
            raise ValueError(f"metrics: {key!r} takes {takes}, which the loss {_contract.LOSSES[loss].name!r} "
                             f"does not train on")
        if key not in [r.key for r in reported]:
            reported.append(Reported(key, code))
    if len(ks) > 1:
        raise ValueError(f"metrics: one k for the top-k accuracies of a model, got {sorted(ks)}")
    return reported, ks.pop() if ks else 5
