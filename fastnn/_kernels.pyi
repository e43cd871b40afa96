"""Typed signatures of the compiled kernels (fastnn/_kernels.pyx), the twin of fastnn/_fallback.py.

Every float array of one call has one dtype, float32 or float64, and is C-contiguous; outputs are
preallocated by the caller and written in place. Read-only inputs are accepted.
"""
from typing import Optional, Sequence, TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

# ----------------------------------------------------------------------------- activations

def activate(Z: NDArray[_F], activation: int, out: NDArray[_F]) -> None:
    """out = f(Z), row-wise for softmax. Z, out: (batch, n); out may be Z."""

def activation_grad(A: NDArray[_F], dA: NDArray[_F], activation: int, out: NDArray[_F]) -> None:
    """out = dA * f'(Z) through A = f(Z). A, dA, out: (batch, n); out may be dA."""

# ----------------------------------------------------------------------------- dense layer

def dense_forward(X: NDArray[_F], W: NDArray[_F], b: NDArray[_F], activation: int, out: NDArray[_F]) -> None:
    """out = f(X @ W + b). X: (batch, n_in), W: (n_in, n_out), b: (n_out,), out: (batch, n_out)."""

def dense_backward(X: NDArray[_F], W: NDArray[_F], A: NDArray[_F], dA: NDArray[_F], activation: int,
                   dZ: NDArray[_F], dW: NDArray[_F], db: NDArray[_F], dX: Optional[NDArray[_F]] = None) -> None:
    """dZ = dA*f'(Z) (may be dA), db, dW = X.T @ dZ, dX = dZ @ W.T; shapes as in dense_forward."""

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

# ----------------------------------------------------------------------------- optimizer steps

def sgd_step(param: NDArray[_F], grad: NDArray[_F], lr: float) -> None:
    """param -= lr * grad. param, grad: (n,)."""

def momentum_step(param: NDArray[_F], grad: NDArray[_F], velocity: NDArray[_F], lr: float,
                  momentum: float, nesterov: bool = False) -> None:
    """velocity = momentum * velocity - lr * grad; param += velocity (Nesterov: += momentum * velocity
    - lr * grad). All (n,)."""

def adam_step(param: NDArray[_F], grad: NDArray[_F], m: NDArray[_F], v: NDArray[_F], lr: float, beta1: float,
              beta2: float, eps: float, step: int) -> None:
    """One Adam update at step number step >= 1 (Keras' and scikit-learn's form). param, grad, m, v: (n,)."""

# ----------------------------------------------------------------------------- whole training runs

def train_epochs(X: NDArray[_F], Y: NDArray[_F], labels: NDArray[np.int64], sample_weight: NDArray[_F],
                 order: NDArray[np.int64],
                 sizes: NDArray[np.int64], codes: NDArray[np.int64], loss: int, batch: int, params: NDArray[_F],
                 grads: NDArray[_F], optimizer: int, state1: NDArray[_F], state2: NDArray[_F],
                 hyper: NDArray[np.float64], step: int, epoch_loss: NDArray[np.float64],
                 epoch_correct: NDArray[np.int64]) -> tuple[int, int]:
    """len(epoch_loss) epochs in one call -> (epochs finished, step). X: (n, sizes[0]), params: (n_params,),
    sample_weight: (n,) or (0,), hyper: (lr, momentum or beta1, beta2, eps, l2, loss_scale)."""

# ----------------------------------------------------------------------------- the AVX2 micro-kernels and lanes

def _simd_available() -> bool:
    """Whether this CPU runs the AVX2 + FMA micro-kernels of _microkernels.h (and this build has them)."""

def _set_simd(on: bool) -> bool:
    """Use the micro-kernels (when available) or not; returns the previous setting. For tests."""

def _lane_codes(sizes: Sequence[int], codes: Sequence[int], loss: int, weighted: bool,
                item_size: int) -> Optional[tuple[NDArray[np.int64], int]]:
    """(activation codes, loss code) of _lanes.h when train_epochs runs this network's batches across
    vector lanes (micro-kernels on, layers 1 to 64 bytes wide, linear/sigmoid/tanh/ReLU/leaky ReLU, BCE
    from logits or MSE, unweighted), else None."""
