"""The one caller of the kernels' train_epochs: a network, a loss and data made into one named
fastnn._contract.TrainingRun, then run.

Everything that trains or differentiates goes through here, so it runs the step that fit runs
(including the lanes, for tiny networks): Sequential.fit and evaluate, the scikit-learn
estimators, gradcheck and explain.

    data = Data.for_model(model, X, y)                   # checked and converted once
    trainer = Trainer(model.network, loss, data, batch=32, update=optimizer.update())
    run = trainer.epochs(10, order, step)                # run.finished, run.step, run.loss, ...
    loss, correct = gradient(model.network, loss, data)  # full batch: the gradient in network.grads
    loss, correct = evaluator(model.network, loss, data, rows=1024).loss_and_count()

A stop request or Ctrl-C ends a kernel call after the batch it is in; `epochs` reports it
(`stopped`), and the callers raise KeyboardInterrupt once their bookkeeping matches the
parameters (the last finished batch).
"""
import contextlib
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from . import _contract
from .backend import ops
from .network import Network
from .threads import one_thread_blas, product_threads
from .validation import as_features, as_sample_weight, as_targets, class_weights


@dataclass(frozen=True)
class Data:
    """Training data checked and converted for one kind of model: X (n, n_in) of the model's dtype,
    C-contiguous; y (n, n_out) targets of that dtype, or (n,) int64 class labels for the sparse
    loss; sample_weight (n,) of the dtype, or None. Pass it to Sequential.fit as X (with y=None) to
    skip the checks, as fit_parallel does for many models at once."""
    X: np.ndarray
    y: np.ndarray
    sample_weight: Optional[np.ndarray] = None
    checked_for: Optional[tuple] = None  # kind_of(model) when for_model made it

    @staticmethod
    def kind_of(model) -> tuple:
        """What data checked for `model` depends on: (dtype, n_in, n_out, loss code)."""
        return model.dtype, model.n_in, model.n_out, model.loss_code

    @classmethod
    def for_model(cls, model, X, y, x_name: str = "X", y_name: str = "y", sample_weight=None,
                  class_weight=None) -> "Data":
        """X and y checked (shapes, finite values in the model's dtype, targets in the loss's
        domain, labels in range) and converted for a compiled model. sample_weight (n,) weights
        rows; class_weight {class: weight} multiplies each row's weight by its class's (the label,
        the rounded target of a one-output model, or the argmax of a row of targets; classes it
        leaves out weigh 1)."""
        row = _contract.LOSSES[model.loss_code]
        sparse = model.loss_code == _contract.SPARSE_CATEGORICAL_CROSSENTROPY
        X = as_features(x_name, X, model.dtype, model.n_in)
        y = as_targets(y_name, y, model.dtype, X.shape[0], model.n_out, sparse=sparse, domain=row.targets,
                       loss=row.name)
        weights = None if sample_weight is None else as_sample_weight("sample_weight", sample_weight, model.dtype,
                                                                       X.shape[0])
        if class_weight is not None:
            if row.counts is None:
                raise ValueError(f"class_weight needs a classification loss; {row.name} has no classes "
                                 f"(weigh rows with sample_weight)")
            classes = y if sparse else (np.rint(y[:, 0]) if y.shape[1] == 1 else np.argmax(y, axis=1))
            per_row = class_weights("class_weight", class_weight, classes, max(2, model.n_out), model.dtype)
            weights = per_row if weights is None else weights * per_row
            if not np.any(weights):
                raise ValueError("class_weight and sample_weight leave every row with weight 0: nothing to learn from")
        return cls(X, y, weights, checked_for=cls.kind_of(model))

    def split(self, fraction: float) -> tuple["Data", "Data"]:
        """(the first rows, the last `fraction` of them), as Keras' validation_split cuts them:
        before any shuffling. ValueError if either part would be empty."""
        at = int(math.floor(self.n * (1.0 - fraction)))
        if at < 1 or at >= self.n:
            raise ValueError(f"validation_split={fraction} leaves {at} of {self.n} rows to train on and "
                             f"{self.n - at} to validate on: each needs at least one")

        def part(rows: slice) -> "Data":
            weights = None if self.sample_weight is None else self.sample_weight[rows]
            return Data(self.X[rows], self.y[rows], weights, self.checked_for)
        return part(slice(0, at)), part(slice(at, None))

    def fits(self, model) -> bool:
        """Whether for_model made this data for a model of the kind of `model`."""
        return self.checked_for == self.kind_of(model)

    @property
    def n(self) -> int:
        return self.X.shape[0]


class Epochs(NamedTuple):
    """What one kernel call of `Trainer.epochs` did: epochs finished, the optimizer's step count,
    each epoch's mean loss (count,) float64, correct predictions (count,) int64 and sums of the
    run's metrics (count, k) float64 (those past `finished` not filled), and whether a stop
    request or Ctrl-C ended it after a batch."""
    finished: int
    step: int
    loss: np.ndarray
    correct: np.ndarray
    metrics: np.ndarray
    stopped: bool


class Trainer:
    """The TrainingRun of `network` with loss `loss` (a code) on `data`, made once; `epochs` runs it.

    batch: rows per batch. update: a fastnn._contract.Update (an optimizer's `update()`), or None
    for passes that only compute the loss and its gradient. grads: the gradient buffer to write,
    network.grads by default (a pass that must not disturb a fit, such as evaluate, brings its
    own). The other options are TrainingRun's: l2, loss_scale; metrics (codes), top_k; dropout
    (per layer), dropout_seed; penalties (per layer); threads, of fastnn's pool (default:
    fastnn.threads.product_threads in the calling thread); count_correct. The run's stop flag is
    network.stop.
    """

    def __init__(self, network: Network, loss: int, data: Data, batch: int, update: Optional[_contract.Update] = None,
                 l2: float = 0.0, loss_scale: float = 1.0, grads: Optional[np.ndarray] = None,
                 metrics: Optional[np.ndarray] = None, top_k: int = 5, dropout: Optional[np.ndarray] = None,
                 dropout_seed: int = 0, penalties: Optional[np.ndarray] = None, threads: Optional[int] = None,
                 count_correct: bool = True):
        sparse = loss == _contract.SPARSE_CATEGORICAL_CROSSENTROPY
        self.run = _contract.TrainingRun(
            sizes=network.sizes, codes=network.loss_codes(loss), params=network.params,
            grads=network.grads if grads is None else grads, loss=loss, X=data.X,
            Y=None if sparse else data.y, labels=data.y if sparse else None, sample_weight=data.sample_weight,
            batch=batch, update=update, l2=l2, loss_scale=loss_scale, stop=network.stop, metrics=metrics,
            top_k=top_k, dropout=dropout, dropout_seed=dropout_seed, penalties=penalties,
            threads=product_threads(network.bfloat16) if threads is None else threads, bfloat16=network.bfloat16,
            count_correct=count_correct)
        # the pool's workers each call a one-thread BLAS
        self._blas = one_thread_blas if self.path == "pool" else contextlib.nullcontext

    def loss_and_count(self) -> tuple[float, int]:
        """(mean loss, correct count) of one epoch that updates nothing (the gradient of its last
        batch is left in the run's grads); KeyboardInterrupt on Ctrl-C."""
        run = self.one_pass()
        return float(run.loss[0]), int(run.correct[0])

    def one_pass(self) -> Epochs:
        """One epoch in order, as `epochs(1)` reports it; KeyboardInterrupt on Ctrl-C."""
        run = self.epochs(1)
        if run.stopped:
            raise KeyboardInterrupt
        return run

    @property
    def path(self) -> str:
        """The specialisation of the step the active backend takes: "layers" or "lanes"."""
        return ops().step_path(self.run)

    def epochs(self, count: int, order: Optional[np.ndarray] = None, step: int = 0) -> Epochs:
        """Train `count` epochs in one kernel call. order: (count, n) int64 row order of each
        epoch, or None for the rows in order; step: the updates made so far. An epoch whose loss or
        parameters are not finite is undone and ends the call early (finished < count; its loss is
        loss[finished]); a stop request or Ctrl-C ends it after a batch (stopped)."""
        epoch_loss = np.zeros(count)
        epoch_correct = np.zeros(count, np.int64)
        epoch_metrics = np.zeros((count, 0 if self.run.metrics is None else len(self.run.metrics)))
        with self._blas():
            finished, step, stopped = ops().train_epochs(self.run, order, step, epoch_loss, epoch_correct,
                                                         epoch_metrics)
        return Epochs(finished, step, epoch_loss, epoch_correct, epoch_metrics, stopped)


def gradient(network: Network, loss: int, data: Data, l2: float = 0.0, loss_scale: float = 1.0,
             grads: Optional[np.ndarray] = None, **options) -> tuple[float, int]:
    """The loss on all of `data` as one batch, and its gradient, written into network.grads (or
    `grads`): one pass of the training step that updates nothing (with dropout, the masks of
    step 1 every time). options: Trainer's dropout, dropout_seed, penalties. Returns (loss,
    correct count)."""
    return Trainer(network, loss, data, batch=data.n, l2=l2, loss_scale=loss_scale, grads=grads,
                   **options).loss_and_count()


def evaluator(network: Network, loss: int, data: Data, rows: int, metrics: Optional[np.ndarray] = None,
              top_k: int = 5, penalties: Optional[np.ndarray] = None) -> Trainer:
    """The pass that evaluates `data` in batches of `rows` (`loss_and_count()`, `one_pass()`): the
    training step, without dropout, on a gradient buffer of its own, so that it may run while the
    network is being fitted. With penalties, the loss includes the kernel regularizers' (as
    Keras' evaluate and val_loss do)."""
    return Trainer(network, loss, data, batch=rows, grads=np.empty_like(network.grads), metrics=metrics, top_k=top_k,
                   penalties=penalties)
