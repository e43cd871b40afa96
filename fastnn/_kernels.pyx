# cython: language_level=3
"""The compiled twin of fastnn._fallback: the same functions, parameters and results.

One extension, written by family in fastnn/_compiled/ and included here in dependency order:

  codes.pxi        the contract's codes as C enums, checked against fastnn._contract at import
  cmath.pxi        libm in the data's precision, data pointers, small shared loops
  simd.pxi         the switch for the AVX2 + FMA micro-kernels and lanes (FASTNN_SIMD)
  activations.pxi  activate, activation_grad
  matmul.pxi       the three products of a dense layer and the one chooser of their path
  pool.pxi         fastnn's thread pool (pool.h)
  bf16.pxi         round_bfloat16, and the products with bfloat16 operands (bf16.h), shared by the pool
  dense.pxi        dense_forward, dense_backward
  losses.pxi       sigmoid_bce, softmax_cce, softmax_sparse_cce, mse, poisson_nll
  metrics.pxi      binary_correct, categorical_correct, sparse_correct, metric_sum, sparse_metric_sum
  optimizers.pxi   optimizer_step, scheduled_lr
  trainer.pxi      train_epochs, step_path: the training step, and its lanes (lanes.h) for tiny networks
  pooled.pxi       the training step of large networks shared by fastnn's thread pool (pool.h)
  shuffle.pxi      shuffle_orders: the epochs' row orders as scikit-learn's RandomState draws them

Textual inclusion, not separate extensions: the trainer's nogil loop calls the families' workers
as static C functions of one translation unit, as before the split (calls across extensions
would go through function pointers that the compiler cannot inline).

Conventions shared with the NumPy twin: row-major arrays, X (batch, n_in), W (n_in, n_out),
b (n_out,); outputs preallocated by the caller and written in place, nothing returned but
scalars; one dtype per call, float32 or float64 (the fused type `floating`), C-contiguous;
activations as integer codes, derivatives through A = f(Z); loss sums in a C double. Each `def`
checks the shapes it relies on while it holds the GIL and raises the contract's errors
(fastnn._contract); then its `noexcept nogil` workers run inside `with nogil:`, where nothing is
checked. The workers take data pointers and sizes (row i of a C-contiguous matrix starts at
i * n_columns), so the trainer runs whole epochs on views into one flat parameter buffer.
The compiler directives (bounds/wraparound/initialized checks off, cdivision on) come from setup.py.
"""
from cython cimport floating
from libc.math cimport exp, expf, fabs, fabsf, log, log1p, log1pf, logf, pow, sqrt, sqrtf, tanh, tanhf
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memmove, memset
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from scipy.linalg.cython_blas cimport dgemm, sgemm

import os
import threading

import numpy as np

from fastnn import _contract

include "_compiled/codes.pxi"
include "_compiled/cmath.pxi"
include "_compiled/simd.pxi"
include "_compiled/activations.pxi"
include "_compiled/matmul.pxi"
include "_compiled/pool.pxi"
include "_compiled/bf16.pxi"
include "_compiled/dense.pxi"
include "_compiled/losses.pxi"
include "_compiled/metrics.pxi"
include "_compiled/optimizers.pxi"
include "_compiled/trainer.pxi"
include "_compiled/pooled.pxi"
include "_compiled/shuffle.pxi"
