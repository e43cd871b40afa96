"""XOR 2-2-1, float64, full-batch gradient descent, 10,000 epochs: µs per epoch, against the peers
and the plain-C floor (bench/xor_floor.c: the loop compiled for these sizes, when a C compiler is
at hand).

The last benchmark runs fastnn and the compiled-loop peers (Numba, JAX, the C floor) in turn in
every round (common.interleaved): rows timed one after the other can land on different cores of
this host, and one of them ran XOR at half the other's speed.
"""
import importlib.util

import numpy as np
import pytest

import fastnn as fnn
from fastnn.lesson import xor_model

import peers
from common import interleaved, micro_kernels, record

X, Y = fnn.data.xor()
EPOCHS = 10_000


def solved(p) -> bool:
    return bool(np.array_equal(np.round(np.asarray(p).reshape(-1, 1)), Y))


@pytest.mark.benchmark(group="xor")
@pytest.mark.parametrize("impl", ["cython", "cython-portable", "python"])
def test_xor_fastnn(benchmark, rounds, quick, impl):
    """fastnn's compiled backend (whose vector lanes, _compiled/lanes.h, train XOR), the same without them
    (FASTNN_SIMD=0: the layer-by-layer path), and the pure-Python backend."""
    name = impl.split("-")[0]
    if name not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    epochs = EPOCHS if name == "cython" or not quick else 1000
    model = None

    def setup():
        nonlocal model
        with fnn.use_backend(name):
            model = xor_model()
        return (), {}

    def train():
        with fnn.use_backend(name), micro_kernels(impl != "cython-portable"):
            model.fit(X, Y, epochs=epochs, batch_size=None, verbose=0)

    label = {"cython": "fastnn (cython)", "cython-portable": "fastnn (cython, FASTNN_SIMD=0)",
             "python": "fastnn (python)"}[impl]
    record(benchmark, train, rounds, epochs, "epoch", label, setup=setup)
    if epochs == EPOCHS:
        assert solved(model.predict(X))


@pytest.mark.benchmark(group="xor")
def test_xor_numpy(benchmark, rounds, quick):
    epochs = 1000 if quick else EPOCHS
    p = record(benchmark, lambda: peers.numpy_xor(X, Y.copy(), epochs), rounds, epochs, "epoch", "NumPy by hand")
    assert epochs < EPOCHS or solved(p)


@pytest.mark.benchmark(group="xor")
def test_xor_torch(benchmark, rounds):
    pytest.importorskip("torch")
    epochs = 1000  # 0.25 ms an epoch: a tenth of the run measures the same rate
    record(benchmark, lambda: peers.torch_xor(X, Y, epochs), rounds, epochs, "epoch", "PyTorch")


@pytest.mark.benchmark(group="xor")
def test_xor_jax(benchmark, rounds):
    pytest.importorskip("jax")
    run = peers.jax_xor(X, Y, EPOCHS)
    assert solved(record(benchmark, run, rounds, EPOCHS, "epoch", "JAX (jit, fori_loop)"))


@pytest.mark.benchmark(group="xor")
def test_xor_numba(benchmark, rounds):
    pytest.importorskip("numba")
    run = peers.numba_xor(X, Y, EPOCHS)
    assert solved(record(benchmark, run, rounds, EPOCHS, "epoch", "Numba (@njit)"))


@pytest.mark.benchmark(group="xor")
def test_xor_c_floor(benchmark, rounds):
    run = peers.c_floor_xor(X, Y, EPOCHS)
    if run is None:
        pytest.skip("no C compiler")
    assert solved(record(benchmark, run, rounds, EPOCHS, "epoch", "plain C floor (cc -O3)"))


@pytest.mark.benchmark(group="xor, interleaved")
def test_xor_interleaved(benchmark, rounds, quick):
    """fastnn's compiled XOR net (a fresh model each round, made untimed), each compiled-loop peer
    installed, the plain-C floor where a C compiler is, and fastnn without its vector lanes
    (FASTNN_SIMD=0), in turn in every round; every run trains and predicts (the peers from their
    starting weights, made in the timed call)."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    peer_runs = {name: make(X, Y, EPOCHS) for name, module, make in
                 [("Numba", "numba", peers.numba_xor), ("JAX", "jax", peers.jax_xor)]
                 if importlib.util.find_spec(module)}
    floor = peers.c_floor_xor(X, Y, EPOCHS)
    if floor is not None:
        peer_runs["C floor"] = floor
    if not peer_runs:
        pytest.skip('no compiled-loop peer installed (pip install ".[peers]") and no C compiler')

    def fastnn_run(lanes: bool):
        def run(model):
            with micro_kernels(lanes):
                model.fit(X, Y, epochs=EPOCHS, batch_size=None, verbose=0)
            return model.predict(X)
        return run

    runs = {"fastnn": (fastnn_run(True), EPOCHS, xor_model),
            **{name: (run, EPOCHS) for name, run in peer_runs.items()},
            "fastnn FASTNN_SIMD=0": (fastnn_run(False), EPOCHS, xor_model)}
    # A round is 10-20 ms: many more rounds than the suite's default, for a steady median.
    predictions, _ = interleaved(benchmark, runs, rounds if quick else 20 * rounds, "epoch")
    assert all(solved(p) for p in predictions.values())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_xor_fixed_lanes_interleaved(benchmark, rounds, quick, dtype):
    """What compiling XOR's lanes for its sizes (lanes_body.h's 2-H-1 shapes) gains: fastnn's XOR fit
    with them and with the lanes for any sizes (the same bits), in turn in every round."""
    kernels = fnn.backend._MODULES["cython"]
    if kernels is None or not kernels._simd_available():
        pytest.skip("compiled backend not built, or no AVX2 + FMA: no lanes")
    benchmark.group = f"xor {dtype} lanes, interleaved"

    def fastnn_run(fixed: bool):
        def run(model):
            previous = kernels._set_fixed_lanes(fixed)
            try:
                with micro_kernels(True):
                    model.fit(X, Y, epochs=EPOCHS, batch_size=None, verbose=0)
            finally:
                kernels._set_fixed_lanes(previous)
            return model.predict(X)
        return run

    def make():
        return xor_model(dtype=dtype)

    runs = {"fastnn": (fastnn_run(True), EPOCHS, make), "fastnn, lanes for any sizes": (fastnn_run(False), EPOCHS, make)}
    predictions, _ = interleaved(benchmark, runs, rounds if quick else 20 * rounds, "epoch")
    assert all(solved(p) for p in predictions.values())
