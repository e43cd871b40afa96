"""The lesson's XOR network: it learns with the default seed on both backends, the backends agree,
and `python -m fastnn xor` prints what it should."""
import subprocess
import tempfile
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.lesson import XOR_SEED, xor_model


def test_default_seed_learns_xor(backend):
    X, y = fnn.data.xor()
    model = xor_model(seed=XOR_SEED)
    history = model.fit(X, y, epochs=10_000, batch_size=None, verbose=0)
    np.testing.assert_array_equal(model.predict(X).round(), y)
    assert history.history["loss"][-1] < 0.01


def test_backends_agree_after_training(both_backends):
    """10,000 epochs on each backend end at the same weights (float64, 1e-10 relative)."""
    X, y = fnn.data.xor()
    weights = {}
    for name in ("cython", "python"):
        with fnn.use_backend(name):
            model = xor_model(seed=XOR_SEED)
            model.fit(X, y, epochs=10_000, batch_size=None, verbose=0)
            weights[name] = model.get_weights()
    for wc, wp in zip(weights["cython"], weights["python"]):
        np.testing.assert_allclose(wc, wp, rtol=1e-10, atol=1e-12)


def run_cli(*args):
    # Run outside the checkout: from the repository root, `python -m fastnn` would import the
    # source folder (no extension in it) instead of the installed package.
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), timeout=600)


@pytest.mark.parametrize("name", ["cython", "python"])
def test_cli_xor(both_backends, name):
    result = run_cli("xor", "--backend", name)
    assert result.returncode == 0, result.stderr
    assert f"backend: {name}" in result.stdout
    assert "learned XOR" in result.stdout
    assert result.stdout.count(" ok") == 4


def test_cli_xor_explain(both_backends):
    result = run_cli("xor", "--explain")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("=== step 1", "=== step 2", "z = w·x + b", "loss: L =", "δ per pattern", "w ← w − η·∂L/∂w",
                 "how the loss fell", "epoch  10000"):
        assert text in out, text


def test_cli_reports_a_stuck_start(both_backends):
    """Too few epochs: the table shows wrong rows and the exit status says so."""
    result = run_cli("xor", "--epochs", "10")
    assert result.returncode == 1
    assert "did NOT learn XOR" in result.stdout


def test_cli_demo(both_backends):
    result = run_cli("demo", "--backend", "cython")
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines()[1:] if l.strip()]
    assert len(lines) == 3
    for line in lines:
        train_acc = float(line.split()[-3])
        assert train_acc > 0.6, line
