"""The NumPy twin of fastnn._kernels: the same functions, parameters and results, file by family.

  activations.py  activate, activation_grad            the activation table's functions and derivatives
  bfloat16.py     round_bfloat16                       float32 rounded to bfloat16 (the products' operands)
  dense.py        dense_forward, dense_backward        one dense layer, forward and backward;
                  network_predict                      a network's output for many rows
  losses.py       sigmoid_bce, softmax_cce, ...        losses from logits, with their gradients
  metrics.py      binary_correct, metric_sum, ...      counts of correct predictions, metric sums
  optimizers.py   optimizer_step, scheduled_lr         one update of the flat parameter buffer
  trainer.py      train_epochs, step_path              whole training runs, the step written once
  shuffle.py      shuffle_orders                       epochs' row orders as scikit-learn's RandomState draws them

Conventions, shared with the compiled twin (fastnn/_compiled): row-major arrays, X (batch, n_in),
W (n_in, n_out), b (n_out,); outputs preallocated by the caller and written in place, nothing
returned but scalars; one dtype (float32 or float64) per call; activations as integer codes
(fastnn._contract), derivatives through A = f(Z); loss sums accumulated in float64. Each function
checks the shapes it relies on and raises the contract's errors.
"""
from .activations import activate, activation_grad
from .bfloat16 import round_bfloat16
from .dense import dense_backward, dense_forward, network_predict
from .losses import mse, poisson_nll, sigmoid_bce, softmax_cce, softmax_sparse_cce
from .metrics import binary_correct, categorical_correct, metric_sum, sparse_correct, sparse_metric_sum
from .optimizers import optimizer_step, scheduled_lr
from .shuffle import shuffle_orders
from .trainer import step_path, train_epochs

__all__ = ["activate", "activation_grad", "round_bfloat16", "dense_forward", "dense_backward", "network_predict", "sigmoid_bce", "softmax_cce",
           "softmax_sparse_cce", "mse", "poisson_nll", "binary_correct", "categorical_correct", "sparse_correct",
           "metric_sum", "sparse_metric_sum", "optimizer_step", "scheduled_lr", "train_epochs", "step_path",
           "shuffle_orders"]
