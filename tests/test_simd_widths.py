"""The micro-kernels at each vector width the CPU has: AVX-512 (64-byte vectors), AVX2 (32) and the
portable loops compute the same dense products and the same fits. The `simd` fixture runs the
rest of the suite on the widest paths; this file holds the narrower ones to them."""
import re

import numpy as np
import pytest

import fastnn as fnn

WIDTHS = ["avx512", "avx2", "portable"]


@pytest.fixture
def widths(compiled):
    """set(level): switch the compiled backend to a vector width; restores the setting after."""
    if not compiled._wide_available():
        pytest.skip("this CPU has no AVX-512 F and DQ: only the AVX2 and portable paths exist here "
                    "(tests/test_kernels.py holds those to each other)")
    simd, wide = compiled._set_simd(True), compiled._set_wide(True)

    def set_level(level):
        compiled._set_simd(level != "portable")
        compiled._set_wide(level == "avx512")
        assert compiled._simd_level() == level

    yield set_level
    compiled._set_simd(simd)
    compiled._set_wide(wide)


# (batch, n_in, n_out): on the micro-kernels' paths (ROWS, NARROW), with widths that are and are
# not multiples of 8 and 16 lanes, and edges of rows (m % 4); and a tall product of a narrow layer,
# which BLAS computes by blocks of rows at AVX-512 and in one call at the other widths
SHAPES = [(7, 24, 40), (32, 32, 32), (13, 100, 3), (5, 17, 33), (64, 48, 64), (700, 40, 48)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
def test_dense_products_agree_at_every_width(compiled, widths, dtype, shape, assert_close):
    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    X, W, b = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (n,)))
    dA = rng.standard_normal((m, n)).astype(dtype)
    results = {}
    for level in WIDTHS:
        widths(level)
        A, dZ, dW, db, dX = (np.zeros(s, dtype) for s in ((m, n), (m, n), (k, n), (n,), (m, k)))
        compiled.dense_forward(X, W, b, fnn.activations.TANH, A)
        compiled.dense_backward(X, W, A, dA, fnn.activations.TANH, dZ, dW, db, dX)
        results[level] = (A, dW, db, dX)
    for level in ("avx2", "portable"):
        for got, expected, scale in zip(results[level], results["avx512"], (k, m, m, n)):
            assert_close(got, expected, dtype, scale=scale * 4.0)


def test_a_fit_agrees_at_every_width(compiled, widths, assert_close):
    """A 20-48-40-3 network, float64, where every product is on the micro-kernels: the widths
    train to the same weights to rounding, and each width's reruns are bit-identical."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((96, 20)), rng.integers(0, 3, 96)
    weights = {}
    for level in WIDTHS + ["avx512"]:
        widths(level)
        model = fnn.Sequential([fnn.Dense(20, 48, "relu"), fnn.Dense(48, 40, "tanh"), fnn.Dense(40, 3, "softmax")],
                               seed=0, dtype="float64")
        model.compile("sparse_categorical_crossentropy", fnn.Adam(learning_rate=0.01))
        with fnn.use_backend("cython"):
            model.fit(X, y, epochs=3, batch_size=16, verbose=0)
        got = np.concatenate([w.ravel() for w in model.get_weights()])
        if level in weights:
            np.testing.assert_array_equal(got, weights[level])
        weights[level] = got
    for level in ("avx2", "portable"):
        assert_close(weights[level], weights["avx512"], np.float64, scale=np.abs(weights["avx512"]).max())


@pytest.mark.parametrize("setting", ["0", "avx2", "avx512", ""])
def test_fastnn_simd_picks_the_paths(compiled, setting, tmp_path):
    """FASTNN_SIMD=0 the portable paths, avx2 no AVX-512, avx512 AVX-512 wherever the CPU has it,
    unset the default: AVX-512 where it runs at full width (not on AMD's cores before Zen 5, CPU
    family 26)."""
    import os
    import subprocess
    import sys
    code = "import fastnn._kernels as k; print(k._simd_level())"
    env = {**os.environ, "FASTNN_SIMD": setting}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True).stdout.strip()
    simd, wide = compiled._simd_available(), compiled._wide_available()
    info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    family = re.search(r"^cpu family\s*:\s*(\d+)", info, re.M)
    half_width = "AuthenticAMD" in info and (family is None or int(family.group(1)) < 26)
    expected = {"0": "portable", "avx2": "avx2" if simd else "portable",
                "avx512": "avx512" if wide else "avx2" if simd else "portable",
                "": "avx512" if wide and not half_width else "avx2" if simd else "portable"}[setting]
    assert out == expected
