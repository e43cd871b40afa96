"""The kernel contract (fastnn._contract, fastnn/_fallback/), checked on both backends through the `backend` fixture.

Each kernel is compared with a plain float64 NumPy formula written here, on shapes that include
batch 1, width 1 and odd sizes; the gradients are also checked against finite differences.
"""
import contextlib
import dataclasses
import platform
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn._contract import (ADAM, COSINE, MEAN_ABSOLUTE_ERROR, MEAN_SQUARED_ERROR, MOMENTUM, NESTEROV, PIECEWISE,
                              SGD, SPARSE_CATEGORICAL_ACCURACY, TrainingRun, Update)
from fastnn.activations import EXP, LEAKY_RELU, LEAKY_SLOPE, LINEAR, NAMES, RELU, SIGMOID, SOFTMAX, TANH
from fastnn.losses import BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY, CODES as LOSS_CODES, MSE, POISSON
from fastnn.losses import SPARSE_CATEGORICAL_CROSSENTROPY

ACTIVATIONS = sorted(NAMES)
# (batch, n_in, n_out): batch 1, width 1, odd sizes, and one big enough for a BLAS path.
# the last: a tall product of a narrow layer, which BLAS computes by blocks of rows on AVX-512
# (_tall_block: blocks of 520 rows here, the last one partial)
SHAPES = [(1, 1, 1), (1, 6, 3), (7, 1, 4), (5, 3, 1), (13, 17, 9), (64, 33, 65), (700, 40, 48)]
activation_ids = NAMES.get


def rand(rng, dtype, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


# ----------------------------------------------------------------------------- float64 references

def ref_activate(Z, code):
    Z = np.asarray(Z, np.float64)
    if code == LINEAR:
        return Z.copy()
    if code == SIGMOID:
        return scipy.special.expit(Z)
    if code == RELU:
        return np.where(Z > 0, Z, 0.0)
    if code == TANH:
        return np.tanh(Z)
    if code == LEAKY_RELU:
        return np.where(Z > 0, Z, LEAKY_SLOPE * Z)
    if code == EXP:
        return np.exp(Z)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def ref_activation_grad(A, dA, code):
    """dA times the activation's derivative, written through A = f(Z); softmax by its full Jacobian."""
    A, dA = np.asarray(A, np.float64), np.asarray(dA, np.float64)
    if code == SOFTMAX:
        jacobians = np.einsum("bi,ij->bij", A, np.eye(A.shape[1])) - np.einsum("bi,bj->bij", A, A)
        return np.einsum("bi,bij->bj", dA, jacobians)
    derivative = {LINEAR: np.ones_like(A), SIGMOID: A * (1 - A), RELU: (A > 0) * 1.0, TANH: 1 - A * A,
                  LEAKY_RELU: np.where(A > 0, 1.0, LEAKY_SLOPE), EXP: A}[code]
    return dA * derivative


def grad_scale(A, dA):
    """Magnitude of the terms in dA * f'(A): 1 and A² (tanh, sigmoid), and softmax's row sum."""
    A, dA = np.abs(np.asarray(A, np.float64)), np.abs(np.asarray(dA, np.float64))
    return dA * (1 + A * A) + A * (dA * A).sum(axis=1, keepdims=True)


def ref_loss(loss, out, target, w=None):
    """(loss, d loss / d out) for a loss code; target is Y, or the labels for the sparse loss.
    Written as sums: the mean over rows weighted by w (all ones by default) of each row's loss, where
    a row's loss is the mean over its elements, but the sum over classes for the cross-entropies."""
    z = np.asarray(out, np.float64)
    w = np.ones(len(z)) if w is None else np.asarray(w, np.float64)
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        loss, target = CATEGORICAL_CROSSENTROPY, np.eye(z.shape[1])[target]
    y = np.asarray(target, np.float64)
    if loss == CATEGORICAL_CROSSENTROPY:
        p = ref_activate(z, SOFTMAX)
        per_element, d_element, per_row = -y * np.log(p), p * y.sum(axis=1, keepdims=True) - y, 1
    elif loss == BINARY_CROSSENTROPY:  # -y log p - (1-y) log(1-p) = log(1 + e^z) - z y
        per_element, d_element, per_row = np.logaddexp(0, z) - z * y, 1 / (1 + np.exp(-z)) - y, z.shape[1]
    elif loss == POISSON:  # e^z - y z + y log y - y, the half deviance of rate e^z
        per_element = np.exp(z) - y * z + scipy.special.xlogy(y, y) - y
        d_element, per_row = np.exp(z) - y, z.shape[1]
    else:
        per_element, d_element, per_row = (z - y) ** 2, 2 * (z - y), z.shape[1]
    denominator = w.sum() * per_row
    return (w[:, None] * per_element).sum() / denominator, w[:, None] * d_element / denominator


def f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


# ----------------------------------------------------------------------------- activations

@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
@pytest.mark.parametrize("shape", SHAPES)
def test_activate(backend, dtype, shape, activation, assert_close):
    rng = np.random.default_rng(1)
    Z = rand(rng, dtype, shape[0], shape[2], scale=3.0)
    out = np.full_like(Z, np.nan)
    assert backend.activate(Z, activation, out) is None
    assert_close(out, ref_activate(Z, activation), dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_grad(backend, dtype, shape, activation, assert_close):
    rng = np.random.default_rng(2)
    A = ref_activate(rand(rng, np.float64, shape[0], shape[2], scale=3.0), activation).astype(dtype)
    dA = rand(rng, dtype, *A.shape)
    out = np.full_like(A, np.nan)
    backend.activation_grad(A, dA, activation, out)
    assert_close(out, ref_activation_grad(A, dA, activation), dtype, scale=grad_scale(A, dA))


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
def test_activate_in_place(backend, dtype, activation, assert_close):
    Z = rand(np.random.default_rng(3), dtype, 6, 5, scale=3.0)
    expected = ref_activate(Z, activation)
    backend.activate(Z, activation, Z)  # out=Z is allowed
    assert_close(Z, expected, dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
def test_activation_grad_in_place(backend, dtype, activation, assert_close):
    rng = np.random.default_rng(4)
    A = ref_activate(rand(rng, np.float64, 6, 5), activation).astype(dtype)
    dA = rand(rng, dtype, 6, 5)
    expected, scale = ref_activation_grad(A, dA, activation), grad_scale(A, dA)
    backend.activation_grad(A, dA, activation, dA)  # out=dA is allowed
    assert_close(dA, expected, dtype, scale=scale)


def test_activations_of_huge_inputs(backend, dtype, assert_close):
    Z = np.array([[-1e4, -1e3, -100.0, -30.0, -1.0, 0.0],
                  [1e4, 1e3, 100.0, 30.0, 1.0, 1e4 - 1]], dtype=dtype)
    out = np.empty_like(Z)

    backend.activate(Z, SIGMOID, out)
    assert_close(out, scipy.special.expit(Z.astype(np.float64)), dtype)
    assert 0 <= out[0, 0] <= np.finfo(dtype).tiny and out[1, 0] == 1

    backend.activate(Z, TANH, out)
    assert out[0, 0] == -1 and out[1, 0] == 1
    assert_close(out, np.tanh(Z.astype(np.float64)), dtype)

    backend.activate(Z, SOFTMAX, out)
    assert np.isfinite(out).all()
    assert_close(out, scipy.special.softmax(Z.astype(np.float64), axis=1), dtype)


# ----------------------------------------------------------------------------- dense layer

def check_dense_forward(k, dtype, rng, batch, n_in, n_out, activation, assert_close):
    X, W, b = rand(rng, dtype, batch, n_in), rand(rng, dtype, n_in, n_out), rand(rng, dtype, n_out)
    out = np.full((batch, n_out), np.nan, dtype)
    k.dense_forward(X, W, b, activation, out)
    x, w, bias = f64(X, W, b)
    # Rounding errors in Z = XW + b are relative to |X||W| + |b|, and softmax mixes a whole row.
    scale = (np.abs(x) @ np.abs(w) + np.abs(bias)).max(axis=1, keepdims=True)
    assert_close(out, ref_activate(x @ w + bias, activation), dtype, scale=scale)


def check_dense_backward(k, dtype, rng, batch, n_in, n_out, activation, assert_close):
    X, W = rand(rng, dtype, batch, n_in), rand(rng, dtype, n_in, n_out)
    A = ref_activate(rand(rng, np.float64, batch, n_out, scale=2.0), activation).astype(dtype)
    dA = rand(rng, dtype, batch, n_out)
    dZ, dW, db, dX = (np.full(s, np.nan, dtype) for s in [(batch, n_out), (n_in, n_out), (n_out,), (batch, n_in)])
    k.dense_backward(X, W, A, dA, activation, dZ, dW, db, dX)
    x, w = f64(X, W)
    ref_dZ = ref_activation_grad(A, dA, activation)
    size_dZ = np.abs(ref_dZ) + grad_scale(A, dA)
    assert_close(dZ, ref_dZ, dtype, scale=grad_scale(A, dA))
    assert_close(db, ref_dZ.sum(axis=0), dtype, scale=size_dZ.sum(axis=0))
    assert_close(dW, x.T @ ref_dZ, dtype, scale=np.abs(x).T @ size_dZ)
    assert_close(dX, ref_dZ @ w.T, dtype, scale=size_dZ @ np.abs(w).T)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_forward(backend, dtype, shape, activation, assert_close):
    check_dense_forward(backend, dtype, np.random.default_rng(5), *shape, activation, assert_close)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_backward(backend, dtype, shape, activation, assert_close):
    check_dense_backward(backend, dtype, np.random.default_rng(6), *shape, activation, assert_close)


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 40), n_in=st.integers(1, 40), n_out=st.integers(1, 40),
       activation=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 2**32 - 1))
def test_dense_layer_on_any_shape(backend, dtype, assert_close, batch, n_in, n_out, activation, seed):
    rng = np.random.default_rng(seed)
    check_dense_forward(backend, dtype, rng, batch, n_in, n_out, activation, assert_close)
    check_dense_backward(backend, dtype, rng, batch, n_in, n_out, activation, assert_close)


# Shapes that take every path of the compiled backend's AVX2 micro-kernels (_microkernels.h):
# whole blocks of 4 rows by 2 vectors, one-vector and scalar column tails, leftover rows, an odd
# last row of W, a single input; float32 vectors hold 8, float64 4. Then layers narrower than a
# vector on wide inputs (through W transposed: 1, 2, 7, 10 and 15 outputs, leftover rows), and
# one whose transposed W would not fit the stack buffer.
MICRO_SHAPES = [(4, 8, 16), (5, 3, 17), (7, 9, 25), (32, 20, 32), (33, 31, 45), (1, 40, 24), (6, 1, 19),
                (9, 2, 8),
                (32, 32, 2), (7, 17, 1), (5, 40, 10), (33, 16, 15), (3, 9, 7), (2, 1024, 5)]


@pytest.mark.parametrize("activation", [LINEAR, RELU, SOFTMAX], ids=activation_ids)
@pytest.mark.parametrize("shape", MICRO_SHAPES)
def test_dense_layer_on_micro_kernel_shapes(backend, simd, dtype, shape, activation, assert_close):
    rng = np.random.default_rng(11)
    check_dense_forward(backend, dtype, rng, *shape, activation, assert_close)
    check_dense_backward(backend, dtype, rng, *shape, activation, assert_close)


def test_micro_kernels_are_built_where_the_cpu_has_avx2(compiled):
    """So that the tests above really run them on such a machine (CI's has AVX2)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    flags = set(cpuinfo.read_text().split())
    assert compiled._simd_available() == ({"avx2", "fma"} <= flags and platform.machine() == "x86_64")


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_ids)
def test_dense_backward_aliases(backend, dtype, activation, assert_close):
    """dZ may be the dA array itself, and dX may be None (or left out): the other results don't change."""
    rng = np.random.default_rng(7)
    X, W = rand(rng, dtype, 6, 4), rand(rng, dtype, 4, 5)
    A = ref_activate(rand(rng, np.float64, 6, 5), activation).astype(dtype)
    dA = rand(rng, dtype, 6, 5)
    dZ, dW, db, dX = np.empty_like(dA), np.empty_like(W), np.empty(5, dtype), np.empty_like(X)
    backend.dense_backward(X, W, A, dA, activation, dZ, dW, db, dX)

    dA2, dW2, db2, dX2 = dA.copy(), np.empty_like(W), np.empty(5, dtype), np.empty_like(X)
    backend.dense_backward(X, W, A, dA2, activation, dA2, dW2, db2, dX2)  # dZ is dA
    for got, expected in [(dA2, dZ), (dW2, dW), (db2, db), (dX2, dX)]:
        assert_close(got, expected, dtype, scale=np.abs(expected).max())

    dW3, db3 = np.empty_like(W), np.empty(5, dtype)
    backend.dense_backward(X, W, A, dA, activation, np.empty_like(dA), dW3, db3, None)
    dW4, db4 = np.empty_like(W), np.empty(5, dtype)
    backend.dense_backward(X, W, A, dA, activation, np.empty_like(dA), dW4, db4)  # dX defaults to None
    for got in (dW3, dW4):
        assert_close(got, dW, dtype, scale=np.abs(dW).max())
    for got in (db3, db4):
        assert_close(got, db, dtype, scale=np.abs(db).max())


# ----------------------------------------------------------------------------- losses

@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_bce(backend, dtype, shape, assert_close):
    rng = np.random.default_rng(8)
    Z = rand(rng, dtype, shape[0], shape[2], scale=3.0)
    Y = rng.uniform(size=Z.shape).astype(dtype)  # soft targets are allowed
    dZ = np.full_like(Z, np.nan)
    loss = backend.sigmoid_bce(Z, Y, dZ)
    expected_loss, expected_dZ = ref_loss(BINARY_CROSSENTROPY, Z, Y)
    z, y = f64(Z, Y)
    assert isinstance(loss, float)
    assert_close(loss, expected_loss, dtype, scale=np.mean(np.abs(z) * (1 + y) + 1))
    assert_close(dZ, expected_dZ, dtype, scale=(1 + y) / z.size)


@pytest.mark.parametrize("scale", [0.1, 30.0])
def test_sigmoid_bce_over_many_elements(backend, dtype, scale):
    """6,000 elements with the right labels, so the loss is the mean of log1p(exp(-|z|)). Near 0
    each term is about ln 2 (the compiled kernel sums them through a running product of 1 + e,
    which it must flush before it overflows); at |z| of 30-60 each term is below 1e-13 and the
    loss must keep its relative precision."""
    rng = np.random.default_rng(12)
    Z = (scale * (1 + rng.uniform(size=(3000, 2))) * rng.choice([-1.0, 1.0], size=(3000, 2))).astype(dtype)
    Y = (Z > 0).astype(dtype)
    loss = backend.sigmoid_bce(Z, Y, np.empty_like(Z))
    expected = np.mean(np.log1p(np.exp(-np.abs(Z.astype(np.float64)))))
    assert loss == pytest.approx(expected, rel=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_cce(backend, dtype, shape, assert_close):
    rng = np.random.default_rng(9)
    Z = rand(rng, dtype, shape[0], shape[2], scale=3.0)
    Y = rng.uniform(size=Z.shape).astype(dtype)  # rows of weights, not only one-hot
    dZ = np.full_like(Z, np.nan)
    loss = backend.softmax_cce(Z, Y, dZ)
    expected_loss, expected_dZ = ref_loss(CATEGORICAL_CROSSENTROPY, Z, Y)
    z, y = f64(Z, Y)
    assert isinstance(loss, float)
    assert_close(loss, expected_loss, dtype, scale=(y * (np.abs(z) + 10)).sum() / len(z))
    assert_close(dZ, expected_dZ, dtype, scale=2 * y.sum(axis=1, keepdims=True) / len(z))


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_sparse_cce(backend, dtype, shape, assert_close):
    rng = np.random.default_rng(10)
    Z = rand(rng, dtype, shape[0], shape[2], scale=3.0)
    labels = rng.integers(0, shape[2], size=shape[0])
    dZ = np.full_like(Z, np.nan)
    loss = backend.softmax_sparse_cce(Z, labels, dZ)
    expected_loss, expected_dZ = ref_loss(SPARSE_CATEGORICAL_CROSSENTROPY, Z, labels)
    assert isinstance(loss, float)
    assert_close(loss, expected_loss, dtype, scale=np.abs(Z).max() + 10)
    assert_close(dZ, expected_dZ, dtype, scale=2 / len(Z))


@pytest.mark.parametrize("shape", SHAPES)
def test_mse(backend, dtype, shape, assert_close):
    rng = np.random.default_rng(11)
    A, Y = rand(rng, dtype, shape[0], shape[2]), rand(rng, dtype, shape[0], shape[2])
    dA = np.full_like(A, np.nan)
    loss = backend.mse(A, Y, dA)
    expected_loss, expected_dA = ref_loss(MSE, A, Y)
    a, y = f64(A, Y)
    size = np.abs(a) + np.abs(y)
    assert isinstance(loss, float)
    assert_close(loss, expected_loss, dtype, scale=np.mean(2 * size * np.abs(a - y)))
    assert_close(dA, expected_dA, dtype, scale=2 * size / a.size)


@pytest.mark.parametrize("shape", SHAPES)
def test_poisson_nll(backend, dtype, shape, assert_close):
    rng = np.random.default_rng(21)
    Z = rand(rng, dtype, shape[0], shape[2])
    Y = rng.poisson(2.0, size=Z.shape).astype(dtype)  # counts, zeros included
    dZ = np.full_like(Z, np.nan)
    loss = backend.poisson_nll(Z, Y, dZ)
    expected_loss, expected_dZ = ref_loss(POISSON, Z, Y)
    z, y = f64(Z, Y)
    assert isinstance(loss, float)
    assert_close(loss, expected_loss, dtype, scale=np.mean(np.exp(z) + y * (np.abs(z) + np.log1p(y) + 1)))
    assert_close(dZ, expected_dZ, dtype, scale=(np.exp(z) + y) / z.size)


# name: (loss code, targets for a (batch, n) Z)
WEIGHTED = {"sigmoid_bce": (BINARY_CROSSENTROPY, lambda rng, shape: rng.uniform(size=shape)),
            "softmax_cce": (CATEGORICAL_CROSSENTROPY, lambda rng, shape: rng.uniform(size=shape)),
            "softmax_sparse_cce": (SPARSE_CATEGORICAL_CROSSENTROPY,
                                   lambda rng, shape: rng.integers(0, shape[1], size=shape[0])),
            "mse": (MSE, lambda rng, shape: rng.standard_normal(shape)),
            "poisson_nll": (POISSON, lambda rng, shape: rng.poisson(2.0, size=shape))}


def weighted_targets(name, rng, shape, dtype):
    target = WEIGHTED[name][1](rng, shape)
    return target if name == "softmax_sparse_cce" else target.astype(dtype)


@pytest.mark.parametrize("name", WEIGHTED)
@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_losses(backend, dtype, name, shape, assert_close):
    """sum_i w_i loss_i / sum_i w_i, a zero weight included; the gradient is that of this mean."""
    rng = np.random.default_rng(22)
    Z = rand(rng, dtype, shape[0], shape[2])
    target = weighted_targets(name, rng, Z.shape, dtype)
    w = rng.uniform(0.0, 3.0, size=shape[0]).astype(dtype)
    w[0] = 0.0 if shape[0] > 1 else w[0]
    dZ = np.full_like(Z, np.nan)
    loss = getattr(backend, name)(Z, target, dZ, w)
    expected_loss, expected_dZ = ref_loss(WEIGHTED[name][0], Z, target, w)
    magnitude = np.abs(np.asarray(Z, np.float64)).max() + 10
    assert_close(loss, expected_loss, dtype, scale=magnitude * np.exp(magnitude if name == "poisson_nll" else 0))
    assert_close(dZ, expected_dZ, dtype, scale=np.abs(expected_dZ).max() + 1e-3 / w.sum())


@pytest.mark.parametrize("name", WEIGHTED)
def test_integer_weights_equal_repeated_rows(backend, dtype, name, assert_close):
    """A weight of k counts a row k times: the loss equals that of the batch with rows repeated."""
    rng = np.random.default_rng(23)
    Z = rand(rng, dtype, 6, 3)
    target = weighted_targets(name, rng, Z.shape, dtype)
    w = np.array([1, 2, 0, 3, 1, 1], dtype)
    kernel = getattr(backend, name)
    weighted = kernel(Z, target, np.empty_like(Z), w)
    repeat = np.repeat(np.arange(6), w.astype(int))
    repeated = kernel(Z[repeat], target[repeat], np.empty_like(Z[repeat]))
    assert_close(weighted, repeated, dtype, scale=abs(repeated) + 1)


def test_losses_of_huge_logits(backend, dtype, assert_close):
    """Logits of ±1e4: finite losses and gradients; a confidently wrong logit z costs about |z|."""
    Z = np.array([[1e4], [-1e4], [1e4], [-1e4]], dtype)
    Y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype)  # two wrong, two right
    dZ = np.empty_like(Z)
    assert_close(backend.sigmoid_bce(Z[:1], Y[:1], dZ[:1]), 1e4, dtype)  # alone: loss == |z|
    loss = backend.sigmoid_bce(Z, Y, dZ)
    assert_close(loss, 2e4 / 4, dtype)
    assert_close(dZ, (scipy.special.expit(Z.astype(np.float64)) - Y) / 4, dtype)

    Z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4 - 1]], dtype)
    labels = np.array([1, 2])
    Y = np.eye(3, dtype=dtype)[labels]
    log_p = scipy.special.log_softmax(Z.astype(np.float64), axis=1)
    expected_loss = -log_p[[0, 1], labels].mean()  # (2e4 + log(1 + e)) / 2
    expected_dZ = (np.exp(log_p) - Y) / 2
    dZ, dZ_sparse = np.empty_like(Z), np.empty_like(Z)
    assert_close(backend.softmax_cce(Z, Y, dZ), expected_loss, dtype)
    assert_close(backend.softmax_sparse_cce(Z, labels, dZ_sparse), expected_loss, dtype)
    assert_close(dZ, expected_dZ, dtype, scale=1.0)
    assert_close(dZ_sparse, expected_dZ, dtype, scale=1.0)

    A, Y = np.array([[1e4, -1e4]], dtype), np.array([[-1e4, 1e4]], dtype)
    dA = np.empty_like(A)
    assert_close(backend.mse(A, Y, dA), 4e8, dtype)
    assert_close(dA, [[2e4, -2e4]], dtype)


# ----------------------------------------------------------------------------- gradients vs finite differences

# Output layer and loss. The cross-entropies take the logits, so their layer is LINEAR in
# dense_backward; MSE takes the output of any activation.
OUTPUTS = ([("sigmoid_bce", LINEAR), ("softmax_cce", LINEAR), ("softmax_sparse_cce", LINEAR),
            ("poisson_nll", LINEAR)] + [("mse", code) for code in ACTIVATIONS])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("hidden", ACTIVATIONS, ids=lambda code: f"hidden={NAMES[code]}")
@pytest.mark.parametrize("loss_name, output", OUTPUTS, ids=[f"{loss}-{NAMES[code]}" for loss, code in OUTPUTS])
def test_two_layer_gradients_match_finite_differences(backend, loss_name, output, hidden, weighted):
    rng = np.random.default_rng(12)
    batch, n_in, n_hidden, n_out = 4, 3, 5, 3
    X = rng.standard_normal((batch, n_in))
    W1, b1 = rng.standard_normal((n_in, n_hidden)), rng.standard_normal(n_hidden)
    W2, b2 = rng.standard_normal((n_hidden, n_out)), rng.standard_normal(n_out)
    if EXP in (hidden, output) or loss_name == "poisson_nll":  # keep exp(exp(...)) in a sane range
        for param in (W1, b1, W2, b2):
            param *= 0.3
    Y = {"sigmoid_bce": rng.uniform(size=(batch, n_out)),
         "softmax_cce": rng.uniform(size=(batch, n_out)),
         "softmax_sparse_cce": rng.integers(0, n_out, size=batch),
         "mse": rng.standard_normal((batch, n_out)),
         "poisson_nll": rng.poisson(1.5, size=(batch, n_out)).astype(np.float64)}[loss_name]
    w = rng.uniform(0.2, 2.0, size=batch) if weighted else None
    kernel = getattr(backend, loss_name)

    def loss_kernel(out, Y, d_out):
        return kernel(out, Y, d_out, w)

    H, out = np.empty((batch, n_hidden)), np.empty((batch, n_out))

    def loss():
        backend.dense_forward(X, W1, b1, hidden, H)
        backend.dense_forward(H, W2, b2, output, out)
        return loss_kernel(out, Y, np.empty_like(out))

    d_out = np.empty_like(out)
    loss()
    loss_kernel(out, Y, d_out)
    dZ2, dW2, db2, dH = np.empty_like(out), np.empty_like(W2), np.empty_like(b2), np.empty_like(H)
    backend.dense_backward(H, W2, out, d_out, output, dZ2, dW2, db2, dH)
    dZ1, dW1, db1, dX = np.empty_like(H), np.empty_like(W1), np.empty_like(b1), np.empty_like(X)
    backend.dense_backward(X, W1, H, dH, hidden, dZ1, dW1, db1, dX)

    h = 1e-6
    for name, param, grad in [("W1", W1, dW1), ("b1", b1, db1), ("W2", W2, dW2), ("b2", b2, db2), ("X", X, dX)]:
        numeric = np.empty_like(param)
        for i in np.ndindex(param.shape):
            original = param[i]
            param[i] = original + h
            up = loss()
            param[i] = original - h
            down = loss()
            param[i] = original
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8, err_msg=f"d loss / d {name}")


# ----------------------------------------------------------------------------- accuracy counts

@pytest.mark.parametrize("shape", SHAPES)
def test_counts(backend, dtype, shape):
    rng = np.random.default_rng(16)
    batch, n = shape[0], shape[2]
    Z = rand(rng, dtype, batch, n)
    Z[0, 0] = 0.0  # a logit of exactly 0 predicts the negative class
    Y = rng.integers(0, 2, size=(batch, n)).astype(dtype)
    Y[-1, -1] = 0.5  # a target of exactly 0.5 counts as negative
    assert backend.binary_correct(Z, Y) == np.count_nonzero((Z > 0) == (Y > 0.5))

    Z[0] = 1.0  # a tied row: the first maximum wins
    P = rng.uniform(size=(batch, n)).astype(dtype)
    assert backend.categorical_correct(Z, P) == np.count_nonzero(Z.argmax(axis=1) == P.argmax(axis=1))
    assert backend.categorical_correct(Z, Z) == batch

    labels = rng.integers(0, n, size=batch)
    assert backend.sparse_correct(Z, labels) == np.count_nonzero(Z.argmax(axis=1) == labels)
    assert backend.sparse_correct(Z, Z.argmax(axis=1)) == batch


# ----------------------------------------------------------------------------- whole training runs

def ref_correct(loss, out, target):
    if loss == BINARY_CROSSENTROPY:
        return np.count_nonzero((out > 0) == (target > 0.5))
    if loss == CATEGORICAL_CROSSENTROPY:
        return np.count_nonzero(out.argmax(axis=1) == target.argmax(axis=1))
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        return np.count_nonzero(out.argmax(axis=1) == target)
    return 0


def ref_train(X, target, sample_weight, order, sizes, codes, loss, batch, params, optimizer, hyper, step, epochs):
    """Mini-batch training in float64, as train_epochs documents it: for each epoch and each batch
    of `batch` rows (in `order`, or in order), forward, (weighted) loss times loss_scale plus the L2
    penalty, backward, one optimizer step."""
    params, X = np.array(params, np.float64), np.asarray(X, np.float64)
    state1, state2 = np.zeros_like(params), np.zeros_like(params)
    layers, at = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers.append((params[at:at + n_in * n_out].reshape(n_in, n_out),
                       params[at + n_in * n_out:at + n_in * n_out + n_out]))
        at += n_in * n_out + n_out
    lr, h1, beta2, eps, l2, loss_scale = hyper
    weights = np.asarray(sample_weight, np.float64) if len(sample_weight) else np.ones(len(X))
    losses, counts = [], []
    for epoch in range(epochs):
        rows = order[epoch] if len(order) else np.arange(len(X))
        total, correct = 0.0, 0
        for start in range(0, len(X), batch):
            idx = rows[start:start + batch]
            acts = [X[idx]]
            for (W, b), code in zip(layers, codes):
                acts.append(ref_activate(acts[-1] @ W + b, code))
            value, d_out = ref_loss(loss, acts[-1], target[idx], weights[idx])
            value, d_out = value * loss_scale, d_out * loss_scale
            correct += ref_correct(loss, acts[-1], target[idx])
            grads = []
            for (W, b), code, A_in, A_out in reversed(list(zip(layers, codes, acts[:-1], acts[1:]))):
                dZ = ref_activation_grad(A_out, d_out, code)
                grads = [(A_in.T @ dZ).ravel(), dZ.sum(axis=0)] + grads
                d_out = dZ @ W.T
            for i, (W, _) in enumerate(layers):  # the L2 penalty on the weights, over the batch's weight
                grads[2 * i] = grads[2 * i] + l2 / weights[idx].sum() * W.ravel()
                value += 0.5 * l2 * (W ** 2).sum() / weights[idx].sum()
            total += value * len(idx)
            g = np.concatenate(grads)
            if optimizer == GRADIENT_ONLY:
                continue
            step += 1
            if optimizer == SGD:
                params -= lr * g
            elif optimizer in (MOMENTUM, NESTEROV):
                state1[:] = h1 * state1 - lr * g
                params += h1 * state1 - lr * g if optimizer == NESTEROV else state1
            else:
                state1[:] = h1 * state1 + (1 - h1) * g
                state2[:] = beta2 * state2 + (1 - beta2) * g * g
                params -= lr * np.sqrt(1 - beta2 ** step) / (1 - h1 ** step) * state1 / (np.sqrt(state2) + eps)
        losses.append(total / len(X))
        counts.append(correct)
    return params, state1, state2, g, losses, counts, step


GRADIENT_ONLY = "gradient-only"  # a run with update=None: the loss and gradient, no step


def train_call(args):
    """The train_epochs call (run, order, step, epoch_loss, epoch_correct, epoch_metrics) that train_setup's
    description `args` stands for; the run holds args' arrays, so the call updates them."""
    optimizer = args["optimizer"]
    if optimizer == GRADIENT_ONLY:
        update = None
    else:
        lr, h1, beta2, eps = args["hyper"][:4]
        state = {MOMENTUM: dict(velocity=args["state1"]), NESTEROV: dict(velocity=args["state1"]),
                 ADAM: dict(m=args["state1"], v=args["state2"])}.get(optimizer, {})
        update = Update(optimizer=optimizer, lr=lr, momentum=h1 if optimizer != ADAM else 0.0,
                        beta1=h1 if optimizer == ADAM else 0.9, beta2=beta2, eps=eps, **state)
    sparse = args["loss"] == SPARSE_CATEGORICAL_CROSSENTROPY
    run = TrainingRun(sizes=args["sizes"], codes=args["codes"], params=args["params"], grads=args["grads"],
                      loss=args["loss"], X=args["X"], Y=None if sparse else args["Y"],
                      labels=args["labels"] if sparse else None,
                      sample_weight=args["sample_weight"] if len(args["sample_weight"]) else None,
                      batch=args["batch"], update=update, l2=args["hyper"][4], loss_scale=args["hyper"][5])
    return (run, (args["order"] if len(args["order"]) else None), args["step"], args["epoch_loss"], args["epoch_correct"],
            args["epoch_metrics"])


def train_setup(rng, dtype, loss, optimizer, shuffle, n=7, epochs=3, lr=0.05, weighted=False, l2=0.0,
                loss_scale=1.0, sizes=(3, 4, 2), hidden=TANH, batch=3):
    """A description of a train_epochs call (train_call makes it) for a network of `sizes` (by
    default 3 -> 4 (tanh) -> 2) with `hidden` activations, and n rows."""
    n_out = sizes[-1]
    codes = np.array([hidden] * (len(sizes) - 2) + [SIGMOID if loss == MSE else LINEAR])  # the others take logits
    sizes = np.array(sizes)
    n_params = int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        Y, labels = np.zeros((0, n_out), dtype), rng.integers(0, n_out, size=n)
    elif loss == POISSON:
        Y, labels = rng.poisson(1.0, size=(n, n_out)).astype(dtype), np.zeros(0, np.int64)
    else:
        Y, labels = rng.uniform(size=(n, n_out)).astype(dtype), np.zeros(0, np.int64)
    sample_weight = rng.uniform(0.2, 3.0, size=n if weighted else 0).astype(dtype)
    order = np.stack([rng.permutation(n) for _ in range(epochs)]) if shuffle else np.zeros((0, n), np.int64)
    state_sizes = {SGD: (0, 0), MOMENTUM: (n_params, 0), ADAM: (n_params, n_params), NESTEROV: (n_params, 0),
                   GRADIENT_ONLY: (0, 0)}[optimizer]
    return dict(X=rand(rng, dtype, n, sizes[0]), Y=Y, labels=labels, sample_weight=sample_weight, order=order,
                sizes=sizes, codes=codes, loss=loss, batch=batch, params=rand(rng, dtype, n_params),
                grads=np.zeros(n_params, dtype),
                optimizer=optimizer, state1=np.zeros(state_sizes[0], dtype),
                state2=np.zeros(state_sizes[1], dtype), hyper=np.array([lr, 0.9, 0.999, 1e-8, l2, loss_scale]),
                step=4,
                epoch_loss=np.zeros(epochs), epoch_correct=np.zeros(epochs, np.int64),
                epoch_metrics=np.zeros((epochs, 0)))


# (weighted, l2, loss_scale): plain Keras-style training, and scikit-learn's weighted, penalised, scaled losses
VARIANTS = {"plain": (False, 0.0, 1.0), "weighted-l2-scaled": (True, 0.3, 2.0)}
OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "adam": ADAM, "nesterov": NESTEROV, "gradient-only": GRADIENT_ONLY}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize("loss", sorted(LOSS_CODES.values()), ids=sorted(LOSS_CODES, key=LOSS_CODES.get))
def test_train_epochs(backend, dtype, loss, optimizer, shuffle, variant, assert_close):
    weighted, l2, loss_scale = variant
    args = train_setup(np.random.default_rng(18), dtype, loss, optimizer, shuffle, weighted=weighted, l2=l2,
                       loss_scale=loss_scale)
    check_train_epochs(backend, args, dtype, assert_close)


def check_train_epochs(backend, args, dtype, assert_close):
    """train_epochs(**args) against ref_train: all epochs finish, with the reference's results."""
    loss, optimizer, epochs = args["loss"], args["optimizer"], len(args["epoch_loss"])
    sparse = loss == SPARSE_CATEGORICAL_CROSSENTROPY
    params, state1, state2, last_grad, losses, counts, step = ref_train(
        args["X"], args["labels"] if sparse else args["Y"], args["sample_weight"], args["order"], args["sizes"],
        args["codes"], loss, args["batch"], args["params"], optimizer, args["hyper"], args["step"], epochs)

    # GRADIENT_ONLY counts no steps and leaves the parameters alone
    assert backend.train_epochs(*train_call(args)) == (epochs, step, False)
    assert_close(args["params"], params, dtype, scale=np.abs(params).max())
    # The last gradient comes from parameters that carry 8 updates' rounding: held to 10x its size.
    assert_close(args["grads"], last_grad, dtype, scale=10 * np.abs(last_grad).max())
    for got, expected in [(args["state1"], state1), (args["state2"], state2)]:
        if got.size:
            assert_close(got, expected, dtype, scale=np.abs(expected).max())
    assert_close(args["epoch_loss"], losses, dtype, scale=max(losses))
    assert args["epoch_correct"].tolist() == counts


# Networks that the compiled backend trains a batch at a time across vector lanes (_lanes.h, on
# CPUs with AVX2, with the micro-kernels on): each activation the lanes take, widths 1 to 8, and
# 16 (the widest they take in float32; in float64 the layer-by-layer path), depths 1 to 3; the
# 2-H-1 ones (xor, 2-5-1, 2-8-1) take the lanes compiled for their sizes. 13 rows
# in batches of 5 or 13 leave some lanes of the last group empty (float64 vectors hold 4 rows,
# float32 8).
LANE_NETS = {"xor": ((2, 2, 1), SIGMOID), "relu-8": ((5, 8, 8, 3), RELU), "relu-16": ((3, 16, 16, 2), RELU),
             "tanh": ((3, 6, 4, 2), TANH), "2-5-1": ((2, 5, 1), LEAKY_RELU), "2-8-1": ((2, 8, 1), TANH),
             "leaky": ((1, 7, 1), LEAKY_RELU), "linear": ((4, 3, 2), LINEAR), "one-layer": ((16, 1), LINEAR)}
LANE_VARIANTS = {"plain": (0.0, 1.0), "l2-scaled": (0.3, 2.0)}  # (l2, loss_scale)


@pytest.mark.parametrize("variant", LANE_VARIANTS.values(), ids=LANE_VARIANTS.keys())
@pytest.mark.parametrize("batch", [5, 13])
@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("loss", [BINARY_CROSSENTROPY, MSE], ids=["bce", "mse"])
@pytest.mark.parametrize("net", LANE_NETS.values(), ids=LANE_NETS.keys())
def test_train_epochs_of_tiny_networks(backend, simd, dtype, net, loss, shuffle, batch, variant, assert_close):
    sizes, hidden = net
    l2, loss_scale = variant
    args = train_setup(np.random.default_rng(21), dtype, loss, SGD, shuffle, n=13, l2=l2,
                       loss_scale=loss_scale, sizes=sizes, hidden=hidden, batch=batch)
    if hasattr(backend, "_simd_available"):  # the compiled backend takes the lanes whenever the micro-kernels run
        fits = max(sizes) * dtype.itemsize <= 64
        expected = "lanes" if simd and backend._simd_available() and fits else "layers"
        assert backend.step_path(train_call(args)[0]) == expected
    check_train_epochs(backend, args, dtype, assert_close)


@contextlib.contextmanager
def lanes_on(compiled):
    """The compiled backend with its micro-kernels and lanes on (the CPU has them)."""
    previous = compiled._set_simd(True)
    try:
        yield
    finally:
        compiled._set_simd(previous)


def lane_runs(compiled, args, runs):
    """Each of `runs` (name: (fixed lanes on?, update changes)) from a copy of args' start: its
    (params, grads, epoch_loss, epoch_correct, train_epochs' result)."""
    results = {}
    for name, (fixed, changes) in runs.items():
        copy = {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in args.items()}
        call = train_call(copy)
        if changes:
            call[0].update = dataclasses.replace(call[0].update, **changes)
        assert compiled.step_path(call[0]) == "lanes"
        previous = compiled._set_fixed_lanes(fixed)
        try:
            outcome = compiled.train_epochs(*call)
        finally:
            compiled._set_fixed_lanes(previous)
        results[name] = (copy["params"], copy["grads"], copy["epoch_loss"], copy["epoch_correct"], outcome)
    return results


def assert_same_bits(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# The 2-H-1 networks have lanes compiled for their sizes (lanes_body.h's FNN_FIXED): the same
# operations in the same order as the lanes of any sizes, so the same bits, for every hidden width
# they cover, the activations, both losses, batches that leave lanes empty, rows in order or
# shuffled, SGD (whose step the lanes make) and momentum (the optimizer step's).
@pytest.mark.parametrize("optimizer", [SGD, MOMENTUM], ids=["sgd", "momentum"])
@pytest.mark.parametrize("batch", [3, 4, 13])
@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("loss", [BINARY_CROSSENTROPY, MSE], ids=["bce", "mse"])
@pytest.mark.parametrize("hidden", [SIGMOID, TANH, RELU, LEAKY_RELU, LINEAR], ids=activation_ids)
@pytest.mark.parametrize("width", range(1, 9))
def test_fixed_lanes_give_the_bits_of_the_lanes_of_any_sizes(compiled, dtype, width, hidden, loss, shuffle, batch,
                                                             optimizer):
    if not compiled._simd_available():
        pytest.skip("no AVX2 + FMA: no lanes")
    args = train_setup(np.random.default_rng(24 + width), dtype, loss, optimizer, shuffle, n=13, epochs=4, lr=0.3,
                       sizes=(2, width, 1), hidden=hidden, batch=batch)
    with lanes_on(compiled):
        results = lane_runs(compiled, args, {"fixed": (True, {}), "again": (True, {}), "any": (False, {})})
    assert_same_bits(results["fixed"], results["again"])  # reruns: the same bits
    assert_same_bits(results["fixed"], results["any"])
    assert results["fixed"][4] == (4, 4 + 4 * -(-13 // batch), False)


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed", "any"])
def test_lanes_sgd_step_gives_the_bits_of_the_optimizer_step(compiled, dtype, fixed):
    """Plain SGD on the lanes is stepped by the lanes; with a clipvalue too large to clip, the
    optimizer step after them makes it: the same bits, in the lanes of both kinds."""
    if not compiled._simd_available():
        pytest.skip("no AVX2 + FMA: no lanes")
    args = train_setup(np.random.default_rng(25), dtype, BINARY_CROSSENTROPY, SGD, True, n=13, epochs=5, lr=0.5,
                       sizes=(2, 3, 1) if fixed else (3, 4, 2), hidden=SIGMOID, batch=5)
    with lanes_on(compiled):
        results = lane_runs(compiled, args, {"lanes": (fixed, {}), "optimizer": (fixed, {"clipvalue": 1e30})})
    assert_same_bits(results["lanes"], results["optimizer"])


@pytest.mark.parametrize("hidden", [SIGMOID, TANH], ids=activation_ids)
def test_fixed_lanes_on_extreme_values(compiled, dtype, hidden):
    """Inputs of -750 to 750 and logits of +-900 through the lanes of 2-3-1 (exp underflows, the
    loss's terms overflow float32's exp): the same bits as the lanes of any sizes, finite."""
    if not compiled._simd_available():
        pytest.skip("no AVX2 + FMA: no lanes")
    args = train_setup(np.random.default_rng(26), dtype, BINARY_CROSSENTROPY, GRADIENT_ONLY, False, n=16,
                       epochs=1, sizes=(2, 3, 1), hidden=hidden, batch=16)
    args["X"][:, 0] = np.linspace(-750, 750, 16)
    args["X"][:, 1] = np.linspace(3, -3, 16)
    args["params"][:] = [1.0, 0.1, -0.02, 0.5, 0.0, 1.0, 0.0, 0.5, -3.0, 900.0, -900.0, 450.0, 0.0]
    call = train_call(args)
    with lanes_on(compiled):
        previous = compiled._set_fixed_lanes(False)
        try:
            expected = compiled.train_epochs(*call), args["grads"].copy(), args["epoch_loss"].copy()
        finally:
            compiled._set_fixed_lanes(previous)
        got = compiled.train_epochs(*call), args["grads"], args["epoch_loss"]
    assert_same_bits(got[1:], expected[1:])
    assert np.isfinite(args["epoch_loss"]).all() and np.isfinite(args["grads"]).all()


@pytest.mark.parametrize("hidden", [SIGMOID, TANH], ids=activation_ids)
def test_train_epochs_of_a_tiny_network_on_extreme_values(backend, simd, dtype, hidden, assert_close):
    """Activations of -750 to 750 (exp underflows below about -708, or -87 in float32) and logits of
    +-900: the loss and the gradient stay finite and right."""
    args = train_setup(np.random.default_rng(22), dtype, BINARY_CROSSENTROPY, GRADIENT_ONLY, False, n=16,
                       epochs=1, sizes=(1, 3, 1), hidden=hidden, batch=16)
    args["X"][:, 0] = np.linspace(-750, 750, 16)
    args["params"][:] = [1.0, 0.1, -0.02, 0.0, 0.5, -3.0, 900.0, -900.0, 450.0, 0.0]  # W1, b1, W2, b2
    check_train_epochs(backend, args, dtype, assert_close)
    assert np.isfinite(args["epoch_loss"]).all() and np.isfinite(args["grads"]).all()


def test_train_epochs_of_a_tiny_tanh_network_near_zero(backend, simd, dtype, assert_close):
    """tanh(z) for z of 1e-8: its relative error (and so the loss's, tanh(z)² here) stays at a few
    ulp; a tanh written as (1 - e)/(1 + e), e = exp(-2z), would lose half the digits."""
    args = train_setup(np.random.default_rng(23), dtype, MSE, GRADIENT_ONLY, False, n=16, epochs=1,
                       sizes=(1, 1, 1), hidden=TANH, batch=16)
    args["codes"][-1] = LINEAR
    args["X"][:, 0] = 1e-8 * np.linspace(1, 2, 16)
    args["Y"][:] = 0
    args["params"][:] = [1.0, 0.0, 1.0, 0.0]  # W1, b1, W2, b2: the output is tanh(x)
    check_train_epochs(backend, args, dtype, assert_close)


@pytest.mark.parametrize("hidden", [TANH, SIGMOID], ids=activation_ids)  # both in the lanes
def test_train_epochs_restores_the_parameters_of_a_diverging_epoch(backend, dtype, hidden):
    args = train_setup(np.random.default_rng(19), dtype, MSE, SGD, shuffle=False, lr=1e200, hidden=hidden)
    args["codes"][-1] = LINEAR
    before = args["params"].copy()
    with np.errstate(all="ignore"):  # the fallback's NumPy warns about the overflow
        finished, _, _ = backend.train_epochs(*train_call(args))
    assert finished == 0
    assert not np.isfinite(args["epoch_loss"][0])
    np.testing.assert_array_equal(args["params"], before)


# ----------------------------------------------------------------------------- errors

def labels(*values):
    return np.array(values, np.int64)


# Each call has one array of the wrong shape (or a bad code/label); `a` makes zeros of the test's dtype.
BAD_CALLS = {
    "activate-out": lambda k, a: k.activate(a(2, 3), SIGMOID, a(3, 2)),
    "activate-code": lambda k, a: k.activate(a(2, 3), 99, a(2, 3)),
    "activation_grad-dA": lambda k, a: k.activation_grad(a(2, 3), a(2, 4), TANH, a(2, 3)),
    "activation_grad-out": lambda k, a: k.activation_grad(a(2, 3), a(2, 3), TANH, a(1, 3)),
    "dense_forward-W": lambda k, a: k.dense_forward(a(2, 3), a(4, 5), a(5), RELU, a(2, 5)),
    "dense_forward-b": lambda k, a: k.dense_forward(a(2, 3), a(3, 5), a(4), RELU, a(2, 5)),
    "dense_forward-out": lambda k, a: k.dense_forward(a(2, 3), a(3, 5), a(5), RELU, a(3, 5)),
    "dense_backward-W": lambda k, a: k.dense_backward(a(2, 3), a(4, 5), a(2, 5), a(2, 5), RELU,
                                                      a(2, 5), a(4, 5), a(5), a(2, 3)),
    "dense_backward-A": lambda k, a: k.dense_backward(a(2, 3), a(3, 5), a(2, 4), a(2, 5), RELU,
                                                      a(2, 5), a(3, 5), a(5), a(2, 3)),
    "dense_backward-dA": lambda k, a: k.dense_backward(a(2, 3), a(3, 5), a(2, 5), a(3, 5), RELU,
                                                       a(2, 5), a(3, 5), a(5), a(2, 3)),
    "dense_backward-dZ": lambda k, a: k.dense_backward(a(2, 3), a(3, 5), a(2, 5), a(2, 5), RELU,
                                                       a(2, 4), a(3, 5), a(5), a(2, 3)),
    "dense_backward-dW": lambda k, a: k.dense_backward(a(2, 3), a(3, 5), a(2, 5), a(2, 5), RELU,
                                                       a(2, 5), a(5, 3), a(5), a(2, 3)),
    "dense_backward-db": lambda k, a: k.dense_backward(a(2, 3), a(3, 5), a(2, 5), a(2, 5), RELU,
                                                       a(2, 5), a(3, 5), a(3), a(2, 3)),
    "dense_backward-dX": lambda k, a: k.dense_backward(a(2, 3), a(3, 5), a(2, 5), a(2, 5), RELU,
                                                       a(2, 5), a(3, 5), a(5), a(2, 5)),
    "sigmoid_bce-Y": lambda k, a: k.sigmoid_bce(a(2, 3), a(2, 2), a(2, 3)),
    "sigmoid_bce-dZ": lambda k, a: k.sigmoid_bce(a(2, 3), a(2, 3), a(3, 3)),
    "softmax_cce-Y": lambda k, a: k.softmax_cce(a(2, 3), a(3, 3), a(2, 3)),
    "softmax_cce-dZ": lambda k, a: k.softmax_cce(a(2, 3), a(2, 3), a(2, 2)),
    "softmax_sparse_cce-labels": lambda k, a: k.softmax_sparse_cce(a(2, 3), labels(0, 1, 2), a(2, 3)),
    "softmax_sparse_cce-dZ": lambda k, a: k.softmax_sparse_cce(a(2, 3), labels(0, 1), a(2, 4)),
    "softmax_sparse_cce-label-too-big": lambda k, a: k.softmax_sparse_cce(a(2, 3), labels(0, 3), a(2, 3)),
    "softmax_sparse_cce-label-negative": lambda k, a: k.softmax_sparse_cce(a(2, 3), labels(-1, 0), a(2, 3)),
    "mse-Y": lambda k, a: k.mse(a(2, 3), a(2, 1), a(2, 3)),
    "mse-dA": lambda k, a: k.mse(a(2, 3), a(2, 3), a(1, 3)),
    "mse-sample_weight": lambda k, a: k.mse(a(2, 3), a(2, 3), a(2, 3), a(3)),
    "sigmoid_bce-sample_weight": lambda k, a: k.sigmoid_bce(a(2, 3), a(2, 3), a(2, 3), a(1)),
    "softmax_cce-sample_weight": lambda k, a: k.softmax_cce(a(2, 3), a(2, 3), a(2, 3), a(3)),
    "softmax_sparse_cce-sample_weight": lambda k, a: k.softmax_sparse_cce(a(2, 3), labels(0, 1), a(2, 3), a(3)),
    "poisson_nll-Y": lambda k, a: k.poisson_nll(a(2, 3), a(2, 2), a(2, 3)),
    "poisson_nll-dZ": lambda k, a: k.poisson_nll(a(2, 3), a(2, 3), a(3, 3)),
    "poisson_nll-sample_weight": lambda k, a: k.poisson_nll(a(2, 3), a(2, 3), a(2, 3), a(3)),
    "binary_correct-Y": lambda k, a: k.binary_correct(a(2, 3), a(3, 2)),
    "categorical_correct-Y": lambda k, a: k.categorical_correct(a(2, 3), a(2, 4)),
    "sparse_correct-labels": lambda k, a: k.sparse_correct(a(2, 3), labels(0)),
    "optimizer_step-grads": lambda k, a: k.optimizer_step(Update(optimizer=SGD, lr=0.1), a(5), a(4), 1, SIZES_5),
    "optimizer_step-sizes": lambda k, a: k.optimizer_step(Update(optimizer=SGD, lr=0.1), a(6), a(6), 1, SIZES_5),
    "optimizer_step-velocity": lambda k, a: k.optimizer_step(Update(optimizer=MOMENTUM, lr=0.1, momentum=0.9,
                                                                    velocity=a(6)), a(5), a(5), 1, SIZES_5),
    "optimizer_step-m": lambda k, a: k.optimizer_step(Update(optimizer=ADAM, lr=0.1, m=a(4), v=a(5)), a(5), a(5), 1,
                                                      SIZES_5),
    "optimizer_step-v": lambda k, a: k.optimizer_step(Update(optimizer=ADAM, lr=0.1, m=a(5), v=a(6)), a(5), a(5), 1,
                                                      SIZES_5),
    "optimizer_step-step": lambda k, a: k.optimizer_step(Update(optimizer=ADAM, lr=0.1, m=a(5), v=a(5)), a(5), a(5), 0,
                                                         SIZES_5),
    "metric_sum-Y": lambda k, a: k.metric_sum(a(2, 3), a(2, 4), MEAN_ABSOLUTE_ERROR),
    "metric_sum-sparse-code": lambda k, a: k.metric_sum(a(2, 3), a(2, 3), SPARSE_CATEGORICAL_ACCURACY),
    "sparse_metric_sum-labels": lambda k, a: k.sparse_metric_sum(a(2, 3), labels(0), SPARSE_CATEGORICAL_ACCURACY),
    "sparse_metric_sum-range": lambda k, a: k.sparse_metric_sum(a(2, 3), labels(0, 3), SPARSE_CATEGORICAL_ACCURACY),
    "sparse_metric_sum-code": lambda k, a: k.sparse_metric_sum(a(2, 3), labels(0, 1), MEAN_SQUARED_ERROR),
}
SIZES_5 = np.array([2, 1, 1])  # a network of 5 parameters: W (2, 1), b (1,), W (1, 1), b (1,)


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_arguments_raise_valueerror(backend, dtype, call):
    with pytest.raises(ValueError):
        call(backend, lambda *shape: np.zeros(shape, dtype))


def _run(args, **fields):
    return {"run": dataclasses.replace(args["run"], **fields)}


def _update(args, **fields):
    return _run(args, update=dataclasses.replace(args["run"].update, **fields))


# Each change makes one argument of a valid train_epochs call (conftest's make_call) invalid.
BAD_TRAINING = {
    "codes-length": lambda a: _run(a, codes=a["run"].codes[:1].copy()),
    "activation-code": lambda a: _run(a, codes=np.array([99, LINEAR])),
    "loss-code": lambda a: _run(a, loss=99),
    "optimizer-code": lambda a: _update(a, optimizer=99),
    "batch-zero": lambda a: _run(a, batch=0),
    "X-columns": lambda a: _run(a, X=a["run"].X[:, 1:].copy()),
    "X-dtype": lambda a: _run(a, X=a["run"].X.astype(np.float16)),
    "Y-rows": lambda a: _run(a, Y=a["run"].Y[1:].copy()),
    "Y-missing": lambda a: _run(a, Y=None),
    "order-epochs": lambda a: {"order": a["order"][:1].copy()},
    "order-row-out-of-range": lambda a: {"order": np.full_like(a["order"], len(a["run"].X))},
    "params-length": lambda a: _run(a, params=a["run"].params[1:].copy()),
    "grads-length": lambda a: _run(a, grads=a["run"].grads[1:].copy()),
    "adam-v-length": lambda a: _update(a, v=a["run"].update.v[:0].copy()),
    "adam-m-missing": lambda a: _update(a, m=None),
    "two-clips": lambda a: _update(a, clipnorm=1.0, clipvalue=1.0),
    "clipnorm-negative": lambda a: _update(a, clipnorm=-1.0),
    "schedule-code": lambda a: _update(a, schedule=99),
    "schedule-args-length": lambda a: _update(a, schedule=COSINE, schedule_args=np.ones(4)),
    "piecewise-args-even": lambda a: _update(a, schedule=PIECEWISE, schedule_args=np.ones(4)),
    "metric-code": lambda a: _run(a, metrics=np.array([99])),
    "metric-sparse-on-targets": lambda a: _run(a, metrics=np.array([SPARSE_CATEGORICAL_ACCURACY])),
    "epoch_metrics-columns": lambda a: {"epoch_metrics": np.zeros((2, 1))},
    "dropout-rate-one": lambda a: _run(a, dropout=np.array([0.0, 1.0])),
    "dropout-length": lambda a: _run(a, dropout=np.array([0.5])),
    "dropout-seed-negative": lambda a: _run(a, dropout_seed=-1),
    "penalties-negative": lambda a: _run(a, penalties=np.array([[0.0, -1.0], [0.0, 0.0]])),
    "penalties-shape": lambda a: _run(a, penalties=np.zeros(2)),
    "top_k-zero": lambda a: _run(a, top_k=0),
    "sample_weight-length": lambda a: _run(a, sample_weight=a["run"].sample_weight[1:].copy()),
    "epoch_correct-length": lambda a: {"epoch_correct": np.zeros(3, np.int64)},
    "epoch_loss-dtype": lambda a: {"epoch_loss": np.zeros(2, np.float32)},
    "labels-out-of-range": lambda a: _run(a, loss=SPARSE_CATEGORICAL_CROSSENTROPY, Y=None,
                                          labels=np.full(len(a["run"].X), a["run"].Y.shape[1])),
    "labels-and-Y": lambda a: _run(a, loss=SPARSE_CATEGORICAL_CROSSENTROPY, labels=np.zeros(len(a["run"].X), np.int64)),
}


@pytest.mark.parametrize("change", BAD_TRAINING.values(), ids=BAD_TRAINING.keys())
def test_train_epochs_rejects_bad_arguments(backend, dtype, make_call, change):
    args, _ = make_call("train_epochs", dtype, np.random.default_rng(20))
    args.update(change(args))
    with pytest.raises(ValueError):
        backend.train_epochs(*args.values())


def test_train_epochs_takes_a_training_run(backend, dtype, make_call):
    """The run is named, not positional: anything but a TrainingRun (an update that is not an
    Update) is refused before the kernel runs."""
    args, _ = make_call("train_epochs", dtype, np.random.default_rng(20))
    with pytest.raises(TypeError, match="TrainingRun"):
        backend.train_epochs(dataclasses.asdict(args["run"]), *list(args.values())[1:])
    args.update(_run(args, update=dataclasses.asdict(args["run"].update)))
    with pytest.raises(TypeError, match="Update"):
        backend.train_epochs(*args.values())


def test_train_epochs_checks_count_correct(backend, dtype, make_call):
    args, _ = make_call("train_epochs", dtype, np.random.default_rng(20))
    args.update(_run(args, count_correct="no"))
    with pytest.raises(TypeError, match="count_correct"):
        backend.train_epochs(*args.values())


@pytest.mark.parametrize("case", ["layers", "lanes"])
def test_count_correct_off_counts_nothing_and_changes_nothing_else(backend, simd, dtype, case):
    """A run with count_correct=False leaves epoch_correct at 0, on every path (the lanes count
    inside their batch), and trains to the same bits as with the count."""
    rng = np.random.default_rng(3)
    if case == "layers":  # softmax over three classes: the layer by layer step
        sizes, codes, loss = np.array([4, 6, 3]), np.array([RELU, LINEAR]), SPARSE_CATEGORICAL_CROSSENTROPY
        labels, Y = rng.integers(0, 3, 40).astype(np.int64), None
    else:  # a tiny binary network: the lanes where the micro-kernels are on
        sizes, codes, loss = np.array([2, 3, 1]), np.array([SIGMOID, LINEAR]), BINARY_CROSSENTROPY
        labels, Y = None, rng.integers(0, 2, (40, 1)).astype(dtype)
    X = rng.standard_normal((40, sizes[0])).astype(dtype)
    n_params = int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
    start = (0.5 * rng.standard_normal(n_params)).astype(dtype)

    def fit(count):
        params = start.copy()
        run = TrainingRun(sizes=sizes, codes=codes, params=params, grads=np.zeros_like(params), loss=loss, X=X,
                          Y=Y, labels=labels, batch=8, update=Update(optimizer=SGD, lr=0.1), count_correct=count)
        epoch_loss, epoch_correct = np.zeros(3), np.zeros(3, np.int64)
        backend.train_epochs(run, None, 0, epoch_loss, epoch_correct, np.zeros((3, 0)))
        return params, epoch_loss, epoch_correct

    params_on, loss_on, correct_on = fit(True)
    params_off, loss_off, correct_off = fit(False)
    assert correct_on.sum() > 0
    np.testing.assert_array_equal(correct_off, 0)
    np.testing.assert_array_equal(params_on, params_off)
    np.testing.assert_array_equal(loss_on, loss_off)


NETWORKS = {"relu": [("dense", 48, RELU)], "relu-relu": [("dense", 37, RELU), ("dense", 24, RELU)],
            "dropout": [("dense", 37, RELU), ("dropout", 0.25, None), ("dense", 24, RELU)]}


@pytest.mark.parametrize("network", NETWORKS.values(), ids=NETWORKS.keys())
def test_relu_derivative_fused_into_the_product_above_changes_no_bit(compiled, dtype, network, assert_close):
    """Where dZ·Wᵀ streams a transposed W (the micro-kernels), a ReLU layer below gets its
    derivative and bias sums in that product's epilogue: fits with the fusion and without it train
    to the same bits, at each vector width the CPU has, for rows and columns off the kernels'
    blocks (batches of 13, widths 37 and 24), and with dropout between (not fused there); the
    NumPy twin trains to the same weights to rounding."""
    import fastnn as fnn
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((91, 20)).astype(dtype), rng.integers(0, 3, 91)
    fused, simd, wide = compiled._set_fused(True), compiled._set_simd(True), compiled._set_wide(False)

    def fit(on, backend_name="cython"):
        compiled._set_fused(on)
        layers, width = [], 20
        for kind, size, code in network:
            if kind == "dropout":
                layers.append(fnn.Dropout(size))
            else:
                layers.append(fnn.Dense(width, size, NAMES[code]))
                width = size
        model = fnn.Sequential(layers + [fnn.Dense(width, 3, "softmax")], seed=0, dtype=dtype)
        model.compile("sparse_categorical_crossentropy", fnn.SGD(learning_rate=0.05, momentum=0.9))
        with fnn.use_backend(backend_name):
            history = model.fit(X, y, epochs=4, batch_size=13, verbose=0)
        return np.concatenate([w.ravel() for w in model.get_weights()]), history.history["loss"]

    try:
        for level in [False, True] if compiled._wide_available() else [False]:
            compiled._set_wide(level)
            (weights_on, loss_on), (weights_off, loss_off) = fit(True), fit(False)
            np.testing.assert_array_equal(weights_on, weights_off)
            np.testing.assert_array_equal(loss_on, loss_off)
        weights_twin, _ = fit(True, "python")  # and the NumPy twin, which has no fusion, to rounding
        assert_close(weights_on, weights_twin, dtype, scale=np.abs(weights_twin).max())
    finally:
        compiled._set_fused(fused)
        compiled._set_simd(simd)
        compiled._set_wide(wide)


def test_read_only_inputs_are_accepted(backend, dtype, kernel_name, make_call, call_arrays, assert_close):
    """Arrays a kernel only reads may be read-only (e.g. a user's frozen data); results are the same."""
    copy_args, arrays_of = call_arrays
    kernel = getattr(backend, kernel_name)
    args, outputs = make_call(kernel_name, dtype, np.random.default_rng(17))
    writable = copy_args(args)
    expected = kernel(*writable.values())
    for name, value in arrays_of(args).items():
        if name not in outputs:
            value.flags.writeable = False
    result = kernel(*args.values())
    if expected is None or isinstance(expected, str):
        assert result == expected
    else:
        assert_close(result, expected, dtype)
    written, reference = arrays_of(args), arrays_of(writable)
    for name in outputs:
        assert_close(written[name], reference[name], dtype, scale=np.abs(reference[name]).max())


# ----------------------------------------------------------------------------- epoch orders

@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 624, 1347, 70_000])
def test_shuffle_orders_are_randomstates(backend, n):
    """Each order is the one before it shuffled as scikit-learn's shuffle(sample_idx,
    random_state=...) does, from any state (refills of MT19937's words inside a shuffle too): the
    same orders, and the generator left in the same state."""
    for seed, skip in ((0, 0), (1, 311), (2, 1000)):
        generator = np.random.RandomState(seed)
        generator.random_sample(skip)  # two words a number: the state's position anywhere
        _, key, pos, *_ = generator.get_state()
        rows = np.random.default_rng(seed).permutation(n)
        expected, current = [], rows
        for _ in range(4):
            permutation = np.arange(n)
            generator.shuffle(permutation)
            current = current[permutation]
            expected.append(current)
        order = np.empty((4, n), np.int64)
        new_pos = backend.shuffle_orders(key, pos, rows, order)
        np.testing.assert_array_equal(order, np.reshape(expected, (4, n)))
        _, expected_key, expected_pos, *_ = generator.get_state()
        assert new_pos == expected_pos
        np.testing.assert_array_equal(key, expected_key)


def test_shuffle_orders_refuse_bad_arguments(backend):
    def call(**change):
        args = dict(key=np.random.RandomState(0).get_state()[1], pos=0, sample_idx=np.arange(5),
                    order=np.zeros((2, 5), np.int64))
        args.update(change)
        backend.shuffle_orders(**args)

    shared = np.zeros((3, 5), np.int64)
    for change, message in [(dict(key=np.zeros(624, np.int64)), "key must be a 1-d uint32 array"),
                            (dict(key=np.zeros(623, np.uint32)), "key has shape (623,), expected (624,)"),
                            (dict(pos=625), "pos must be an int from 0 to 624"),
                            (dict(pos=True), "pos must be an int from 0 to 624"),
                            (dict(sample_idx=np.arange(5.0)), "sample_idx must be a 1-d int64 array"),
                            (dict(order=np.zeros((2, 4), np.int64)), "order has shape (2, 4), expected (2, 5)"),
                            (dict(order=np.zeros((5, 2), np.int64).T), "must be C-contiguous and writeable"),
                            (dict(sample_idx=shared[1], order=shared[:2]), "order must not overlap sample_idx")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            call(**change)
