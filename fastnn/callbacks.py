"""What fit reports to: the History it returns, and callbacks run at each epoch's end.

A callback is either an object with `on_epoch_end(epoch, logs)` (and optionally
`on_train_begin(model)` / `on_train_end(model)`), or any callable `fn(epoch, logs)`.
Setting `model.stop_training = True` from a callback ends fit after that epoch, as in Keras.
"""
import math
import numbers


class History:
    """Per-epoch metrics of one fit: `history["loss"]`, and where meaningful "accuracy",
    "val_loss", "val_accuracy"; `epoch` lists the epoch numbers (0-based).

    fit hands over whole runs of epochs as arrays, which become these lists when first read: a
    Python float per epoch costs more than a tiny network's epoch.
    """

    def __init__(self):
        self._history: dict[str, list[float]] = {}
        self._epoch: list[int] = []
        self._runs: list[tuple[range, dict]] = []  # extend()ed, not yet turned into lists

    @property
    def history(self) -> dict[str, list[float]]:
        self._to_lists()
        return self._history

    @property
    def epoch(self) -> list[int]:
        self._to_lists()
        return self._epoch

    def append(self, epoch: int, logs: dict) -> None:
        self._to_lists()
        self._epoch.append(epoch)
        for key, value in logs.items():
            self._history.setdefault(key, []).append(value)

    def extend(self, epochs: range, logs: dict) -> None:
        """Append a run of epochs at once; logs maps each key to an array, one value per epoch."""
        if len(epochs):  # an empty run adds no keys, as no append() would
            self._runs.append((epochs, logs))

    def _to_lists(self) -> None:
        for epochs, logs in self._runs:
            self._epoch.extend(epochs)
            for key, values in logs.items():
                self._history.setdefault(key, []).extend(values.tolist())
        self._runs.clear()

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class EarlyStopping:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    mode "auto" minimises losses and maximises accuracies. With restore_best_weights=True the
    model ends with the weights of its best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be one of ['auto', 'max', 'min'], got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.maximize = mode == "max" or (mode == "auto" and "acc" in monitor)
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = None

    def on_train_begin(self, model) -> None:
        self.model = model
        self.best = -math.inf if self.maximize else math.inf
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which fit does not report; "
                             f"available: {sorted(logs)} (val_* needs validation_data)")
        value = logs[self.monitor]
        improved = (value > self.best + self.min_delta) if self.maximize else (value < self.best - self.min_delta)
        if improved:
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, model) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            model.set_weights(self.best_weights)
