"""What fit reports to: the History it returns, callbacks run at each epoch's end, the progress bar.

A callback is either an object with `on_epoch_end(epoch, logs)` (and optionally
`on_train_begin(model)` / `on_train_end(model)`), or any callable `fn(epoch, logs)`.
Setting `model.stop_training = True` from a callback ends fit after that epoch, as in Keras.
"""
import math
import numbers
import sys
import time


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


class Progress:
    """verbose=1: a tqdm bar over epochs with the running loss, or a one-line text bar without tqdm.
    epochs: the epoch the fit ends on; initial: the one it starts from (fit's initial_epoch)."""

    def __init__(self, epochs: int, enabled: bool, initial: int = 0):
        self.epochs = epochs
        self.bar = None
        self.enabled = enabled
        self.last = 0.0
        self.start = time.perf_counter()
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=epochs, initial=initial, unit="epoch", leave=True)
            except ImportError:
                pass

    def update(self, done: int, logs: dict) -> None:
        if not self.enabled:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
            return
        now = time.perf_counter()
        if now - self.last >= 0.1 or done == self.epochs:  # redraw at most 10 times a second
            self.last = now
            print(f"\repoch {done}/{self.epochs} [{now - self.start:.1f}s] {text}", end="", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)
