"""Sequential: a stack of Dense layers, trained by backpropagation.

The model owns the parameters (one flat buffer, the layers' W and b are views into it), the
work buffers, the batching and the bookkeeping. Every number is computed by the active backend's
kernels (`ops()`): forward `A = f(X @ W + b)` layer by layer, the loss and its gradient from the
output's logits, backward layer by layer, then one optimizer step over the flat buffer.
"""
import threading
import time
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import activations, losses, optimizers
from .backend import ops
from .callbacks import History, Progress
from .layers import Dense
from .validation import as_features, as_targets, check_dtype, check_positive_int

# Rows per chunk when predicting/evaluating without a batch size: large enough to amortise each
# kernel call, small enough that the chunk's activations stay in cache-sized buffers.
_CHUNK_ROWS = 1024
# fit returns to Python about this often (seconds) when nothing needs it after every epoch.
_CHUNK_SECONDS = 0.1
# Most rows of shuffled order handed to one train_epochs call (int64: 32 MB).
_MAX_ORDER_ROWS = 1 << 22


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or inf. The model keeps the weights it had before the failing epoch;
    `history` holds the epochs that finished."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


class Sequential:
    """A feed-forward network: Sequential([Dense(2, 2, "sigmoid"), Dense(2, 1, "sigmoid")], seed=0).

    dtype: "float32" (default) or "float64"; all parameters and computations use it.
    seed: seeds the generator used for initialisation and shuffling (same seed, same run).
    """

    def __init__(self, layers: Sequence[Dense], seed: Optional[int] = None, dtype: str = "float32"):
        layers = list(layers) if not isinstance(layers, Dense) else [layers]
        if not layers:
            raise ValueError("layers must hold at least one Dense layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a fastnn.Dense, got {type(layer).__name__}")
            if layer._W is not None:
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
        n_params = sum(layer.n_params for layer in layers)
        self._params = np.zeros(n_params, self.dtype)
        self._grads = np.zeros(n_params, self.dtype)
        offset = 0
        for layer in layers:
            offset = layer._bind(self._params, self._grads, offset)
            layer._initialize(self._rng)
        self.loss: Optional[str] = None
        self.optimizer = None
        self.stop_training = False
        self._fit_lock = threading.Lock()

    # Pickling (joblib and Dask ship models between processes): the lock is not picklable, and the
    # layers' W and b must become views into the unpickled flat buffer again.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_fit_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fit_lock = threading.Lock()
        offset = 0
        for layer in self._layers:
            offset = layer._bind(self._params, self._grads, offset)

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
        return self._params.size

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
        """Copy [W1, b1, W2, b2, ...] into the model; ValueError on a wrong count or shape."""
        weights = list(weights)
        expected = [a.shape for layer in self._layers for a in (layer.W, layer.b)]
        if len(weights) != len(expected):
            raise ValueError(f"weights must be a list of {len(expected)} arrays [W1, b1, ...], "
                             f"got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for i, (w, shape) in enumerate(zip(arrays, expected)):
            if w.shape != shape:
                raise ValueError(f"weights[{i}] must have shape {shape}, got {w.shape}")
            if not np.issubdtype(w.dtype, np.number) or not np.all(np.isfinite(w)):
                raise ValueError(f"weights[{i}] must hold finite numbers")
        targets = [a for layer in self._layers for a in (layer._W, layer._b)]
        for target, w in zip(targets, arrays):
            target[...] = w

    # ------------------------------------------------------------------ compile

    def compile(self, loss: str, optimizer: Union[str, optimizers.SGD, optimizers.Adam] = "sgd") -> None:
        """Choose the loss and the optimizer. The loss's output activation must match the last
        layer: binary_crossentropy needs sigmoid, (sparse_)categorical_crossentropy softmax."""
        code = losses.code(loss)
        fused = losses.FUSED_ACTIVATION[code]
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
        self.optimizer.build(self._params.size, self.dtype)
        self.loss = loss
        self._loss_code = code
        self._fused = fused is not None

    # ------------------------------------------------------------------ the passes

    def _workspace(self, rows: int) -> tuple[list[np.ndarray], list[Optional[np.ndarray]]]:
        """Buffers for a batch of `rows`: acts[l+1] is layer l's output, grads[l+1] its gradient.
        acts[0] / grads[0] are filled in per batch (the input; no input gradient)."""
        acts = [None] + [np.empty((rows, layer.n_out), self.dtype) for layer in self._layers]
        grads = [None] + [np.empty((rows, layer.n_out), self.dtype) for layer in self._layers]
        return acts, grads

    def _codes(self, for_loss: bool) -> list[int]:
        """Each layer's activation code; with for_loss, the output layer yields logits (linear)
        when its activation is fused into the loss."""
        codes = [layer.code for layer in self._layers]
        if for_loss and self._fused:
            codes[-1] = activations.LINEAR
        return codes

    def _forward(self, X: np.ndarray, acts: list, codes: list[int]) -> np.ndarray:
        k = ops()
        acts[0] = X
        rows = X.shape[0]
        for l, layer in enumerate(self._layers):
            k.dense_forward(acts[l][:rows], layer._W, layer._b, codes[l], acts[l + 1][:rows])
        return acts[-1][:rows]

    def _loss(self, out: np.ndarray, Y: np.ndarray, grad: np.ndarray) -> tuple[float, int]:
        """(loss, correct count) of one batch; writes the loss gradient into grad."""
        loss_name, correct_name = losses.KERNELS[self._loss_code]
        k = ops()
        value = getattr(k, loss_name)(out, Y, grad)
        correct = getattr(k, correct_name)(out, Y) if correct_name else 0
        return value, correct

    def _backward(self, acts: list, grads: list, codes: list[int], rows: int) -> None:
        k = ops()
        for l in range(len(self._layers) - 1, -1, -1):
            layer = self._layers[l]
            dA = grads[l + 1][:rows]
            dX = grads[l][:rows] if l > 0 else None  # the network's input needs no gradient
            k.dense_backward(acts[l][:rows], layer._W, acts[l + 1][:rows], dA,
                             codes[l], dA, layer._dW, layer._db, dX)

    # ------------------------------------------------------------------ fit

    def _network(self) -> tuple[np.ndarray, np.ndarray]:
        """train_epochs' description of the network: layer widths (L+1,) and activation codes (L,)
        with the output's as the loss takes it, both int64."""
        sizes = np.array([self.n_in] + [layer.n_out for layer in self._layers], np.int64)
        return sizes, np.array(self._codes(for_loss=True), np.int64)

    def _metric_counts(self, rows: int) -> int:
        """How many predictions a batch of `rows` makes (the accuracy's denominator)."""
        return rows * self.n_out if self._loss_code == losses.BINARY_CROSSENTROPY else rows

    def _epoch_logs(self, loss: np.ndarray, correct: np.ndarray, n: int, classification: bool) -> dict:
        """Logs of a run of epochs from train_epochs' outputs: {key: (epochs,) array}."""
        logs = {"loss": loss}
        if classification:
            logs["accuracy"] = correct / self._metric_counts(n)
        return logs

    def _prepare(self, X, y, x_name="X", y_name="y") -> tuple[np.ndarray, np.ndarray]:
        X = as_features(x_name, X, self.dtype, self.n_in)
        y = as_targets(y_name, y, self.dtype, X.shape[0], self.n_out,
                       sparse=self._loss_code == losses.SPARSE_CATEGORICAL_CROSSENTROPY)
        return X, y

    def _require_compiled(self, what: str) -> None:
        if self.loss is None:
            raise RuntimeError(f"call model.compile(loss, optimizer) before model.{what}()")

    def fit(self, X, y, epochs: int = 1, batch_size: Optional[int] = 32, shuffle: bool = True,
            validation_data=None, verbose: int = 1, callbacks=None) -> History:
        """Train for `epochs` passes over X: (n_samples, n_in), y: (n_samples, n_out) (or (n_samples,)
        labels for sparse_categorical_crossentropy; (n_samples,) for a one-output model).

        batch_size=None trains full-batch. Returns a History whose `history` dict holds "loss" (and
        "accuracy" for classification losses, "val_loss"/"val_accuracy" with validation_data).
        If the loss becomes NaN or inf, raises TrainingDivergedError and keeps the weights from
        before that epoch. One model cannot be fitted from two threads at once (RuntimeError).
        """
        self._require_compiled("fit")
        X, y = self._prepare(X, y)
        return self._fit_prepared(X, y, epochs, batch_size, shuffle, validation_data, verbose, callbacks)

    def _fit_prepared(self, X, y, epochs, batch_size, shuffle, validation_data, verbose, callbacks) -> History:
        """fit on X and y already through _prepare (fit_parallel checks shared data once for all models)."""
        epochs = check_positive_int("epochs", epochs, minimum=0)
        n = X.shape[0]
        batch = n if batch_size is None else min(check_positive_int("batch_size", batch_size), n)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            X_val, y_val = self._prepare(*validation_data, x_name="validation_data[0]",
                                         y_name="validation_data[1]")
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not (callable(cb) or hasattr(cb, "on_epoch_end")):
                raise TypeError(f"callbacks must be callables fn(epoch, logs) or objects with on_epoch_end, "
                                f"got {cb!r}")
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("this model is already being fitted in another thread; fit separate models "
                               "in parallel, or wait for the other fit to finish")
        try:
            return self._fit(X, y, epochs, batch, shuffle and batch < n,
                             (X_val, y_val) if validation_data is not None else None,
                             verbose, callbacks)
        finally:
            self._fit_lock.release()

    def _fit(self, X, y, epochs, batch, shuffle, validation, verbose, callbacks) -> History:
        """Runs of epochs go to the backend's train_epochs in one call each. With callbacks or
        validation data a run is one epoch (they see every epoch); otherwise runs grow to about
        _CHUNK_SECONDS, so Python is visited a few times a second (progress bar, Ctrl-C)."""
        n = X.shape[0]
        sparse = self._loss_code == losses.SPARSE_CATEGORICAL_CROSSENTROPY
        Y = np.empty((0, self.n_out), self.dtype) if sparse else y
        labels = y if sparse else np.empty(0, np.int64)
        in_order = np.empty((0, n), np.int64)
        sizes, codes = self._network()
        optimizer, state1, state2, settings = self.optimizer.kernel_args()
        hyper = optimizers.train_hyper(settings)
        no_weights = np.empty(0, self.dtype)
        epoch_loss = np.zeros(epochs)
        epoch_correct = np.zeros(epochs, np.int64)
        classification = losses.KERNELS[self._loss_code][1] is not None
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
                order = np.stack([self._rng.permutation(n) for _ in range(run)]) if shuffle else in_order
                started = time.perf_counter()
                finished, self.optimizer.iterations = ops().train_epochs(
                    X, Y, labels, no_weights, order, sizes, codes, self._loss_code, batch, self._params, self._grads,
                    optimizer, state1, state2, hyper, self.optimizer.iterations,
                    epoch_loss[done:done + run], epoch_correct[done:done + run])
                seconds = time.perf_counter() - started
                run_logs = self._epoch_logs(epoch_loss[done:done + finished], epoch_correct[done:done + finished],
                                            n, classification)
                if every_epoch:
                    for epoch in range(done, done + finished):
                        logs = {key: values[epoch - done].item() for key, values in run_logs.items()}
                        if validation is not None:
                            val = self._evaluate(*validation, batch_size=None)
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
                if finished < run:
                    raise TrainingDivergedError(
                        f"training diverged at epoch {done + finished}: the loss is "
                        f"{epoch_loss[done + finished]}; the model keeps the weights from before that epoch "
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
        for cb in callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self)
        return history

    # ------------------------------------------------------------------ predict / evaluate

    def predict(self, X, batch_size: Optional[int] = None) -> np.ndarray:
        """The network's output for X: (n_samples, n_in) -> (n_samples, n_out); probabilities for
        sigmoid/softmax outputs. Computed in chunks of batch_size rows (default: 1024)."""
        X = as_features("X", X, self.dtype, self.n_in)
        rows = _CHUNK_ROWS if batch_size is None else check_positive_int("batch_size", batch_size)
        rows = min(rows, X.shape[0])
        result = np.empty((X.shape[0], self.n_out), self.dtype)
        acts, _ = self._workspace(rows)
        codes = self._codes(for_loss=False)
        for start in range(0, X.shape[0], rows):
            chunk = X[start:start + rows]
            acts[-1] = result[start:start + chunk.shape[0]]  # the last layer writes straight into result
            self._forward(chunk, acts, codes)
        return result

    def evaluate(self, X, y, batch_size: Optional[int] = None) -> dict:
        """{"loss": mean loss over X, "accuracy": ... (classification losses only)}."""
        self._require_compiled("evaluate")
        X, y = self._prepare(X, y)
        return self._evaluate(X, y, batch_size)

    def _evaluate(self, X: np.ndarray, y: np.ndarray, batch_size: Optional[int]) -> dict:
        n = X.shape[0]
        rows = min(_CHUNK_ROWS if batch_size is None else check_positive_int("batch_size", batch_size), n)
        acts, grads = self._workspace(rows)
        codes = self._codes(for_loss=True)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            out = self._forward(X[start:stop], acts, codes)
            value, c = self._loss(out, y[start:stop], grads[-1][:stop - start])
            loss_sum += value * (stop - start)
            correct += c
        result = {"loss": loss_sum / n}
        if losses.KERNELS[self._loss_code][1] is not None:
            result["accuracy"] = correct / self._metric_counts(n)
        return result

    # ------------------------------------------------------------------ files

    def save(self, path) -> None:
        """Write the architecture and weights to an .npz file (atomically; no pickle)."""
        from .saving import save
        save(self, path)
