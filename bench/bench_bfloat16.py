"""bfloat16 products (Sequential(..., precision="bfloat16")) beside float32, and PyTorch's bf16
autocast beside its float32: training and inference of the MLP cases of bench_mlp.py, and the bare
products (the AVX512-BF16 kernel against the sgemm fastnn calls), on the CPU's native bfloat16 path.

Each row runs its implementations in turn in every round (common.interleaved). Before each one the
round waits, untimed, for the cores to go idle: OpenBLAS's threads spin for a while after a product
and would otherwise take the second core from whichever implementation runs next.
"""
import importlib.util

import numpy as np
import pytest

import fastnn as fnn

import peers
from bench_mlp import learned
from common import case_data, idle_first, interleaved, threads

TRAIN = [("medium", 1), ("large", 1), ("large", 2)]
INFER = [("medium", 2), ("large", 2)]


def native_bfloat16() -> bool:
    kernels = fnn.backend._MODULES.get("cython")
    return kernels is not None and kernels._bf16_path() == "avx512bf16"


def require_native():
    if not native_bfloat16():
        pytest.skip("no AVX512-BF16 on this CPU (or FASTNN_SIMD=0): bfloat16 is emulated, which is slower "
                    "than float32 by design (tests/test_bfloat16.py holds it to the same numbers)")


def model(sizes, precision):
    layers = [fnn.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(fnn.Dense(sizes[-2], sizes[-1], activation="softmax"))
    m = fnn.Sequential(layers, seed=0, dtype="float32", precision=precision)
    m.compile("sparse_categorical_crossentropy", fnn.SGD(lr=peers.LR_MLP, momentum=peers.MOMENTUM))
    return m


@pytest.mark.parametrize("case, n_threads", TRAIN, ids=[f"{c}-{t}thread" for c, t in TRAIN])
def test_bfloat16_train(benchmark, rounds, quick, case, n_threads):
    """One epoch (bench_mlp's training) by fastnn in bfloat16 and in float32, and by PyTorch with
    bf16 autocast and without, from fresh weights, in turn in every round."""
    require_native()
    benchmark.group = f"bfloat16 {case} train, {n_threads} thread{'s' * (n_threads > 1)}, interleaved"
    X, y, sizes, batch = case_data(case, quick)

    def fastnn_fit(m):
        m.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
        return m

    runs = {"fastnn bfloat16": (fastnn_fit, len(X), lambda: model(sizes, "bfloat16")),
            "fastnn float32": (fastnn_fit, len(X), lambda: model(sizes, None))}
    pairs = [("fastnn bfloat16", "fastnn float32")]
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch:
        runs["PyTorch bf16 autocast"] = (lambda: peers.torch_mlp_train(X, y, sizes, batch, autocast=True), len(X))
        runs["PyTorch float32"] = (lambda: peers.torch_mlp_train(X, y, sizes, batch), len(X))
        pairs += [("fastnn bfloat16", "PyTorch bf16 autocast"), ("PyTorch bf16 autocast", "PyTorch float32")]
    with threads(n_threads):
        results, _ = interleaved(benchmark, runs, rounds, "sample", pairs=pairs, around=idle_first)
    for name in ("fastnn bfloat16", "fastnn float32"):
        assert learned(results[name].predict(X).argmax(1), y, sizes[-1], quick)
    if has_torch:
        assert learned(peers.torch_mlp_predict(X, results["PyTorch bf16 autocast"], autocast=True), y, sizes[-1], quick)


@pytest.mark.parametrize("case, n_threads", INFER, ids=[f"{c}-{t}thread" for c, t in INFER])
def test_bfloat16_inference(benchmark, rounds, quick, case, n_threads):
    """predict on the case's rows (20,000 at least) in bfloat16 and float32, and PyTorch's forward
    pass with bf16 autocast and without, the same weights for both precisions of each, in turn."""
    require_native()
    benchmark.group = f"bfloat16 {case} inference, {n_threads} threads, interleaved"
    X, y, sizes, batch = case_data(case, quick)
    X = np.tile(X, (max(1, 20_000 // len(X)), 1))
    bf16, f32 = model(sizes, "bfloat16"), model(sizes, None)
    f32.set_weights(bf16.get_weights())
    runs = {"fastnn bfloat16": (lambda: bf16.predict(X), len(X)), "fastnn float32": (lambda: f32.predict(X), len(X))}
    pairs = [("fastnn bfloat16", "fastnn float32")]
    if importlib.util.find_spec("torch") is not None:
        net = peers.torch_mlp(sizes)
        runs["PyTorch bf16 autocast"] = (lambda: peers.torch_mlp_predict(X, net, autocast=True), len(X))
        runs["PyTorch float32"] = (lambda: peers.torch_mlp_predict(X, net), len(X))
        pairs.append(("fastnn bfloat16", "PyTorch bf16 autocast"))
    with threads(n_threads):
        results, _ = interleaved(benchmark, runs, rounds, "sample", pairs=pairs, around=idle_first)
    agree = np.mean(results["fastnn bfloat16"].argmax(1) == results["fastnn float32"].argmax(1))
    assert agree > 0.95  # bfloat16 rounding moves a few near-ties, no more


PRODUCT = (512, 1024, 1024)  # (m, k, n): the large case's hidden-layer product


@pytest.mark.parametrize("n_threads", [1, 2])
def test_bfloat16_products(benchmark, rounds, quick, n_threads):
    """The bare products, 512 x 1024 by 1024 x 1024, 20 a round: the AVX512-BF16 kernel (operands
    converted once, the pieces shared by fastnn's threads as in training) and SciPy's sgemm (the
    float32 path's BLAS, on its own threads), in turn; GFLOP/s counts 2mnk per product."""
    require_native()
    benchmark.group = f"bfloat16 products {'x'.join(map(str, PRODUCT))}, {n_threads} thread{'s' * (n_threads > 1)}, interleaved"
    kernels = fnn.backend._MODULES["cython"]
    m, k, n = PRODUCT
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    C = np.empty((m, n), np.float32)
    reps = 2 if quick else 20
    gflop = reps * 2 * m * n * k / 1e9
    runs = {"bfloat16 (AVX512-BF16)": (lambda: kernels._bf16_product_rounds(A, B, C, reps, n_threads), gflop),
            "float32 (sgemm)": (lambda: kernels._product_rounds(0, True, A, B, C, reps), gflop)}
    with threads(n_threads):
        interleaved(benchmark, runs, rounds, "GFLOP", around=idle_first)
