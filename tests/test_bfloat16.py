"""bfloat16 products (Sequential(..., precision="bfloat16")): the rounding, the three products of a
dense layer on both twins and on both compiled paths (AVX512-BF16 where the CPU has it, the
emulation with the vector paths off), predict, training, the estimators, saving, ONNX and gradcheck.

The products are compared with float64 products of the rounded operands, to float32 rounding; the
same comparison fails for float32 products (test_float32_products_are_not_within_the_tolerance),
so it tells a bfloat16 product from a float32 one."""
import importlib

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _contract as C
from fastnn._fallback.bfloat16 import rounded

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)


def _arithmetic_round(a):
    """bfloat16 rounding by float64 arithmetic (not bits): 8 significant bits, ties to even
    (np.round), subnormals to a zero of their sign, NaN kept."""
    with np.errstate(invalid="ignore"):  # (signalling NaNs)
        a = a.astype(np.float64)
    m, e = np.frexp(a)
    r = np.ldexp(np.round(np.ldexp(m, 8)), e - 8)
    r = np.where(np.abs(a) < TINY32, np.copysign(0.0, a), r)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isnan(a), np.nan, r).astype(np.float32)


def _special_values():
    one = np.float32(1)
    return np.array([0.0, -0.0, TINY32, -TINY32, TINY32 / 2, -TINY32 / 3, np.finfo(np.float32).max,
                     -np.finfo(np.float32).max, np.inf, -np.inf, np.nan, -np.nan,
                     one + 2.0 ** -8,         # a tie: rounds to 1 (even)
                     one + 3 * 2.0 ** -8,     # a tie: rounds up to 1 + 2^-6 (even)
                     one + 2.0 ** -8 + 2.0 ** -20,  # above the tie: up
                     3.3895e38, 3.39e38],     # near bfloat16's largest finite, and past it (inf)
                    np.float32)


def test_round_bfloat16_matches_arithmetic(backend, simd):
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
                        _special_values()])
    out = np.empty_like(a)
    backend.round_bfloat16(a, out)
    expected = _arithmetic_round(a)
    nan = np.isnan(a)
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_array_equal(out[~nan].view(np.uint32), expected[~nan].view(np.uint32))
    assert not (out.view(np.uint32) & 0xFFFF).any()  # bfloat16: the low 16 bits are zero
    backend.round_bfloat16(a, a)  # in place
    np.testing.assert_array_equal(a[~nan].view(np.uint32), out[~nan].view(np.uint32))


def test_round_bfloat16_checks_its_arguments(backend):
    with pytest.raises(ValueError, match="a must be a 1-d float32"):
        backend.round_bfloat16(np.zeros(3), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="out"):
        backend.round_bfloat16(np.zeros(3, np.float32), np.zeros(4, np.float32))


def _operands(rng, *shapes):
    """float32 arrays of mixed magnitudes (a product's terms then cancel and round differently)."""
    return [(rng.standard_normal(s) * np.exp(rng.uniform(-3, 3, s))).astype(np.float32) for s in shapes]


def _bound(A, B):
    """How far a float32 sum of the exact products of A (m, k) and B (k, n) may lie from the exact sum."""
    return 2 * A.shape[1] * EPS32 * (np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64))) + 1e-30


SHAPES = [(1, 1, 1), (1, 2, 1), (3, 1, 5), (5, 3, 1), (7, 9, 33), (8, 16, 32), (16, 31, 17), (33, 64, 65),
          (64, 10, 10), (9, 70, 40), (130, 129, 67)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_forward_product_takes_bfloat16_operands(backend, simd, m, k, n):
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    X, W, b = _operands(rng, (m, k), (k, n), (n,))
    out = np.empty((m, n), np.float32)
    backend.dense_forward(X, W, b, C.LINEAR, out, True)
    Xr, Wr = rounded(X), rounded(W)
    exact = Xr.astype(np.float64) @ Wr.astype(np.float64)
    assert np.all(np.abs(out - b - exact) <= _bound(Xr, Wr) + 2 * EPS32 * np.abs(b))


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_backward_products_take_bfloat16_operands(backend, simd, m, k, n):
    rng = np.random.default_rng(m * 10_000 + k * 100 + n + 1)
    X, W, dA = _operands(rng, (m, k), (k, n), (m, n))
    A = rng.standard_normal((m, n)).astype(np.float32)
    dZ, dW, db, dX = np.empty((m, n), np.float32), np.empty((k, n), np.float32), np.empty(n, np.float32), \
        np.empty((m, k), np.float32)
    backend.dense_backward(X, W, A, dA, C.LINEAR, dZ, dW, db, dX, True)
    Xr, Wr, dZr = rounded(X), rounded(W), rounded(dA)  # linear: dZ = dA
    np.testing.assert_array_equal(dZ, dA)  # dZ itself is not rounded
    assert np.all(np.abs(dW - Xr.T.astype(np.float64) @ dZr.astype(np.float64)) <= _bound(Xr.T, dZr))
    assert np.all(np.abs(dX - dZr.astype(np.float64) @ Wr.T.astype(np.float64)) <= _bound(dZr, Wr.T))
    np.testing.assert_allclose(db, dA.sum(axis=0, dtype=np.float64), rtol=1e-5, atol=1e-5 * np.abs(dA).sum())


def test_float32_products_are_not_within_the_tolerance(backend):
    rng = np.random.default_rng(1)
    X, W, b = _operands(rng, (33, 64), (64, 65), (65,))
    out = np.empty((33, 65), np.float32)
    backend.dense_forward(X, W, b, C.LINEAR, out)
    Xr, Wr = rounded(X), rounded(W)
    assert not np.all(np.abs(out - b - Xr.astype(np.float64) @ Wr.astype(np.float64)) <= _bound(Xr, Wr) + 1e-5)


def test_bfloat16_needs_float32(backend):
    X, W, b = np.ones((2, 3)), np.ones((3, 4)), np.ones(4)
    with pytest.raises(ValueError, match="bfloat16 products need float32"):
        backend.dense_forward(X, W, b, C.LINEAR, np.empty((2, 4)), True)
    with pytest.raises(ValueError, match="bfloat16 must be a bool"):
        backend.dense_forward(X.astype(np.float32), W.astype(np.float32), b.astype(np.float32), C.LINEAR,
                              np.empty((2, 4), np.float32), "yes")
    sizes, codes = np.array([3, 4], np.int64), np.array([C.LINEAR], np.int64)
    with pytest.raises(ValueError, match="bfloat16 products need float32"):
        backend.network_predict(sizes, codes, np.ones(16), X, np.empty((2, 4)), 8, 1, True)


def _network(sizes, seed=0, activation="tanh", out="softmax", precision="bfloat16"):
    layers = [fnn.Dense(a, b, activation) for a, b in zip(sizes[:-2], sizes[1:-1])]
    return fnn.Sequential(layers + [fnn.Dense(sizes[-2], sizes[-1], out)], seed=seed, precision=precision)


@pytest.mark.parametrize("threads", [1, 2])
def test_network_predict_is_the_layers_forward(backend, simd, threads):
    model = _network([40, 96, 64, 7])
    net = model.network
    X = np.random.default_rng(2).standard_normal((1000, 40)).astype(np.float32)
    out = np.empty((1000, 7), np.float32)
    backend.network_predict(net.sizes, net.codes, net.params, X, out, 128, threads, True)
    a = X
    for l in range(net.n_layers):
        nxt = np.empty((1000, int(net.sizes[l + 1])), np.float32)
        backend.dense_forward(a, net.W[l], net.b[l], int(net.codes[l]), nxt, True)
        a = nxt
    np.testing.assert_allclose(out, a, rtol=1e-5, atol=1e-6)


def test_predict_differs_from_float32_by_bfloat16_rounding(backend, simd):
    X = np.random.default_rng(3).standard_normal((200, 30)).astype(np.float32)
    bf, f32 = _network([30, 64, 10], precision="bfloat16"), _network([30, 64, 10], precision=None)
    p, q = bf.predict(X), f32.predict(X)
    assert not np.array_equal(p, q)
    np.testing.assert_allclose(p, q, atol=2e-2)


def _fitted_on_each(backends, make, optimizer, X, y, **fit):
    """The model make() returns, compiled with optimizer() and fitted on (X, y), once per backend."""
    models = []
    for name in backends:
        with fnn.use_backend(name):
            model = make()
            model.compile("sparse_categorical_crossentropy", optimizer())
            model.fit(X, y, verbose=0, **fit)
        models.append(model)
    return models


def test_twins_compute_the_same_gradient(both_backends):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((64, 24)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    models = _fitted_on_each(both_backends, lambda: _network([24, 48, 32, 5], activation="relu"),
                             lambda: fnn.SGD(0.1), X, y, epochs=1, batch_size=64)
    grads = [model.network.grads for model in models]
    scale = np.abs(grads[1]).max()
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-3 * scale)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_twins_train_to_the_same_weights(both_backends, simd, optimizer):
    """Several steps: the products after the first read W as the step before left it (the compiled
    twin converts W in the optimizer's pass)."""
    rng = np.random.default_rng(13)
    X = rng.standard_normal((96, 20)).astype(np.float32)
    y = rng.integers(0, 4, 96)
    make_optimizer = (lambda: fnn.SGD(0.1, momentum=0.9)) if optimizer == "momentum" else \
        (lambda: fnn.Adam(0.01, clipnorm=1.0))
    models = _fitted_on_each(both_backends, lambda: _network([20, 33, 18, 4], activation="tanh"), make_optimizer,
                             X, y, epochs=3, batch_size=16, shuffle=False)
    params = [model.network.params for model in models]
    moved = np.abs(params[1] - _network([20, 33, 18, 4], activation="tanh").network.params).max()
    assert np.abs(params[0] - params[1]).max() <= 1e-2 * moved


def _fit(precision, seed=0, threads=None, X=None, y=None, epochs=3):
    model = _network([24, 256, 256, 5], seed=seed, activation="relu", precision=precision)
    model.compile("sparse_categorical_crossentropy", fnn.SGD(0.05, momentum=0.9))
    if threads is not None:
        fnn.set_num_threads(threads)
    try:
        history = model.fit(X, y, epochs=epochs, batch_size=128, verbose=0)
    finally:
        fnn.set_num_threads(None)
    return model, history


def test_reruns_are_bit_identical_and_threads_do_not_change_the_result(backend, simd):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((512, 24)).astype(np.float32)
    y = rng.integers(0, 5, 512)
    runs = [_fit("bfloat16", threads=t, X=X, y=y)[0].network.params for t in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    if getattr(backend, "_bf16_path", lambda: "")() == "avx512bf16":
        np.testing.assert_array_equal(runs[0], runs[2])  # each element is summed by one kernel call
    else:  # BLAS's threads sum the emulation's products in other orders
        np.testing.assert_allclose(runs[0], runs[2], atol=1e-4)


def test_training_reaches_float32_loss_and_accuracy(backend, simd):
    rng = np.random.default_rng(6)
    centers = rng.standard_normal((5, 24)) * 0.5  # overlapping classes: the loss stays well above 0
    labels = rng.integers(0, 5, 4000)
    X = (centers[labels] + rng.standard_normal((4000, 24))).astype(np.float32)
    train, test = slice(0, 2000), slice(2000, 4000)
    results = {}
    for precision in (None, "bfloat16"):
        model, history = _fit(precision, X=X[train], y=labels[train], epochs=8)
        accuracy = np.mean(model.predict(X[test]).argmax(axis=1) == labels[test])
        results[precision] = history.history["loss"][-1], accuracy
    (loss32, acc32), (loss16, acc16) = results[None], results["bfloat16"]
    assert abs(loss16 - loss32) <= 0.02 * loss32
    assert abs(acc16 - acc32) <= 0.005


def test_tiny_networks_leave_the_lanes(compiled):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    with fnn.use_backend("cython"):
        model = _network([2, 4, 1], out="sigmoid")
        model.compile("binary_crossentropy", fnn.SGD(0.5))
        model.fit(X, y, epochs=2, batch_size=None, verbose=0)
        assert fnn.gradcheck(model, X, y).path == "layers"


def test_gradcheck_compares_with_the_rounded_network(backend, simd):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((16, 12)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    model = _network([12, 20, 16, 4], seed=1)
    model.compile("sparse_categorical_crossentropy", "sgd")
    result = fnn.gradcheck(model, X, y)
    assert result.passed and result.tolerance == importlib.import_module("fastnn.gradcheck").BFLOAT16_TOLERANCE
    assert max(result.errors.values()) > 1e-4  # bfloat16's rounding shows: not a float32 gradient


def test_model_keeps_its_precision(tmp_path, backend):
    model = _network([6, 8, 3])
    assert model.precision == "bfloat16" and model.network.bfloat16
    assert "precision='bfloat16'" in repr(model)
    lines = []
    model.summary(print_fn=lines.append)
    assert "bfloat16 products" in lines[0]
    model.compile("sparse_categorical_crossentropy", "adam")
    again = fnn.Sequential.from_config(model.get_config())
    assert again.precision == "bfloat16"
    model.save(tmp_path / "m.npz")
    loaded = fnn.load(tmp_path / "m.npz")
    assert loaded.precision == "bfloat16" and loaded.network.bfloat16
    X = np.random.default_rng(8).standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_precision_is_checked():
    with pytest.raises(ValueError, match="precision must be None or 'bfloat16'"):
        fnn.Sequential([fnn.Dense(2, 1)], precision="float16")
    with pytest.raises(ValueError, match="precision='bfloat16' needs dtype='float32'"):
        fnn.Sequential([fnn.Dense(2, 1)], dtype="float64", precision="bfloat16")


def test_estimators_take_precision(backend):
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from fastnn.sklearn import MLPClassifier, MLPRegressor
    rng = np.random.default_rng(9)
    X = rng.standard_normal((300, 10))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = MLPClassifier((32,), max_iter=200, random_state=0, precision="bfloat16").fit(X, y)
    assert clf.model_.precision == "bfloat16" and clf.model_.dtype == np.float32
    f32 = MLPClassifier((32,), max_iter=200, random_state=0, dtype="float32").fit(X, y)
    assert clf.score(X, y) > 0.9 and abs(clf.score(X, y) - f32.score(X, y)) <= 0.02
    assert clone(clf).get_params()["precision"] == "bfloat16"
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=20, random_state=0, precision="bfloat16", solver="lbfgs").fit(X, X[:, 0])
    assert reg.model_.network.bfloat16
    with pytest.raises(ValueError, match="needs dtype='float32'"):
        MLPClassifier((8,), max_iter=2, dtype="float64", precision="bfloat16").fit(X, y)
    with pytest.raises(ValueError, match="precision"):
        MLPClassifier((8,), precision="fp8").fit(X, y)


def test_fit_parallel_takes_bfloat16_models(backend):
    rng = np.random.default_rng(10)
    X = rng.standard_normal((128, 8)).astype(np.float32)
    y = rng.integers(0, 3, 128)
    models = [_network([8, 16, 3], seed=s) for s in range(3)]
    for m in models:
        m.compile("sparse_categorical_crossentropy", "adam")
    fnn.fit_parallel(models, X, y, epochs=2, batch_size=32, verbose=0)
    alone = _network([8, 16, 3], seed=1)
    alone.compile("sparse_categorical_crossentropy", "adam")
    alone.fit(X, y, epochs=2, batch_size=32, verbose=0)
    np.testing.assert_array_equal(models[1].network.params, alone.network.params)


def test_onnx_export_predicts_within_bfloat16_rounding(tmp_path, backend):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastnn.onnx as fnn_onnx
    model = _network([10, 32, 4])
    fnn_onnx.export(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    X = np.random.default_rng(11).standard_normal((50, 10)).astype(np.float32)
    got = sess.run([fnn_onnx.OUTPUT_NAME], {fnn_onnx.INPUT_NAME: X})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, model.predict(X), atol=2e-2)


def test_digits_reach_float32_loss_and_accuracy(backend):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from fastnn.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X = X / 16
    order = np.random.default_rng(12).permutation(len(X))
    train, test = order[:900], order[900:]
    results = {}
    with pytest.warns(ConvergenceWarning):
        for precision, dtype in ((None, "float32"), ("bfloat16", None)):
            clf = MLPClassifier((64,), max_iter=60, random_state=0, dtype=dtype, precision=precision)
            clf.fit(X[train], y[train])
            results[precision] = clf.loss_, clf.score(X[test], y[test])
    (loss32, acc32), (loss16, acc16) = results[None], results["bfloat16"]
    assert loss16 != loss32  # the products were rounded
    assert abs(loss16 - loss32) <= 0.02 * loss32
    assert abs(acc16 - acc32) <= 0.005
