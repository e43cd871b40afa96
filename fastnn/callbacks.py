"""What fit reports to: the History it returns, and callbacks, as Keras has them.

A callback is a Callback (or any object with some of its methods), or a callable
`fn(epoch, logs)` run at each epoch's end. fit calls `set_model(model)`, then
`on_train_begin(logs)`, `on_epoch_begin(epoch, logs)` and `on_epoch_end(epoch, logs)` around every
epoch, and `on_train_end(logs)`; logs hold the epoch's "loss", metrics and "val_" ones. Setting
`model.stop_training = True` ends fit after that epoch; a change to the optimizer's settings
(`model.optimizer.learning_rate = ...`) takes effect from the next epoch, or from this one when
made in on_epoch_begin.

    fnn.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    fnn.callbacks.ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True)
    fnn.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3)
    fnn.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9)
"""
import math
import numbers
import os
import sys
from typing import Callable, Optional

from .validation import check_real


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


class Callback:
    """The base of fit's callbacks (Keras' interface): override the hooks you need; `model` is
    the model being fitted."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        pass


def _check_mode(mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be one of ['auto', 'max', 'min'], got {mode!r}")
    return mode


def _maximizes(mode: str, monitor: str) -> bool:
    """Whether `monitor` improves upwards: mode "max", or "auto" and an accuracy (Keras' rule)."""
    return mode == "max" or (mode == "auto" and "acc" in monitor)


def _improved(value: float, best: float, maximize: bool, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than min_delta, upwards when maximizing."""
    return value > best + min_delta if maximize else value < best - min_delta


def _patience(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def _monitored(who: str, monitor: str, logs: dict) -> float:
    if monitor not in logs:
        raise ValueError(f"{who} monitors {monitor!r}, which fit does not report; available: {sorted(logs)} "
                         f"(val_* needs validation_data or validation_split)")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs (as
    Keras counts them: patience=2 stops at the second epoch in a row without improvement).

    mode "auto" minimises losses and maximises accuracies. With restore_best_weights=True the
    model ends with the weights of its best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False, verbose: int = 0):
        self.monitor = monitor
        self.patience = _patience("patience", patience)
        self.min_delta = abs(check_real("min_delta", min_delta))
        self.maximize = _maximizes(_check_mode(mode), monitor)
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.stopped_epoch = None

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.best = -math.inf if self.maximize else math.inf
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = _monitored("EarlyStopping", self.monitor, logs)
        if _improved(value, self.best, self.maximize, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= max(1, self.patience):
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping ({self.monitor} best {self.best:.4g})", file=sys.stderr)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (model.save: atomic, resumable) at the end of every epoch, or only when
    `monitor` improved with save_best_only=True. filepath may hold Keras' fields, formatted with
    the epoch (1-based) and the logs: "ckpt-{epoch:03d}-{val_loss:.3f}.keras". A process killed at
    any moment leaves the last checkpoint whole (fnn.load it and fit(..., initial_epoch=
    model.epochs_trained) to resume exactly)."""

    def __init__(self, filepath, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto",
                 verbose: int = 0):
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.maximize = _maximizes(_check_mode(mode), monitor)
        self.verbose = verbose
        self.best = -math.inf if self.maximize else math.inf
        folder = os.path.dirname(os.path.abspath(self.filepath))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"filepath {self.filepath!r}: the folder {folder!r} does not exist")

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if not _improved(value, self.best, self.maximize):
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint's filepath {self.filepath!r} has a field fit does not report "
                             f"({exc}); fields: epoch, {', '.join(sorted(logs))}") from None
        self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}", file=sys.stderr)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than
    min_delta for `patience` epochs, then wait `cooldown` epochs; never below min_lr (Keras'
    callback). The optimizer's learning rate must be a number, not a schedule."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, verbose: int = 0):
        self.monitor = monitor
        self.factor = check_real("factor", factor, low=0.0, high=1.0, low_open=True, high_open=True)
        self.patience = _patience("patience", patience)
        self.maximize = _maximizes(_check_mode(mode), monitor)
        self.min_delta = abs(check_real("min_delta", min_delta))
        self.cooldown = _patience("cooldown", cooldown)
        self.min_lr = check_real("min_lr", min_lr, low=0.0)
        self.verbose = verbose

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.best = -math.inf if self.maximize else math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = _monitored("ReduceLROnPlateau", self.monitor, logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improved(value, self.best, self.maximize, self.min_delta):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.learning_rate
                new = max(old * self.factor, self.min_lr)
                if old > self.min_lr and new > 0:
                    self.model.optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: learning rate {old:.4g} -> {new:.4g}", file=sys.stderr)
                self.cooldown_counter = self.cooldown
                self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to schedule(epoch, lr) (or schedule(epoch)
    for a function of one argument), as Keras does; epoch counts from 0. A schedule that returns
    anything but a finite number > 0 stops fit with a ValueError."""

    def __init__(self, schedule: Callable, verbose: int = 0):
        if not callable(schedule):
            raise TypeError(f"schedule must be a function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        optimizer = self.model.optimizer
        try:
            rate = self.schedule(epoch, optimizer.learning_rate)
        except TypeError:  # Keras' old form: schedule(epoch)
            rate = self.schedule(epoch)
        try:
            optimizer.learning_rate = rate
        except (TypeError, ValueError) as exc:
            raise ValueError(f"LearningRateScheduler: schedule at epoch {epoch} returned {rate!r}, not a learning "
                             f"rate ({exc})") from None
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {optimizer.learning_rate:.4g}", file=sys.stderr)

