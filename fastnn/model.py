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

from . import _contract, activations, layers, losses, optimizers, saving, streams
from . import metrics as fnn_metrics
from .callbacks import History
from .progress import Progress
from .layers import Dense, Dropout, Input
from .network import PREDICT_ROWS, Network
from .trainer import Data, Epochs, Trainer, evaluator
from .validation import as_features, as_weights, check_dtype, check_positive_int, check_precision, check_real

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
    """A feed-forward network: Sequential([Dense(2, 2, "sigmoid"), Dense(2, 1, "sigmoid")], seed=0),
    or Keras' way, Sequential([Input(shape=(20,)), Dense(64, activation="relu"), Dense(1, "sigmoid")])
    or model.add(layer) one at a time.

    dtype: "float32" (default) or "float64"; all parameters and computations use it.
    precision: None (default), or "bfloat16" for a float32 model: the matrix products of training
    and prediction take their operands rounded to bfloat16 (about 3 significant digits) and sum in
    float32; the weights, biases, activations, loss and optimizer stay float32 (mixed precision, as
    PyTorch's autocast and Keras' "mixed_bfloat16"). Fast on CPUs with AVX512-BF16.
    seed: seeds the generator used for initialisation and shuffling (same seed, same run).
    network: the fastnn.network.Network that holds the parameters and their gradients, once the
    model is built: as soon as it knows its input width (the first Dense's n_in, an Input,
    `build(n_in)`, or the first fit, predict or evaluate).
    """

    def __init__(self, layers: Optional[Sequence[Union[Dense, Input]]] = None, seed: Optional[int] = None,
                 dtype: str = "float32", precision: Optional[str] = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.dtype = check_dtype(dtype)
        self.precision = check_precision(precision, self.dtype)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._sequence: list[Union[Dense, Dropout]] = []  # the layers as given
        self._layers: list[Dense] = []  # the Dense ones, which the network holds
        self._input: Optional[int] = None  # the width an Input gave
        self._dropout_seed: Optional[int] = None  # drawn from the seed when a fit first needs masks
        self.network: Optional[Network] = None
        self.loss: Optional[str] = None
        self.loss_code: Optional[int] = None
        self.optimizer: Optional[optimizers.Optimizer] = None
        self.stop_training = False
        self.epochs_trained = 0  # epochs fit has finished, counting those of earlier fits (initial_epoch)
        self._metric_specs: list = []
        layers = [] if layers is None else [layers] if isinstance(layers, (Dense, Dropout, Input)) else list(layers)
        for i, layer in enumerate(layers):
            self._add(layer, f"layers[{i}]")
        self._build_if_ready()

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
        self.__dict__.update({"precision": None, **state})  # (pickled before precision existed: None)
        if self.network is not None:
            self._bind_layers()

    # ------------------------------------------------------------------ structure

    def add(self, layer: Union[Dense, Input]) -> None:
        """Append a layer (Keras' model.add). A built model is rebuilt around it, keeping the
        weights of the layers it had; a compiled one cannot grow (compile after the last add)."""
        if self.loss is not None:
            raise RuntimeError("add layers before model.compile(): the loss was checked against the last layer")
        self._add(layer, "layer")
        self._build_if_ready()

    def _add(self, layer, name: str) -> None:
        if isinstance(layer, Input):
            if self._sequence or self._input is not None:
                raise ValueError(f"{name}: an Input can only come first")
            self._input = layer.n_in
            return
        if isinstance(layer, Dropout):
            self._sequence.append(layer)
            return
        if not isinstance(layer, Dense):
            raise TypeError(f"{name} must be a fastnn.Dense, Dropout or Input, got {type(layer).__name__}")
        if layer.owner is not None or layer.built:
            raise ValueError(f"{name} already belongs to a model; create a new Dense")
        before = self._layers[-1].n_out if self._layers else self._input
        if layer.n_in is None:
            layer.n_in = before
        elif before is not None and layer.n_in != before:
            if self._layers:
                raise ValueError(f"layer sizes disagree: layers[{self._sequence.index(self._layers[-1])}] has "
                                 f"n_out={before} but {name} has n_in={layer.n_in}")
            raise ValueError(f"{name} has n_in={layer.n_in} but the Input has shape ({before},)")
        layer.owner = self
        self._layers.append(layer)
        self._sequence.append(layer)

    def build(self, n_in: Optional[int] = None) -> None:
        """Create the parameters for inputs of width n_in (Keras' model.build): initialised from
        the model's seed. Needed only when no layer gives the input width; fit, predict and
        evaluate build from their data. ValueError if n_in disagrees with the width it has."""
        if not self._layers:
            raise ValueError("the model has no Dense layer to build")
        if n_in is not None:
            n_in = check_positive_int("n_in", n_in)
            if self.n_in is not None and self.n_in != n_in:
                raise ValueError(f"n_in={n_in}, but the model's input width is {self.n_in}")
            self._layers[0].n_in = n_in
        if self.n_in is None:
            raise ValueError("build needs n_in: no layer gives the model's input width")
        self._build_if_ready()

    @property
    def built(self) -> bool:
        """Whether the model has its parameters."""
        return self.network is not None and len(self.network.codes) == len(self._layers)

    def _build_if_ready(self) -> None:
        """Create (or, after an add, grow) the network once the input width is known: the layers
        that had weights keep them, the others are initialised in order from the model's generator."""
        if not self._layers or self.n_in is None or self.built:
            return
        kept = [] if self.network is None else [a.copy() for pair in zip(self.network.W, self.network.b) for a in pair]
        self.network = Network([self.n_in] + [layer.n_out for layer in self._layers],
                               [layer.code for layer in self._layers], self.dtype, self.precision == "bfloat16")
        self._bind_layers()
        for i, layer in enumerate(self._layers):
            if 2 * i < len(kept):
                layer.W, layer.b = kept[2 * i], kept[2 * i + 1]
            else:
                layer.initialize(self._rng)
        if self.optimizer is not None:
            self.optimizer.build(self.network.n_params, self.dtype)

    def _build_for(self, X, what: str) -> None:
        """Build from the width of the data X (an array-like or a Data) if the model is not built."""
        if self.built:
            return
        if not self._layers:
            raise ValueError(f"{what}: the model has no layers; add a Dense first")
        shape = np.shape(X.X if isinstance(X, Data) else X)
        if len(shape) != 2:
            raise ValueError(f"{what}: X must be 2-D (n_samples, n_features) to build the model from, got shape {shape}")
        self.build(shape[1])

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet (its input width is unknown): call "
                             f"model.build(n_in), or fit or predict first")

    @property
    def layers(self) -> list[Union[Dense, Dropout]]:
        """The layers, in order (Dense and Dropout; an Input is not a layer)."""
        return list(self._sequence)

    @property
    def dense_layers(self) -> list[Dense]:
        """The Dense layers, in order: the ones with parameters."""
        return list(self._layers)

    def _dropout_rates(self) -> Optional[np.ndarray]:
        """(L,) the dropout on each Dense layer's input, or None without Dropout layers."""
        rates, keep = [], 1.0
        for layer in self._sequence:
            if isinstance(layer, Dropout):
                keep *= 1.0 - layer.rate
            else:
                rates.append(1.0 - keep)
                keep = 1.0
        if keep != 1.0:
            raise ValueError("a Dropout must be followed by a Dense: it acts on the next layer's input")
        return np.array(rates) if any(rates) else None

    def _penalties(self) -> Optional[np.ndarray]:
        """(L, 2) each Dense layer's (l1, l2) kernel penalty, or None without regularizers."""
        rows = [(r.l1, r.l2) if (r := layer.kernel_regularizer) is not None else (0.0, 0.0) for layer in self._layers]
        return np.array(rows, np.float64) if any(a or b for a, b in rows) else None

    @property
    def n_in(self) -> Optional[int]:
        """The input width; None while the model does not know it."""
        return self._layers[0].n_in if self._layers else self._input

    @property
    def n_out(self) -> int:
        return self._layers[-1].n_out

    def count_params(self) -> int:
        self._require_built("count_params")
        return self.network.n_params

    def summary(self, print_fn: Callable[[str], None] = print) -> None:
        """Print a table of the layers: output shape, activation and parameter count."""
        self._require_built("summary")
        rows, width = [("layer", "output", "activation", "params")], self.n_in
        for i, layer in enumerate(self._sequence):
            if isinstance(layer, Dropout):
                rows.append((f"dropout_{i} ({layer.rate:g})", f"(batch, {width})", "", "0"))
                continue
            width = layer.n_out
            rows.append((f"dense_{i} ({layer.n_in}->{layer.n_out})", f"(batch, {layer.n_out})",
                         layer.activation, f"{layer.n_params:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        out = [line]
        for j, r in enumerate(rows):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
            if j == 0:
                out.append(line)
        products = "" if self.precision is None else f", {self.precision} products"
        out += [line, f"total params: {self.count_params():,} ({self.dtype.name}{products})"]
        if self.loss is not None:
            out.append(f"loss: {self.loss}, optimizer: {self.optimizer!r}")
        print_fn("\n".join(out))

    def __repr__(self) -> str:
        precision = "" if self.precision is None else f", precision={self.precision!r}"
        return f"Sequential({self._sequence!r}, dtype={self.dtype.name!r}{precision})"

    # ------------------------------------------------------------------ weights

    def get_weights(self) -> list[np.ndarray]:
        """Copies of [W1, b1, W2, b2, ...] ([] before the model is built)."""
        if not self.built:
            return []
        return [a.copy() for layer in self._layers for a in (layer.W, layer.b)]

    def set_weights(self, weights: Sequence) -> None:
        """Copy [W1, b1, W2, b2, ...] into the model (building it from W1's shape if needed);
        ValueError on a wrong count or shape, or on values that are not finite real numbers in the
        model's dtype (1e300 is inf in float32)."""
        weights = list(weights)
        if not self.built and weights and len(np.shape(weights[0])) == 2:
            self.build(np.shape(weights[0])[0])
        self._require_built("set_weights")
        expected = [a.shape for layer in self._layers for a in (layer.W, layer.b)]
        if len(weights) != len(expected):
            raise ValueError(f"weights must be a list of {len(expected)} arrays [W1, b1, ...], "
                             f"got {len(weights)}")
        arrays = [as_weights(f"weights[{i}]", w, shape, self.dtype) for i, (w, shape) in enumerate(zip(weights, expected))]
        targets = [a for pair in zip(self.network.W, self.network.b) for a in pair]
        for target, w in zip(targets, arrays):
            target[...] = w

    # ------------------------------------------------------------------ compile

    def compile(self, loss: str, optimizer: Union[str, optimizers.Optimizer] = "sgd",
                metrics: Optional[Sequence[str]] = None) -> None:
        """Choose the loss, the optimizer and the metrics to report. The loss's output activation
        must match the last layer: binary_crossentropy needs sigmoid, (sparse_)categorical_crossentropy
        softmax. An optimizer instance is used as given (its learning_rate and iterations are the
        model's from then on); it cannot be compiled into two models. metrics: names from
        fastnn.metrics; classification losses report "accuracy" whether asked or not."""
        if not self._layers:
            raise ValueError("compile: the model has no layers; add a Dense first")
        self._dropout_rates()  # a Dropout at the end is an error here, not at the first fit
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
        reported, top_k = fnn_metrics.resolve(metrics, code)
        optimizer = optimizers.get(optimizer)
        optimizer.attach(self)
        if self.optimizer is not None and self.optimizer is not optimizer:
            self.optimizer.owner = None  # free for another model
        self.optimizer = optimizer
        if self.built:
            optimizer.build(self.network.n_params, self.dtype)
        self.loss = loss
        self.loss_code = code
        self._reported = reported
        self._top_k = top_k
        self._metric_specs = [m if isinstance(m, str) else m.config() for m in metrics or []]
        self._metric_codes = np.array(list(dict.fromkeys(r.code for r in reported if r.code is not None)), np.int64)

    @property
    def metrics_names(self) -> list[str]:
        """The keys of what fit and evaluate report: "loss" and the compiled metrics."""
        self._require_compiled("metrics_names")
        return ["loss"] + [r.key for r in self._reported]

    def _require_compiled(self, what: str) -> None:
        if self.loss is None:
            raise RuntimeError(f"call model.compile(loss, optimizer) before model.{what}()")

    # ------------------------------------------------------------------ fit

    def _logs(self, result, n: int, count: Optional[int] = None) -> dict[str, np.ndarray]:
        """{"loss": (count,), each reported metric: (count,)} of a Trainer's Epochs over n rows, for
        its first `count` epochs (default: those finished): the kernels' counts and sums divided by
        the rows, or by the elements for per-element ones."""
        finished = result.finished if count is None else count
        logs = {"loss": result.loss[:finished]}
        codes = self._metric_codes.tolist()
        for key, code in self._reported:
            if code is None:  # the loss's own correct count: binary cross-entropy counts every output
                per_element = self.loss_code == losses.BINARY_CROSSENTROPY
                logs[key] = result.correct[:finished] / (n * self.n_out if per_element else n)
            else:
                per_element = _contract.METRICS[code].per_element
                logs[key] = result.metrics[:finished, codes.index(code)] / (n * self.n_out if per_element else n)
        return logs

    def step_options(self) -> dict:
        """What the training step does besides the loss and the optimizer, in
        fastnn._contract.TrainingRun's names: dropout (each Dense layer's input), dropout_seed
        (drawn from the model's generator the first time it is needed), penalties (kernel
        regularizers). gradcheck differentiates the step with them."""
        rates = self._dropout_rates()
        if rates is not None and self._dropout_seed is None:
            self._dropout_seed = int(self._rng.integers(2 ** 63))
        return {"dropout": rates, "dropout_seed": self._dropout_seed or 0, "penalties": self._penalties()}

    def _trainer(self, data: Data, batch: int) -> Trainer:
        """The training run of this model on `data`: its optimizer, metrics, dropout and penalties."""
        return Trainer(self.network, self.loss_code, data, batch, update=self.optimizer.update(),
                       metrics=self._metric_codes, top_k=self._top_k, **self.step_options())

    def _data(self, X, y, what: str, x_name: str = "X", y_name: str = "y", sample_weight=None,
              class_weight=None) -> Data:
        """X and y checked for this model, or the fastnn.trainer.Data in X (y None) as it is."""
        self._build_for(X, what)
        if isinstance(X, Data):
            if y is not None or sample_weight is not None or class_weight is not None:
                raise ValueError(f"{what}: y, sample_weight and class_weight must be None when X is a "
                                 f"fastnn.trainer.Data (it holds them)")
            if not X.fits(self):
                raise ValueError(f"{what}: the Data in X was made for another kind of model (dtype, "
                                 f"widths or loss)")
            return X
        if y is None:
            raise ValueError(f"{what}: {y_name} is None: give the targets (or X as a fastnn.trainer.Data, or a "
                             f"generator of (X, y) chunks to fit)")
        return Data.for_model(self, X, y, x_name, y_name, sample_weight=sample_weight, class_weight=class_weight)

    def fit(self, X, y=None, epochs: int = 1, batch_size: Optional[int] = 32, shuffle: bool = True,
            validation_data=None, verbose: Union[int, str] = 1, callbacks=None, *, validation_split: float = 0.0,
            sample_weight=None, class_weight: Optional[dict] = None, initial_epoch: int = 0,
            steps_per_epoch: Optional[int] = None) -> History:
        """Train for `epochs` passes over X: (n_samples, n_in), y: (n_samples, n_out) (or (n_samples,)
        labels for sparse_categorical_crossentropy; (n_samples,) for a one-output model). X may
        instead be a fastnn.trainer.Data made for this kind of model, with y None.

        Data bigger than memory (fastnn.streams): X a memory-mapped array (np.memmap), read a chunk
        of about 64 MB at a time, shuffled in chunk order and within each chunk; or X an iterator
        or generator of (X, y) / (X, y, sample_weight) chunks, y None, steps_per_epoch chunks an
        epoch (default: all it gives; validation_split is not possible, validation_data is).

        batch_size=None trains full-batch. validation_split: the last fraction of the rows (before
        shuffling) are held out and evaluated after each epoch, as Keras does; validation_data
        (X_val, y_val[, sample_weight_val]) gives them instead. sample_weight (n_samples,) weighs
        each row's loss; class_weight {class: weight} multiplies it by its class's weight.
        initial_epoch: the epoch to start counting from (to resume a run: epochs is the number to
        end on, as in Keras). Returns a History whose `history` dict holds "loss", the compiled
        metrics ("accuracy" for classification losses) and their "val_" twins when validating.
        If the loss becomes NaN or inf, raises TrainingDivergedError and keeps the weights from
        before that epoch; it also raises when the weights fit ends on make the outputs overflow
        on the first batch of X (each earlier step's weights were checked on the batch after it).
        Ctrl-C stops it within milliseconds with KeyboardInterrupt: the model
        keeps the weights of the last finished batch (optimizer.iterations counts that batch's
        step), and the epochs finished before it went to the callbacks. One model cannot be fitted
        from two threads at once (RuntimeError).
        """
        self._require_compiled("fit")
        epochs = check_positive_int("epochs", epochs, minimum=0)
        initial_epoch = check_positive_int("initial_epoch", initial_epoch, minimum=0)
        if initial_epoch and initial_epoch >= epochs:
            raise ValueError(f"initial_epoch={initial_epoch} must be less than epochs={epochs}: epochs is the "
                             f"epoch to end on (as in Keras), so nothing would be trained")
        validation_split = check_real("validation_split", validation_split, low=0.0, high=1.0, high_open=True)
        if validation_split and validation_data is not None:
            raise ValueError("give validation_data or validation_split, not both")
        verbose = _check_verbose(verbose)
        if batch_size is not None:
            batch_size = check_positive_int("batch_size", batch_size)
        if streams.is_stream(X):
            return self._fit_stream(X, y, range(initial_epoch, epochs), batch_size, shuffle, validation_data,
                                    validation_split, verbose, callbacks, sample_weight, class_weight, steps_per_epoch)
        if steps_per_epoch is not None:
            raise ValueError("steps_per_epoch is for a generator of (X, y) chunks; with arrays an epoch is all rows")
        data = self._data(X, y, "fit", sample_weight=sample_weight, class_weight=class_weight)
        validation = None
        if validation_split:
            data, validation = data.split(validation_split)
        batch = data.n if batch_size is None else min(batch_size, data.n)
        if validation_data is not None:
            validation = self._validation_data(validation_data)
        callbacks = _callback_list(callbacks)
        with self.network.fitting("fit"):
            return self._fit(data, range(initial_epoch, epochs), batch, shuffle and batch < data.n, validation,
                             verbose, callbacks)

    def _validation_data(self, validation_data) -> Data:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        return Data.for_model(self, *validation_data[:2], x_name="validation_data[0]", y_name="validation_data[1]",
                              sample_weight=validation_data[2] if len(validation_data) == 3 else None)

    def _fit_stream(self, X, y, epochs: range, batch_size, shuffle, validation_data, validation_split, verbose,
                    callbacks, sample_weight, class_weight, steps_per_epoch) -> History:
        """fit over a memory-mapped X or a generator of chunks: an epoch is one pass over the
        source's chunks, each checked, converted and trained on by one kernel call."""
        if isinstance(X, np.ndarray):
            if steps_per_epoch is not None:
                raise ValueError("steps_per_epoch is for a generator of (X, y) chunks; with arrays an epoch is all rows")
            if y is None:
                raise ValueError("fit: y is None: give the targets of the memory-mapped X")
            source = streams.MemmapSource(X, y, sample_weight, batch_size)
            self._build_for(X, "fit")
        else:
            if y is not None or sample_weight is not None:
                raise ValueError("fit: with a generator of chunks, y and sample_weight come in the chunks "
                                 "(X, y[, sample_weight]); y and sample_weight must be None")
            if validation_split:
                raise ValueError("validation_split cuts arrays; with a generator of chunks, give validation_data")
            source = streams.IterableSource(X, steps_per_epoch)
            self._build_for(source.first()[0], "fit")
        validation = None
        if validation_split:
            source, validation = source.split(validation_split)
        elif validation_data is not None:
            validation = self._validation_data(validation_data)
        callbacks = _callback_list(callbacks)
        with self.network.fitting("fit"):
            history = self._train_begin(callbacks)
            progress = Progress(epochs, verbose)
            try:
                for epoch in epochs:
                    if self.stop_training:
                        break
                    _hook(callbacks, "on_epoch_begin", epoch, {})
                    started = time.perf_counter()
                    logs = self._train_chunks(source.epoch(self._rng if shuffle else None), batch_size, shuffle,
                                              class_weight, epoch, history)
                    if validation is not None:
                        chunks = [validation] if isinstance(validation, Data) else (
                            Data.for_model(self, *chunk[:2], sample_weight=chunk[2]) for chunk in validation.epoch())
                        logs.update({"val_" + key: value for key, value in self._evaluate_chunks(chunks).items()})
                    history.append(epoch, logs)
                    self.epochs_trained = epoch + 1
                    progress.epoch_end(epoch, logs, time.perf_counter() - started)
                    progress.update(epoch + 1, logs)
                    _epoch_end(callbacks, epoch, logs)
            finally:
                progress.close()
            _hook(callbacks, "on_train_end", {})
        return history

    def _train_chunks(self, chunks, batch_size, shuffle, class_weight, epoch: int, history: History) -> dict:
        """One epoch over `chunks` ((X, y, sample_weight) arrays): its logs, summed over the chunks
        as one pass over all their rows would sum them."""
        def passes():
            for X, y, weights in chunks:
                data = Data.for_model(self, X, y, sample_weight=weights, class_weight=class_weight)
                batch = data.n if batch_size is None else min(batch_size, data.n)
                order = self._rng.permutation(data.n)[None] if shuffle and batch < data.n else None
                result = self._trainer(data, batch).epochs(1, order, self.optimizer.iterations)
                self.optimizer.iterations = result.step
                if result.stopped:
                    raise KeyboardInterrupt
                if result.finished < 1:
                    raise TrainingDivergedError(f"training diverged at epoch {epoch}: the loss of a chunk of {data.n} "
                                                f"rows is {result.loss[0]}; the model keeps the weights from before "
                                                f"that chunk (try a smaller learning rate)", history)
                yield result, data.n
        return self._summed_logs(passes())

    def _evaluate_chunks(self, chunks) -> dict:
        """The loss and metrics over every row of `chunks` (Data), evaluated a chunk at a time."""
        logs = self._summed_logs((self._evaluator(data, None).one_pass(), data.n) for data in chunks)
        _require_finite(math.isfinite(logs["loss"]), "evaluate", "loss")
        return logs

    def _summed_logs(self, passes) -> dict:
        """The logs of one pass over all the rows of `passes`: (a Trainer's one-epoch Epochs, its rows)."""
        loss, correct, sums, rows = 0.0, 0, np.zeros(len(self._metric_codes)), 0
        for result, n in passes:
            loss += float(result.loss[0]) * n
            correct += int(result.correct[0])
            sums += result.metrics[0]
            rows += n
        totals = Epochs(1, 0, np.array([loss / rows]), np.array([correct]), sums[None], False)
        return {key: values[0].item() for key, values in self._logs(totals, rows).items()}

    def _train_begin(self, callbacks: list) -> History:
        """The History a fit fills in, with the callbacks told the model and the start."""
        history = History()
        self.history = history
        self.stop_training = False
        for cb in callbacks:
            if hasattr(cb, "set_model"):
                cb.set_model(self)
        _hook(callbacks, "on_train_begin", {})
        return history

    def _fit(self, data: Data, epochs: range, batch, shuffle, validation, verbose, callbacks) -> History:
        """Runs of epochs go to the training step in one kernel call each. With callbacks or
        validation data a run is one epoch (they see every epoch); otherwise runs grow to about
        _CHUNK_SECONDS, so Python is visited a few times a second (progress bar, Ctrl-C). Before
        each run the optimizer's settings are read again: a callback's change takes effect there."""
        n = data.n
        trainer = self._trainer(data, batch)
        validating = self._evaluator(validation, None) if validation is not None else None
        every_epoch = bool(callbacks) or validation is not None or verbose == 2
        history = self._train_begin(callbacks)
        progress = Progress(epochs, verbose)
        done, run = epochs.start, 1
        try:
            while done < epochs.stop and not self.stop_training:
                run = min(run, epochs.stop - done, max(1, _MAX_ORDER_ROWS // n))
                if every_epoch:  # (a run is one epoch)
                    _hook(callbacks, "on_epoch_begin", done, {})
                order = np.stack([self._rng.permutation(n) for _ in range(run)]) if shuffle else None
                trainer.run.update = self.optimizer.update()
                started = time.perf_counter()
                result = trainer.epochs(run, order, self.optimizer.iterations)
                finished, epoch_loss = result.finished, result.loss
                self.optimizer.iterations = result.step
                seconds = time.perf_counter() - started
                run_logs = self._logs(result, n)
                if every_epoch:
                    for epoch in range(done, done + finished):
                        logs = {key: values[epoch - done].item() for key, values in run_logs.items()}
                        if validation is not None:
                            val = self._evaluate(validating, validation.n)
                            logs.update({"val_" + key: value for key, value in val.items()})
                        history.append(epoch, logs)
                        self.epochs_trained = epoch + 1
                        progress.epoch_end(epoch, logs, seconds)
                        last_logs = logs
                        _epoch_end(callbacks, epoch, logs)
                else:  # the whole run's logs at once: per-epoch Python here would cost more than XOR's epochs
                    history.extend(range(done, done + finished), run_logs)
                    self.epochs_trained = done + finished
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
                    if verbose:  # the last epoch's logs are gathered only for a bar that shows them
                        progress.update(done, {key: values[-1] for key, values in run_logs.items()})
                    # Aim the next run at _CHUNK_SECONDS in one step: the time measured includes
                    # the call's fixed cost, so the aim errs on the short side.
                    run = max(1, int(run * _CHUNK_SECONDS / max(seconds, 1e-9)))
        finally:
            progress.close()
        if done > epochs.start:
            self._check_last_step(data.X[:batch], history, done)
        _hook(callbacks, "on_train_end", {})
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

    def train_on_batch(self, X, y=None, sample_weight=None, class_weight: Optional[dict] = None,
                       return_dict: bool = False):
        """One optimizer step on X, y as a single batch (Keras' train_on_batch). Returns the batch's
        loss (computed before the step), or [loss, metric, ...] when the model reports metrics,
        or their dict with return_dict=True."""
        self._require_compiled("train_on_batch")
        data = self._data(X, y, "train_on_batch", sample_weight=sample_weight, class_weight=class_weight)
        with self.network.fitting("train_on_batch"):
            result = self._trainer(data, data.n).epochs(1, None, self.optimizer.iterations)
            self.optimizer.iterations = result.step
            if result.stopped:
                raise KeyboardInterrupt
            if result.finished < 1:
                raise TrainingDivergedError(f"train_on_batch diverged: the loss is {result.loss[0]}; the model "
                                            f"keeps the weights it had", History())
        return _results({key: values[0].item() for key, values in self._logs(result, data.n).items()}, return_dict)

    def test_on_batch(self, X, y=None, sample_weight=None, return_dict: bool = False):
        """The loss and metrics on X, y as one batch, updating nothing (Keras' test_on_batch);
        returned as train_on_batch returns them."""
        self._require_compiled("test_on_batch")
        data = self._data(X, y, "test_on_batch", sample_weight=sample_weight)
        return _results(self._evaluate(self._evaluator(data, data.n), data.n), return_dict)

    # ------------------------------------------------------------------ predict / evaluate

    def predict(self, X, batch_size: Optional[int] = None, verbose: int = 0) -> np.ndarray:
        """The network's output for X: (n_samples, n_in) -> (n_samples, n_out); probabilities for
        sigmoid/softmax outputs. Computed in chunks of batch_size rows (default: 1024). verbose is
        accepted for Keras' sake; predict prints nothing."""
        self._build_for(X, "predict")
        X = as_features("X", X, self.dtype, self.n_in)
        rows = PREDICT_ROWS if batch_size is None else check_positive_int("batch_size", batch_size)
        result = np.empty((X.shape[0], self.n_out), self.dtype)
        self.network.predict(X, result, rows)
        _require_finite(bool(np.isfinite(result).all()), "predict", "outputs")
        return result

    def __call__(self, X) -> np.ndarray:
        """model(X) is model.predict(X): (n_samples, n_in) -> (n_samples, n_out)."""
        return self.predict(X)

    def evaluate(self, X, y=None, batch_size: Optional[int] = None, verbose: int = 0, sample_weight=None,
                 return_dict: bool = True):
        """{"loss": mean loss over X, "accuracy": ... (classification losses), other compiled
        metrics}, computed by the training step (without updating anything); with
        return_dict=False, Keras' form: the loss alone, or [loss, metric, ...]. verbose=1 prints
        them too. X may be a fastnn.trainer.Data, y None."""
        self._require_compiled("evaluate")
        data = self._data(X, y, "evaluate", sample_weight=sample_weight)
        result = self._evaluate(self._evaluator(data, batch_size), data.n)
        if verbose:
            print(" - ".join(f"{key}: {value:.4f}" for key, value in result.items()))
        return _results(result, return_dict)

    def _evaluator(self, data: Data, batch_size: Optional[int]) -> Trainer:
        rows = min(PREDICT_ROWS if batch_size is None else check_positive_int("batch_size", batch_size), data.n)
        return evaluator(self.network, self.loss_code, data, rows, metrics=self._metric_codes, top_k=self._top_k,
                         penalties=self._penalties())

    def _evaluate(self, step: Trainer, n: int) -> dict:
        """{"loss", the reported metrics} of the evaluating pass `step` over n rows."""
        logs = {key: values[0].item() for key, values in self._logs(step.one_pass(), n, count=1).items()}
        _require_finite(math.isfinite(logs["loss"]), "evaluate", "loss")
        return logs

    # ------------------------------------------------------------------ files

    def get_config(self) -> dict:
        """The model as JSON-able settings (Keras' get_config): dtype, precision, seed, the layers' configs,
        and what compile was given. Sequential.from_config(config) makes a model like this one,
        with fresh weights."""
        compiled = None
        if self.loss is not None:
            compiled = {"loss": self.loss, "optimizer": self.optimizer.config(), "metrics": self._metric_specs}
        return {"dtype": self.dtype.name, "precision": self.precision, "seed": self.seed, "input": self._input,
                "layers": [layer.config() for layer in self._sequence], "compile": compiled}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        """The model get_config() describes, built if its input width is known, compiled if it was."""
        first = [Input(shape=(config["input"],))] if config.get("input") is not None else []
        model = cls(first + [layers.from_config(c) for c in config["layers"]], seed=config.get("seed"),
                    dtype=config["dtype"], precision=config.get("precision"))
        compiled = config.get("compile")
        if compiled is not None:
            model.compile(compiled["loss"], optimizers.from_config(compiled["optimizer"]),
                          metrics=[fnn_metrics.from_config(m) for m in compiled.get("metrics") or []])
        return model

    def save(self, path) -> None:
        """Write the model to an .npz file (atomically; no pickle; fastnn.saving): its
        configuration, weights, and what resuming needs: the optimizer's state and step count,
        the generator's state and the epochs trained. fnn.load(path) and fit(...,
        initial_epoch=model.epochs_trained) continue as if the fit had never stopped."""
        self._require_built("save")
        arrays = {f"{'Wb'[i % 2]}{i // 2}": a for i, a in enumerate(self.get_weights())}
        training = {"epochs_trained": self.epochs_trained, "rng": self._rng.bit_generator.state,
                    "dropout_seed": self._dropout_seed}
        if self.optimizer is not None:
            training.update(iterations=self.optimizer.iterations, optimizer_state=sorted(self.optimizer.state))
            arrays.update({f"state_{name}": a for name, a in self.optimizer.state.items()})
        saving.write(path, {**self.get_config(), "training": training}, arrays)

    def load_weights(self, path) -> None:
        """Copy the weights of the model file `path` into this model (Keras' load_weights; the
        optimizer and training state stay this model's). ValueError, changing nothing, if the
        file's layers (widths, activations) or dtype differ from this model's."""
        self._require_built("load_weights")
        architecture, arrays = saving.read(path, _file_arrays)
        theirs = [(c.get("n_in"), c.get("n_out"), c.get("activation")) for c in architecture["layers"]
                  if c.get("class", "Dense") == "Dense"]
        ours = [(layer.n_in, layer.n_out, layer.activation) for layer in self._layers]
        if theirs != ours or architecture["dtype"] != self.dtype.name:
            raise ValueError(f"{path!s} holds a {architecture['dtype']} model with layers (n_in, n_out, activation) "
                             f"{theirs}; this model is {self.dtype.name} with {ours}")
        self.set_weights([arrays[f"{'Wb'[i % 2]}{i // 2}"] for i in range(2 * len(self._layers))])

_HOOKS = {"on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end"}


def _check_verbose(verbose) -> int:
    """0, 1 or 2; Keras' "auto" is 1."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _hook(callbacks: list, name: str, *args) -> None:
    """Call hook `name` of every callback that has it."""
    for cb in callbacks:
        if hasattr(cb, name):
            getattr(cb, name)(*args)


def _epoch_end(callbacks: list, epoch: int, logs: dict) -> None:
    """Each callback's on_epoch_end, or the callback itself when it is a plain function."""
    for cb in callbacks:
        if hasattr(cb, "on_epoch_end"):
            cb.on_epoch_end(epoch, logs)
        elif callable(cb) and not _HOOKS.intersection(dir(cb)):
            cb(epoch, logs)


def _callback_list(callbacks) -> list:
    """fit's callbacks as a list, each checked to be a callback."""
    if callbacks is not None and (callable(callbacks) or _HOOKS.intersection(dir(callbacks))):
        raise TypeError(f"callbacks must be a list of callbacks, got one {type(callbacks).__name__}: "
                        f"pass callbacks=[{type(callbacks).__name__}(...)]")
    try:
        callbacks = list(callbacks or [])
    except TypeError:
        raise TypeError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}") from None
    for cb in callbacks:
        if not (callable(cb) or _HOOKS.intersection(dir(cb))):
            raise TypeError(f"callbacks must be callables fn(epoch, logs) or fnn.callbacks.Callback objects "
                            f"(on_epoch_end, ...), got {cb!r}")
    return callbacks


def _results(logs: dict, return_dict: bool):
    """logs as evaluate and train_on_batch return them: the dict, or Keras' scalar loss / list."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _file_arrays(architecture: dict) -> dict:
    """{name: (shape, dtype)} of the arrays a saved architecture says its file holds: W0, b0, ...
    and the optimizer's state; nothing is allocated."""
    dtype = check_dtype(architecture["dtype"])
    dense = [layer for layer in map(layers.from_config, architecture["layers"]) if isinstance(layer, Dense)]
    if not dense:
        raise ValueError("no layers")
    for i, (a, b) in enumerate(zip(dense[:-1], dense[1:])):
        if a.n_out != b.n_in:
            raise ValueError(f"layers[{i}] has n_out={a.n_out} but layers[{i + 1}] has n_in={b.n_in}")
    shapes = {}
    for i, layer in enumerate(dense):
        shapes[f"W{i}"] = ((layer.n_in, layer.n_out), dtype)
        shapes[f"b{i}"] = ((layer.n_out,), dtype)
    n_params = sum(layer.n_params for layer in dense)
    for name in architecture.get("training", {}).get("optimizer_state", []):
        shapes[f"state_{name}"] = ((n_params,), dtype)
    return shapes


def load(path) -> Sequential:
    """Read a model written by `model.save(path)`, ready to go on training: compiled as it was,
    with its optimizer's state, step count and generator state, and `epochs_trained`.
    FileNotFoundError if missing; ValueError if the file is not a complete fastnn model (wrong
    format or version, garbage, truncated, bad shapes). The file is checked whole before the model
    is built: a file never makes load allocate more than the arrays it really holds."""
    architecture, arrays = saving.read(path, _file_arrays)
    if architecture["version"] == 1:  # weights, loss and optimizer settings only
        architecture = {"dtype": architecture["dtype"], "layers": architecture["layers"],
                        "compile": None if architecture.get("loss") is None else
                        {"loss": architecture["loss"], "optimizer": architecture["optimizer"], "metrics": []}}
    try:
        model = Sequential.from_config(architecture)
        model.set_weights([arrays[f"{'Wb'[i % 2]}{i // 2}"] for i in range(2 * len(model.dense_layers))])
        _restore(model, architecture.get("training"), arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise saving.invalid(path, f"the saved model is not valid ({type(exc).__name__}: {exc})") from None
    return model


def _restore(model: Sequential, training: Optional[dict], arrays: dict) -> None:
    """Put back what save recorded for resuming (`training`, None in version 1 files)."""
    if training is None:
        return
    model.epochs_trained = check_positive_int("epochs_trained", training["epochs_trained"], minimum=0)
    state = training["rng"]
    if not isinstance(state, dict) or state.get("bit_generator") != type(model._rng.bit_generator).__name__:
        raise ValueError(f"the generator state is not a {type(model._rng.bit_generator).__name__} state")
    model._rng.bit_generator.state = state
    seed = training.get("dropout_seed")
    model._dropout_seed = None if seed is None else check_positive_int("dropout_seed", seed, minimum=0)
    if model.optimizer is not None:
        names = training.get("optimizer_state", [])
        if sorted(names) != sorted(model.optimizer.state_names()):
            raise ValueError(f"the optimizer state holds {names}, but a {type(model.optimizer).__name__} keeps "
                             f"{list(model.optimizer.state_names())}")
        model.optimizer.iterations = check_positive_int("iterations", training["iterations"], minimum=0)
        for name in names:
            np.copyto(model.optimizer.state[name], arrays[f"state_{name}"])
