"""Sequential: a stack of Dense layers, trained by backpropagation.

The model holds the layers, the loss and the optimizer; its parameters live in a Network (one flat
buffer; the layers' W and b are views into it), and every number is computed by the active
backend's kernels: `fit` and `evaluate` run the training step through fastnn.trainer, `predict`
the dense layers' forward kernel.
"""
import copy
import math
import time
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import _contract, activations, losses, optimizers, saving
from .callbacks import History, Progress
from .layers import Dense
from .network import PREDICT_ROWS, Network
from .trainer import Data, Trainer, evaluator
from .validation import as_features, as_weights, check_dtype, check_positive_int

# fit returns to Python about this often (seconds) when nothing needs it after every epoch.
_CHUNK_SECONDS = 0.1
# Most rows of shuffled order handed to one train_epochs call (int64: 32 MB).
_MAX_ORDER_ROWS = 1 << 22


class TrainingDivergedError(FloatingPointError):
    """The loss or the weights became NaN or inf: the model keeps the weights it had before the
    failing epoch. Or the last epoch ended on finite weights whose outputs overflow: the model
    keeps those weights. `history` holds the epochs that finished."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


def _require_finite(finite: bool, what: str, name: str) -> None:
    """The inputs and weights were finite, so a NaN or inf here is an overflow inside the network."""
    if not finite:
        raise FloatingPointError(f"{what}: the network's {name} overflowed to NaN or inf for finite inputs "
                                 f"and weights (weights too large: did training diverge? float64 has more "
                                 f"range than float32)")


class Sequential:
    """A feed-forward network: Sequential([Dense(2, 2, "sigmoid"), Dense(2, 1, "sigmoid")], seed=0).

    dtype: "float32" (default) or "float64"; all parameters and computations use it.
    seed: seeds the generator used for initialisation and shuffling (same seed, same run).
    network: the fastnn.network.Network that holds the parameters and their gradients.
    """

    def __init__(self, layers: Sequence[Dense], seed: Optional[int] = None, dtype: str = "float32"):
        layers = list(layers) if not isinstance(layers, Dense) else [layers]
        if not layers:
            raise ValueError("layers must hold at least one Dense layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a fastnn.Dense, got {type(layer).__name__}")
            if layer.built:
                raise ValueError(f"layers[{i}] already belongs to a model; create a new Dense")
        for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
            if a.n_out != b.n_in:
                raise ValueError(f"layer sizes disagree: layers[{i}] has n_out={a.n_out} but "
                                 f"layers[{i + 1}] has n_in={b.n_in}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._layers = layers
        self.network = Network([layers[0].n_in] + [layer.n_out for layer in layers],
                               [layer.code for layer in layers], self.dtype)
        self._bind_layers()
        for layer in layers:
            layer.initialize(self._rng)
        self.loss: Optional[str] = None
        self.loss_code: Optional[int] = None
        self.optimizer = None
        self.stop_training = False

    def _bind_layers(self) -> None:
        for layer, W, b in zip(self._layers, self.network.W, self.network.b):
            layer.bind(W, b)

    def __copy__(self) -> "Sequential":
        """A model of its own (parameters, optimizer state, lock): a shallow copy would train into
        the same buffers as the original, unguarded by its lock."""
        return copy.deepcopy(self)

    # Unpickling (joblib and Dask ship models between processes): pickled views come back as
    # copies, so the layers' W and b must become views into the network's buffer again.
    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind_layers()

    # ------------------------------------------------------------------ structure

    @property
    def layers(self) -> list[Dense]:
        """The Dense layers, in order."""
        return list(self._layers)

    @property
    def n_in(self) -> int:
        return self._layers[0].n_in

    @property
    def n_out(self) -> int:
        return self._layers[-1].n_out

    def count_params(self) -> int:
        return self.network.n_params

    def summary(self, print_fn: Callable[[str], None] = print) -> None:
        """Print a table of the layers: output shape, activation and parameter count."""
        rows = [("layer", "output", "activation", "params")]
        for i, layer in enumerate(self._layers):
            rows.append((f"dense_{i} ({layer.n_in}->{layer.n_out})", f"(batch, {layer.n_out})",
                         layer.activation, f"{layer.n_params:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        out = [line]
        for j, r in enumerate(rows):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
            if j == 0:
                out.append(line)
        out += [line, f"total params: {self.count_params():,} ({self.dtype.name})"]
        if self.loss is not None:
            out.append(f"loss: {self.loss}, optimizer: {self.optimizer!r}")
        print_fn("\n".join(out))

    def __repr__(self) -> str:
        return f"Sequential({self._layers!r}, dtype={self.dtype.name!r})"

    # ------------------------------------------------------------------ weights

    def get_weights(self) -> list[np.ndarray]:
        """Copies of [W1, b1, W2, b2, ...]."""
        return [a.copy() for layer in self._layers for a in (layer.W, layer.b)]

    def set_weights(self, weights: Sequence) -> None:
        """Copy [W1, b1, W2, b2, ...] into the model; ValueError on a wrong count or shape, or on
        values that are not finite real numbers in the model's dtype (1e300 is inf in float32)."""
        weights = list(weights)
        expected = [a.shape for layer in self._layers for a in (layer.W, layer.b)]
        if len(weights) != len(expected):
            raise ValueError(f"weights must be a list of {len(expected)} arrays [W1, b1, ...], "
                             f"got {len(weights)}")
        arrays = [as_weights(f"weights[{i}]", w, shape, self.dtype) for i, (w, shape) in enumerate(zip(weights, expected))]
        targets = [a for pair in zip(self.network.W, self.network.b) for a in pair]
        for target, w in zip(targets, arrays):
            target[...] = w

    # ------------------------------------------------------------------ compile

    def compile(self, loss: str, optimizer: Union[str, optimizers.SGD, optimizers.Adam] = "sgd") -> None:
        """Choose the loss and the optimizer. The loss's output activation must match the last
        layer: binary_crossentropy needs sigmoid, (sparse_)categorical_crossentropy softmax."""
        code = losses.code(loss)
        fused = _contract.LOSSES[code].fused
        last = self._layers[-1]
        if fused is not None and last.code != fused:
            raise ValueError(f"loss {loss!r} is computed from logits and needs a "
                             f"{activations.NAMES[fused]!r} output layer; the last layer's activation "
                             f"is {last.activation!r}")
        if fused == activations.SOFTMAX and last.n_out < 2:
            raise ValueError(f"loss {loss!r} needs an output layer with at least 2 units (one per class), "
                             f"the last layer has {last.n_out}")
        # A private copy: the instance passed in may be compiled into other models too.
        self.optimizer = optimizers.from_config(optimizers.get(optimizer).config())
        self.optimizer.build(self.network.n_params, self.dtype)
        self.loss = loss
        self.loss_code = code

    def _require_compiled(self, what: str) -> None:
        if self.loss is None:
            raise RuntimeError(f"call model.compile(loss, optimizer) before model.{what}()")

    # ------------------------------------------------------------------ fit

    def _metric_counts(self, rows: int) -> int:
        """How many predictions a batch of `rows` makes (the accuracy's denominator)."""
        return rows * self.n_out if self.loss_code == losses.BINARY_CROSSENTROPY else rows

    def _classification(self) -> bool:
        return _contract.LOSSES[self.loss_code].counts is not None

    def _data(self, X, y, what: str, x_name: str = "X", y_name: str = "y") -> Data:
        """X and y checked for this model, or the fastnn.trainer.Data in X (y None) as it is."""
        if isinstance(X, Data):
            if y is not None:
                raise ValueError(f"{what}: y must be None when X is a fastnn.trainer.Data")
            if not X.fits(self):
                raise ValueError(f"{what}: the Data in X was made for another kind of model (dtype, "
                                 f"widths or loss)")
            return X
        return Data.for_model(self, X, y, x_name, y_name)

    def fit(self, X, y=None, epochs: int = 1, batch_size: Optional[int] = 32, shuffle: bool = True,
            validation_data=None, verbose: int = 1, callbacks=None) -> History:
        """Train for `epochs` passes over X: (n_samples, n_in), y: (n_samples, n_out) (or (n_samples,)
        labels for sparse_categorical_crossentropy; (n_samples,) for a one-output model). X may
        instead be a fastnn.trainer.Data made for this kind of model, with y None.

        batch_size=None trains full-batch. Returns a History whose `history` dict holds "loss" (and
        "accuracy" for classification losses, "val_loss"/"val_accuracy" with validation_data).
        If the loss becomes NaN or inf, raises TrainingDivergedError and keeps the weights from
        before that epoch; it also raises when the weights fit ends on make the outputs overflow
        on the first batch of X (each earlier step's weights were checked on the batch after it).
        Ctrl-C stops it within milliseconds with KeyboardInterrupt: the model
        keeps the weights of the last finished batch (optimizer.iterations counts that batch's
        step), and the epochs finished before it went to the callbacks. One model cannot be fitted
        from two threads at once (RuntimeError).
        """
        self._require_compiled("fit")
        data = self._data(X, y, "fit")
        epochs = check_positive_int("epochs", epochs, minimum=0)
        batch = data.n if batch_size is None else min(check_positive_int("batch_size", batch_size), data.n)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            validation = Data.for_model(self, *validation_data, x_name="validation_data[0]",
                                        y_name="validation_data[1]")
        if callbacks is not None and (callable(callbacks) or hasattr(callbacks, "on_epoch_end")):
            raise TypeError(f"callbacks must be a list of callbacks, got one {type(callbacks).__name__}: "
                            f"pass callbacks=[{type(callbacks).__name__}(...)]")
        try:
            callbacks = list(callbacks or [])
        except TypeError:
            raise TypeError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}") from None
        for cb in callbacks:
            if not (callable(cb) or hasattr(cb, "on_epoch_end")):
                raise TypeError(f"callbacks must be callables fn(epoch, logs) or objects with on_epoch_end, "
                                f"got {cb!r}")
        with self.network.fitting("fit"):
            return self._fit(data, epochs, batch, shuffle and batch < data.n, validation, verbose, callbacks)

    def _fit(self, data: Data, epochs, batch, shuffle, validation, verbose, callbacks) -> History:
        """Runs of epochs go to the training step in one kernel call each. With callbacks or
        validation data a run is one epoch (they see every epoch); otherwise runs grow to about
        _CHUNK_SECONDS, so Python is visited a few times a second (progress bar, Ctrl-C)."""
        n = data.n
        trainer = Trainer(self.network, self.loss_code, data, batch, update=self.optimizer.update())
        validating = self._evaluator(validation, None) if validation is not None else None
        classification = self._classification()
        every_epoch = bool(callbacks) or validation is not None
        history = History()
        progress = Progress(epochs, enabled=bool(verbose))
        self.stop_training = False
        for cb in callbacks:
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin(self)
        done, run = 0, 1
        try:
            while done < epochs and not self.stop_training:
                run = min(run, epochs - done, max(1, _MAX_ORDER_ROWS // n))
                order = np.stack([self._rng.permutation(n) for _ in range(run)]) if shuffle else None
                started = time.perf_counter()
                result = trainer.epochs(run, order, self.optimizer.iterations)
                finished, epoch_loss, epoch_correct = result.finished, result.loss, result.correct
                self.optimizer.iterations = result.step
                seconds = time.perf_counter() - started
                run_logs = {"loss": epoch_loss[:finished]}
                if classification:
                    run_logs["accuracy"] = epoch_correct[:finished] / self._metric_counts(n)
                if every_epoch:
                    for epoch in range(done, done + finished):
                        logs = {key: values[epoch - done].item() for key, values in run_logs.items()}
                        if validation is not None:
                            val = self._evaluate(validating, validation.n)
                            logs.update({"val_" + key: value for key, value in val.items()})
                        history.append(epoch, logs)
                        last_logs = logs
                        for cb in callbacks:
                            if hasattr(cb, "on_epoch_end"):
                                cb.on_epoch_end(epoch, logs)
                            else:
                                cb(epoch, logs)
                else:  # the whole run's logs at once: per-epoch Python here would cost more than XOR's epochs
                    history.extend(range(done, done + finished), run_logs)
                if result.stopped:  # Ctrl-C: the weights of the last finished batch, History its epochs
                    raise KeyboardInterrupt
                if finished < run:
                    raise TrainingDivergedError(
                        f"training diverged at epoch {done + finished}: the loss is "
                        f"{epoch_loss[finished]}; the model keeps the weights from before that epoch "
                        f"(try a smaller learning rate)", history)
                done += run
                if every_epoch:
                    progress.update(done, last_logs)
                else:
                    if progress.enabled:  # the last epoch's logs are gathered only for a bar that shows them
                        progress.update(done, {key: values[-1] for key, values in run_logs.items()})
                    # Aim the next run at _CHUNK_SECONDS in one step: the time measured includes
                    # the call's fixed cost, so the aim errs on the short side.
                    run = max(1, int(run * _CHUNK_SECONDS / max(seconds, 1e-9)))
        finally:
            progress.close()
        if done:
            self._check_last_step(data.X[:batch], history, done)
        for cb in callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self)
        return history

    def _check_last_step(self, X: np.ndarray, history: History, epochs: int) -> None:
        """Raise TrainingDivergedError if the weights of the last step overflow the outputs for
        X: (batch, n_in). The kernels check every epoch's loss and weights, and each step's
        weights meet the next batch; only the last step's are not seen by any batch."""
        out = np.empty((X.shape[0], self.n_out), self.dtype)
        self.network.predict(X, out)
        if not np.isfinite(out).all():
            raise TrainingDivergedError(
                f"training diverged in its last epoch (epoch {epochs - 1}, loss {history.history['loss'][-1]:.3g}): "
                f"the weights are finite but the network's outputs overflow to NaN or inf on the training data; "
                f"the model keeps these weights (try a smaller learning rate)", history)

    # ------------------------------------------------------------------ predict / evaluate

    def predict(self, X, batch_size: Optional[int] = None) -> np.ndarray:
        """The network's output for X: (n_samples, n_in) -> (n_samples, n_out); probabilities for
        sigmoid/softmax outputs. Computed in chunks of batch_size rows (default: 1024)."""
        X = as_features("X", X, self.dtype, self.n_in)
        rows = PREDICT_ROWS if batch_size is None else check_positive_int("batch_size", batch_size)
        result = np.empty((X.shape[0], self.n_out), self.dtype)
        self.network.predict(X, result, rows)
        _require_finite(bool(np.isfinite(result).all()), "predict", "outputs")
        return result

    def evaluate(self, X, y=None, batch_size: Optional[int] = None) -> dict:
        """{"loss": mean loss over X, "accuracy": ... (classification losses only)}, computed by
        the training step (without updating anything). X may be a fastnn.trainer.Data, y None."""
        self._require_compiled("evaluate")
        data = self._data(X, y, "evaluate")
        return self._evaluate(self._evaluator(data, batch_size), data.n)

    def _evaluator(self, data: Data, batch_size: Optional[int]) -> Trainer:
        rows = min(PREDICT_ROWS if batch_size is None else check_positive_int("batch_size", batch_size), data.n)
        return evaluator(self.network, self.loss_code, data, rows)

    def _evaluate(self, step: Trainer, n: int) -> dict:
        """{"loss", "accuracy"} of the evaluating pass `step` over n rows."""
        loss, correct = step.loss_and_count()
        _require_finite(math.isfinite(loss), "evaluate", "loss")
        result = {"loss": loss}
        if self._classification():
            result["accuracy"] = correct / self._metric_counts(n)
        return result

    # ------------------------------------------------------------------ files

    def save(self, path) -> None:
        """Write the architecture and weights to an .npz file (atomically; no pickle): fastnn.saving."""
        architecture = {"dtype": self.dtype.name, "layers": [layer.config() for layer in self._layers],
                        "loss": self.loss,
                        "optimizer": self.optimizer.config() if self.optimizer is not None else None}
        saving.write(path, architecture, self.get_weights())


def _weight_shapes(architecture: dict) -> list:
    """[(shape, dtype)] of W0, b0, W1, ... for a saved architecture; nothing is allocated."""
    dtype = check_dtype(architecture["dtype"])
    layers = [Dense(**cfg) for cfg in architecture["layers"]]
    if not layers:
        raise ValueError("no layers")
    for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
        if a.n_out != b.n_in:
            raise ValueError(f"layers[{i}] has n_out={a.n_out} but layers[{i + 1}] has n_in={b.n_in}")
    return [pair for layer in layers for pair in (((layer.n_in, layer.n_out), dtype), ((layer.n_out,), dtype))]


def load(path) -> Sequential:
    """Read a model written by `model.save(path)`. FileNotFoundError if missing; ValueError if the
    file is not a complete fastnn model (wrong format or version, garbage, truncated, bad shapes).
    The file is checked whole before the model is built: a file never makes load allocate more
    than the arrays it really holds."""
    architecture, arrays = saving.read(path, _weight_shapes)
    model = Sequential([Dense(**cfg) for cfg in architecture["layers"]], dtype=architecture["dtype"])
    try:
        model.set_weights(arrays)
    except ValueError as exc:
        raise saving.invalid(path, str(exc)) from None
    if architecture.get("loss") is not None:
        try:
            model.compile(architecture["loss"], optimizers.from_config(architecture["optimizer"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise saving.invalid(path, f"the saved loss/optimizer are invalid ({exc})") from None
    return model
