"""Typed signatures of the compiled kernels (fastnn/_kernels.pyx and the families it includes from
fastnn/_compiled/), the twin of fastnn/_fallback/.

Every float array of one call has one dtype, float32 or float64, and is C-contiguous; outputs are
preallocated by the caller and written in place. Read-only inputs are accepted.
"""
from typing import Literal, Optional, TypeVar

import numpy as np
from numpy.typing import NDArray

from fastnn._contract import TrainingRun, Update

_F = TypeVar("_F", np.float32, np.float64)

# ----------------------------------------------------------------------------- activations

def activate(Z: NDArray[_F], activation: int, out: NDArray[_F]) -> None:
    """out = f(Z), row-wise for softmax. Z, out: (batch, n); out may be Z."""

def activation_grad(A: NDArray[_F], dA: NDArray[_F], activation: int, out: NDArray[_F]) -> None:
    """out = dA * f'(Z) through A = f(Z). A, dA, out: (batch, n); out may be dA."""

# ----------------------------------------------------------------------------- dense layer

def round_bfloat16(a: NDArray[np.float32], out: NDArray[np.float32]) -> None:
    """out = a rounded to bfloat16 (and widened back to float32). a, out: (n,); out may be a."""

def dense_forward(X: NDArray[_F], W: NDArray[_F], b: NDArray[_F], activation: int, out: NDArray[_F],
                  bfloat16: bool = False) -> None:
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out);
    bfloat16: the product of X and W rounded to bfloat16 (float32 only)."""

def dense_backward(X: NDArray[_F], W: NDArray[_F], A: NDArray[_F], dA: NDArray[_F], activation: int,
                   dZ: NDArray[_F], dW: NDArray[_F], db: NDArray[_F], dX: Optional[NDArray[_F]] = None,
                   bfloat16: bool = False) -> None:
    """dZ = dA*f'(Z) (may be dA), db, dW = X.T @ dZ, dX = dZ @ W.T; shapes as in dense_forward."""

def network_predict(sizes: NDArray[np.int64], codes: NDArray[np.int64], params: NDArray[_F], X: NDArray[_F],
                    out: NDArray[_F], rows: int, threads: int, bfloat16: bool = False) -> None:
    """out = the network's output for X (n, sizes[0]) -> (n, sizes[-1]), `rows` rows at a time, the
    chunks shared by `threads` threads when the work is large enough; bfloat16 products when `bfloat16`."""

# ----------------------------------------------------------------------------- losses

# Every loss is a mean over rows, weighted by sample_weight (batch,) when given: sum w_i loss_i / sum w_i.

def sigmoid_bce(Z: NDArray[_F], Y: NDArray[_F], dZ: NDArray[_F], sample_weight: Optional[NDArray[_F]] = None) -> float:
    """Mean BCE from logits; dZ = (sigmoid(Z) - Y) / Z.size unweighted. Z, Y, dZ: (batch, n_out)."""

def softmax_cce(Z: NDArray[_F], Y: NDArray[_F], dZ: NDArray[_F], sample_weight: Optional[NDArray[_F]] = None) -> float:
    """Batch-mean CCE from logits; dZ = (softmax(Z) * sum(Y, row) - Y) / batch unweighted. Z, Y, dZ: (batch, n)."""

def softmax_sparse_cce(Z: NDArray[_F], labels: NDArray[np.int64], dZ: NDArray[_F],
                       sample_weight: Optional[NDArray[_F]] = None) -> float:
    """softmax_cce with integer labels in [0, n). Z, dZ: (batch, n), labels: (batch,) int64."""

def mse(A: NDArray[_F], Y: NDArray[_F], dA: NDArray[_F], sample_weight: Optional[NDArray[_F]] = None) -> float:
    """Mean squared error over all elements; dA = 2 (A - Y) / A.size unweighted. A, Y, dA: (batch, n_out)."""

def poisson_nll(Z: NDArray[_F], Y: NDArray[_F], dZ: NDArray[_F], sample_weight: Optional[NDArray[_F]] = None) -> float:
    """Half Poisson deviance of exp(Z) against counts Y, mean over elements; dZ = (exp(Z) - Y) / Z.size
    unweighted. Z, Y, dZ: (batch, n_out)."""

# ----------------------------------------------------------------------------- accuracy counts

def binary_correct(Z: NDArray[_F], Y: NDArray[_F]) -> int:
    """Count of elements with (Z > 0) == (Y > 0.5). Z, Y: (batch, n)."""

def categorical_correct(Z: NDArray[_F], Y: NDArray[_F]) -> int:
    """Count of rows with argmax Z == argmax Y (first maximum on ties). Z, Y: (batch, n)."""

def sparse_correct(Z: NDArray[_F], labels: NDArray[np.int64]) -> int:
    """Count of rows with argmax Z == label. Z: (batch, n), labels: (batch,) int64."""

def metric_sum(P: NDArray[_F], Y: NDArray[_F], metric: int, k: int = 5) -> float:
    """Sum over a batch of a metric on targets (fastnn._contract.METRICS): per element or per row.
    P, Y: (batch, n); k: top-k's k."""

def sparse_metric_sum(P: NDArray[_F], labels: NDArray[np.int64], metric: int, k: int = 5) -> float:
    """metric_sum of a metric on class labels. P: (batch, n), labels: (batch,) int64 in [0, n)."""

# ----------------------------------------------------------------------------- optimizer steps

def scheduled_lr(update: Update, step: int) -> float:
    """The learning rate of update at step number step >= 1 (its schedule at step - 1)."""

def optimizer_step(update: Update, params: NDArray[_F], grads: NDArray[_F], step: int,
                   sizes: NDArray[np.int64]) -> None:
    """One step of update at step number step >= 1: learning rate, clipping of grads (in place), the
    optimizer's formula. params, grads: (n_params,) of the network with layer widths sizes (L+1,)."""

# ----------------------------------------------------------------------------- whole training runs

def train_epochs(run: TrainingRun, order: Optional[NDArray[np.int64]], step: int, epoch_loss: NDArray[np.float64],
                 epoch_correct: NDArray[np.int64], epoch_metrics: NDArray[np.float64]) -> tuple[int, int, bool]:
    """len(epoch_loss) epochs of run in one call -> (epochs finished, step, stopped). order: (epochs, n)
    or None (rows in order); epoch_loss, epoch_correct: (epochs,) per-epoch mean loss and correct
    count; epoch_metrics: (epochs, len(run.metrics)) per-epoch sums of the run's metrics."""

def step_path(run: TrainingRun) -> Literal["layers", "lanes", "pool"]:
    """The specialisation of the step train_epochs takes for run: "lanes" for tiny networks on CPUs
    with AVX2 + FMA (micro-kernels on), "pool" for large networks when run.threads > 1 (the
    contract's pool_threads), else "layers"."""

# ----------------------------------------------------------------------------- epoch orders

def shuffle_orders(key: NDArray[np.uint32], pos: int, sample_idx: NDArray[np.int64], order: NDArray[np.int64]) -> int:
    """For each row e of order: order[e] = the row before it (sample_idx for the first) permuted
    as RandomState.shuffle permutes it, from the MT19937 state (key, pos) of RandomState.get_state();
    key is left in the new state, and the new pos returned. key: (624,); sample_idx: (n,); order: (count, n)."""

# ----------------------------------------------------------------------------- the AVX2 micro-kernels and lanes

def _simd_available() -> bool:
    """Whether this CPU runs the AVX2 + FMA micro-kernels and lanes (and this build has them)."""

def _product_rounds(product: int, blas: bool, A: NDArray[_F], B: NDArray[_F],
                    C: NDArray[_F], reps: int, blocks: bool = False) -> None:
    """For benchmarks: `reps` times one of a dense layer's products (0: A·B, 1: Aᵀ·B, 2: A·Bᵀ) by
    BLAS or the micro-kernels, without returning to Python in between."""


def _set_simd(on: bool) -> bool:
    """Use the micro-kernels and lanes (when available) or not; returns the previous setting. For tests."""

def _wide_available() -> bool:
    """Whether this CPU runs the micro-kernels' AVX-512 versions (AVX-512 F and DQ)."""

def _set_wide(on: bool) -> bool:
    """Use the AVX-512 micro-kernels (when available) or the AVX2 ones; returns the previous setting."""

def _bf16_product_rounds(A: NDArray[np.float32], B: NDArray[np.float32], C: NDArray[np.float32], reps: int,
                         threads: int) -> None:
    """For benchmarks: reps times C = A @ B with bfloat16 operands on the AVX512-BF16 path, shared by threads."""

def _bf16_path() -> Literal["avx512bf16", "emulation"]:
    """How bfloat16 products are computed now (AVX512-BF16 when the CPU has it and the vector paths are on)."""

def _simd_level() -> Literal["avx512", "avx2", "portable"]:
    """The vector paths in use (FASTNN_SIMD=0|avx2|avx512 picks at import)."""

def _set_fused(on: bool) -> bool:
    """Fuse a ReLU layer's derivative pass into the product that computes its dA (where that product
    streams a transposed W), or keep them apart; returns the previous setting. For tests."""

def _set_fixed_lanes(on: bool) -> bool:
    """Send the 2-H-1 networks to the lanes compiled for their sizes (the default) or to the lanes
    of any sizes; returns the previous setting. For tests."""

def _lane_codes(run: TrainingRun) -> Optional[tuple[NDArray[np.int64], int]]:
    """(activation codes, loss code) of lanes.h when train_epochs runs run's batches across vector
    lanes (micro-kernels on, layers 1 to 64 bytes wide, linear/sigmoid/tanh/ReLU/leaky ReLU, BCE
    from logits or MSE, unweighted), else None."""
