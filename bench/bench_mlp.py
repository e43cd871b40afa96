"""Synthetic-classification MLPs (the peers' cases), float32: training and inference throughput.

Training is one epoch of minibatch SGD with PyTorch's momentum (lr 0.05, μ 0.9), ReLU hidden
layers, softmax cross-entropy, batches in order, from fresh He-initialised weights each round.
Each training case is also run by fastnn and JAX in turn in every round (common.interleaved; the
small case also by fastnn without its micro-kernels), for ratios measured on the same machine.
"""
import contextlib
import importlib.util

import numpy as np
import pytest

import fastnn as fnn

import peers
from common import accuracy, case_data, fastnn_pool, interleaved, micro_kernels, record, threads

TRAIN = [("small", 1), ("medium", 1), ("medium", 2), ("large", 2)]


def train_group(case: str, n_threads: int) -> str:
    return f"mlp {case} train, {n_threads} thread{'s' * (n_threads > 1)}"


def fastnn_model(sizes, seed=0):
    layers = [fnn.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(fnn.Dense(sizes[-2], sizes[-1], activation="softmax"))
    model = fnn.Sequential(layers, seed=seed, dtype="float32")
    model.compile("sparse_categorical_crossentropy", fnn.SGD(lr=peers.LR_MLP, momentum=peers.MOMENTUM))
    return model


def learned(pred, y, n_classes, quick) -> bool:
    """One epoch lifts training accuracy clearly above chance (the full-size data; a quick pass
    only checks the output is a valid prediction)."""
    return quick or accuracy(pred, y) > 1.5 / n_classes


@pytest.mark.parametrize("case, n_threads", TRAIN, ids=[f"{c}-{t}thread" for c, t in TRAIN])
@pytest.mark.parametrize("impl", ["fastnn", "fastnn-portable", "fastnn-python", "numpy", "torch", "jax"])
def test_mlp_train(benchmark, rounds, quick, case, n_threads, impl):
    benchmark.group = train_group(case, n_threads)
    X, y, sizes, batch = case_data(case, quick)
    n = len(X)
    if impl.startswith("fastnn"):
        backend = "python" if impl == "fastnn-python" else "cython"
        if backend not in fnn.available_backends():
            pytest.skip("compiled backend not built")
        if impl != "fastnn" and case != "small":
            pytest.skip("the pure-Python backend and the portable paths are compared on the small case only")
        label = {"fastnn": "fastnn (cython)", "fastnn-portable": "fastnn (cython, FASTNN_SIMD=0)",
                 "fastnn-python": "fastnn (python)"}[impl]
        state = {}

        def setup():
            state["model"] = fastnn_model(sizes)
            state["before"] = state["model"].evaluate(X, y)["loss"]
            return (), {}

        def train():
            with fnn.use_backend(backend), micro_kernels(impl != "fastnn-portable"):
                state["model"].fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)

        with threads(n_threads):
            record(benchmark, train, rounds, n, "sample", label, setup=setup)
        after = state["model"].evaluate(X, y)["loss"]
        assert np.isfinite(after) and (quick or after < state["before"])
        assert learned(state["model"].predict(X).argmax(1), y, sizes[-1], quick)
    elif impl == "numpy":
        with threads(n_threads):
            params = record(benchmark, lambda: peers.numpy_mlp_train(X, y, sizes, batch), rounds, n, "sample",
                            "NumPy by hand")
        assert learned(peers.numpy_mlp_predict(X, params), y, sizes[-1], quick)
    elif impl == "torch":
        pytest.importorskip("torch")
        with threads(n_threads):
            m = record(benchmark, lambda: peers.torch_mlp_train(X, y, sizes, batch), rounds, n, "sample", "PyTorch")
        assert learned(peers.torch_mlp_predict(X, m), y, sizes[-1], quick)
    else:
        pytest.importorskip("jax")
        with threads(n_threads):
            train_epoch, predict, samples = peers.jax_mlp(X, y, sizes, batch)
            params = record(benchmark, train_epoch, rounds, samples, "sample", "JAX (jit, lax.scan epoch)")
        assert learned(predict(params), y, sizes[-1], quick)


@pytest.mark.parametrize("case, n_threads", TRAIN, ids=[f"{c}-{t}thread" for c, t in TRAIN])
def test_mlp_train_interleaved(benchmark, rounds, quick, case, n_threads):
    """One epoch by fastnn (from a fresh model, made untimed) and by JAX when installed, in turn in
    every round; on the small case also by fastnn without its micro-kernels, on two threads also by
    fastnn with its own pool (set_num_threads(2, pool=True))."""
    benchmark.group = train_group(case, n_threads) + ", interleaved"
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    has_jax = importlib.util.find_spec("jax") is not None
    if case != "small" and not has_jax:
        pytest.skip('JAX not installed (pip install ".[peers]")')
    X, y, sizes, batch = case_data(case, quick)

    def fastnn_run(simd: bool, wide=None, pool=False):
        def run(model):
            with micro_kernels(simd, wide), fastnn_pool(n_threads) if pool else contextlib.nullcontext():
                model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
            return model
        return run

    fastnn_ways = {"fastnn": (True, None)}
    if case == "small":
        fastnn_ways["fastnn FASTNN_SIMD=0"] = (False, None)
    if n_threads > 1:  # the step shared by fastnn's own threads instead of BLAS's
        fastnn_ways["fastnn pool=True"] = (True, None, True)
    if fnn.backend._MODULES["cython"]._wide_available():  # both widths of the micro-kernels, where both exist
        fastnn_ways.update({"fastnn FASTNN_SIMD=avx2": (True, False), "fastnn FASTNN_SIMD=avx512": (True, True)})
    runs = {name: (fastnn_run(*way), len(X), lambda: fastnn_model(sizes)) for name, way in fastnn_ways.items()}
    with threads(n_threads):
        if has_jax:
            train_epoch, predict, samples = peers.jax_mlp(X, y, sizes, batch)
            runs["JAX"] = (train_epoch, samples)
        # Small rounds take 30-50 ms: more of them than the suite's default, for a steady median.
        # each entry warm, as in a fit of many epochs: JAX's threads, cold after fastnn's turn, were slower
        results, _ = interleaved(benchmark, runs, rounds if quick or case != "small" else 4 * rounds, "sample",
                                 warm=True)
    for name in fastnn_ways:
        assert learned(results[name].predict(X).argmax(1), y, sizes[-1], quick)
    if has_jax:
        assert learned(predict(results["JAX"]), y, sizes[-1], quick)


@pytest.mark.benchmark(group="mlp medium inference, 2 threads")
@pytest.mark.parametrize("impl", ["fastnn", "fastnn-pool", "numpy", "torch", "jax"])
def test_mlp_inference(benchmark, rounds, quick, impl):
    X, y, sizes, batch = case_data("medium", quick)
    if quick:
        X = np.tile(X, (4, 1))
    else:  # 100 k rows, as the peers
        X = X[:100_000]
    n = len(X)
    if impl.startswith("fastnn"):
        if "cython" not in fnn.available_backends():
            pytest.skip("compiled backend not built")
        model = fastnn_model(sizes)
        label = "fastnn (cython, pool=True)" if impl == "fastnn-pool" else "fastnn (cython)"
        with threads(2), fastnn_pool(2) if impl == "fastnn-pool" else contextlib.nullcontext():
            P = record(benchmark, lambda: model.predict(X), rounds, n, "sample", label)
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-4)
        return
    if impl == "numpy":
        params = peers.he_params(sizes)
        with threads(2):
            pred = record(benchmark, lambda: peers.numpy_mlp_predict(X, params), rounds, n, "sample", "NumPy by hand")
    elif impl == "torch":
        pytest.importorskip("torch")
        m = peers.torch_mlp(sizes)
        with threads(2):
            pred = record(benchmark, lambda: peers.torch_mlp_predict(X, m), rounds, n, "sample", "PyTorch")
    else:
        pytest.importorskip("jax")
        with threads(2):
            _, predict, _ = peers.jax_mlp(X, np.zeros(n, np.int64), sizes, batch)
            params = [(np.asarray(W), np.asarray(b)) for W, b in zip(*peers.he_params(sizes))]
            pred = record(benchmark, lambda: predict(params), rounds, n, "sample", "JAX (jit)")
    assert pred.shape == (n,)


# (layer sizes, batch, dtype): products on the micro-kernels' paths, float32 and float64
WIDTH_CASES = {"20-32-32-2 f32 b32": ([20, 32, 32, 2], 32, "float32"), "20-64-64-2 f32 b64": ([20, 64, 64, 2], 64, "float32"),
               "64-64-64-10 f64 b200": ([64, 64, 64, 10], 200, "float64"),
               "64-128-128-10 f64 b200": ([64, 128, 128, 10], 200, "float64")}


@pytest.mark.parametrize("case", list(WIDTH_CASES))
def test_micro_kernel_widths(benchmark, rounds, quick, case):
    """One epoch of 20,000 rows (5,000 quick) in order with the micro-kernels at AVX-512's width and
    at AVX2's, in turn in every round, one BLAS thread: whether the wider vectors pay on this CPU
    (microkernels.h prefers them only where they run at full width)."""
    benchmark.group = f"micro-kernel widths: {case}, 1 thread, interleaved"
    if "cython" not in fnn.available_backends() or not fnn.backend._MODULES["cython"]._wide_available():
        pytest.skip("no AVX-512 F and DQ on this CPU: one width of micro-kernels only")
    sizes, batch, dtype = WIDTH_CASES[case]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5_000 if quick else 20_000, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], len(X))

    def model():
        hidden = [fnn.Dense(a, b, "relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
        m = fnn.Sequential(hidden + [fnn.Dense(sizes[-2], sizes[-1], "softmax")], seed=0, dtype=dtype)
        m.compile("sparse_categorical_crossentropy", fnn.SGD(learning_rate=0.05, momentum=0.9))
        return m

    def fit(wide):
        def run(m):
            with micro_kernels(True, wide):
                m.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
            return m
        return run

    runs = {"AVX-512": (fit(True), len(X), model), "AVX2": (fit(False), len(X), model)}
    with threads(1):
        interleaved(benchmark, runs, 2 * rounds, "sample")
