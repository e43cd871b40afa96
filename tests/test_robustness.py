"""Nothing silent: data checked after the conversion to the model's dtype, targets in the loss's
domain, overflowing outputs reported, odd dtypes refused, saves that keep the file's mode and
links, copies that own their parameters, scikit-learn's zero-sum weights refused as it refuses
them. Each test provokes one class of the failures issue 18 lists."""
import copy
import os
import select
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn as fnn


def model(dtype="float32", out="sigmoid", loss="binary_crossentropy", n_out=1, hidden="tanh"):
    m = fnn.Sequential([fnn.Dense(2, 4, hidden), fnn.Dense(4, n_out, out)], seed=0, dtype=dtype)
    m.compile(loss, fnn.SGD(lr=0.1))
    return m


X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])


# ----------------------------------------------------------------------------- finite after the cast

def test_inputs_finite_in_float64_but_not_in_float32_are_refused(backend):
    m = model("float32")
    big = X.copy()
    big[1, 0] = 1e39  # inf once float32
    for call in (lambda: m.predict(big), lambda: m.fit(big, np.ones(4), verbose=0),
                 lambda: m.evaluate(big, np.ones(4))):
        with pytest.raises(ValueError, match=r"X holds values too large for float32"):
            call()
    assert model("float64").predict(big).shape == (4, 1)  # float64 holds it


def test_weights_finite_only_before_the_cast_or_complex_are_refused(backend):
    m = model("float32")
    weights = m.get_weights()
    weights[0] = np.full((2, 4), 1e300)
    with pytest.raises(ValueError, match=r"weights\[0\] must hold finite numbers.*float32"):
        m.set_weights(weights)
    with pytest.raises(ValueError, match="too large for float32"):
        m.layers[0].W = np.full((2, 4), 1e300)
    with pytest.raises(TypeError, match="real"):
        m.layers[1].b = np.array([1 + 2j])
    assert np.isfinite(m.network.params).all()


# ----------------------------------------------------------------------------- targets in the domain

@pytest.mark.parametrize("loss, out, n_out, y", [
    ("binary_crossentropy", "sigmoid", 1, np.array([0.0, 1.0, 2.0, -1.0])),
    ("categorical_crossentropy", "softmax", 2, np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [1.0, 0.0]])),
    ("poisson", "exp", 1, np.array([1.0, 0.0, -3.0, 2.0])),
])
def test_targets_outside_the_loss_domain_are_refused(backend, loss, out, n_out, y):
    m = model("float64", out=out, loss=loss, n_out=n_out)
    before = m.network.params.copy()
    with pytest.raises(ValueError, match=rf"y must lie in .* for {loss}"):
        m.fit(X, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(m.network.params, before)  # nothing was trained


# ----------------------------------------------------------------------------- overflow reported

def test_predict_and_evaluate_report_an_overflowing_network(backend):
    m = model("float32", out="softmax", loss="sparse_categorical_crossentropy", n_out=2, hidden="relu")
    m.set_weights([np.full((2, 4), 1e19), np.zeros(4), np.full((4, 2), 1e19) * [1, -1], np.zeros(2)])
    with pytest.raises(FloatingPointError, match="predict: the network's outputs overflowed"):
        m.predict(X)
    with pytest.raises(FloatingPointError, match="evaluate: the network's loss overflowed"):
        m.evaluate(X, np.array([0, 1, 0, 1]))


def test_fit_reports_a_last_step_that_makes_the_outputs_overflow(simd):
    """Every epoch's loss and weights are finite, but the weights of the last step overflow the
    float32 outputs (full batch: no batch after the last step meets them): fit raises instead of
    returning a model that predicts NaN."""
    rng = np.random.default_rng(0)
    X_big, y_big = rng.normal(size=(64, 3)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    lr, epochs, batch_size = 0.5, 6, None
    m = fnn.Sequential([fnn.Dense(3, 16, "relu"), fnn.Dense(16, 1, "linear")], seed=0)
    m.compile("mse", fnn.SGD(lr))
    with pytest.raises(fnn.TrainingDivergedError, match=r"diverged in its last epoch .* outputs overflow") as info:
        m.fit(X_big, y_big, epochs=epochs, batch_size=batch_size, verbose=0)
    losses = info.value.history.history["loss"]
    assert len(losses) == epochs and np.isfinite(losses).all()
    assert all(np.isfinite(w).all() for w in m.get_weights())
    with pytest.raises(FloatingPointError):
        m.predict(X_big)


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("dtype", [">f8", "<f2", "complex128", "int64"])
def test_odd_dtypes_are_refused(dtype):
    non_native = ">f8" if np.little_endian else "<f8"
    with pytest.raises(ValueError, match="dtype must be one of"):
        fnn.Sequential([fnn.Dense(2, 1)], dtype=non_native if dtype == ">f8" else dtype)


# ----------------------------------------------------------------------------- saves

def test_save_keeps_the_mode_of_the_file_it_replaces_and_writes_through_links(backend, tmp_path):
    m = model()
    path = tmp_path / "m.npz"
    m.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()  # a new file: the umask's
    os.chmod(path, 0o640)
    m.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    link = tmp_path / "link.npz"
    link.symlink_to(path)
    m.save(link)
    assert link.is_symlink() and fnn.load(link).get_weights()[0].shape == (2, 4)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*missing.* does not exist"):
        model().save(tmp_path / "missing" / "m.npz")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- shared state

def test_a_copy_owns_its_parameters_and_lock(backend):
    m = model()
    c = copy.copy(m)
    assert c.network.params is not m.network.params and c.network.lock is not m.network.lock
    c.fit(X, np.ones(4), epochs=3, verbose=0)
    assert not np.array_equal(c.network.params, m.network.params)
    assert all(np.shares_memory(layer.W, c.network.params) for layer in c.layers)  # c's layers view c's buffer
    assert not any(np.shares_memory(layer.W, m.network.params) for layer in c.layers)


# ----------------------------------------------------------------------------- scikit-learn's zero weights

@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_sklearn_zero_sum_sample_weights_raise_as_scikit_learn_does(backend, solver):
    pytest.importorskip("sklearn")
    from fastnn.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    Xs, ys = rng.random((20, 3)), rng.random(20)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        MLPRegressor(solver=solver, max_iter=5).fit(Xs, ys, sample_weight=np.zeros(20))


# ----------------------------------------------------------------------------- packaging

def test_the_package_is_marked_typed():
    assert (Path(fnn.__file__).parent / "py.typed").is_file()


def _read_all(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_build_without_the_kernels_says_so_on_the_terminal(tmp_path):
    """pip hides the output of a build that succeeds, and a build without the compiled kernels
    succeeds (the NumPy backend is installed). Built the way pip builds, with the output captured
    and the compiler failing (or Cython missing, where the tests' environment lacks it), the
    reason reaches the terminal the install runs in."""
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "fastnn", src / "fastnn", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    master, slave = os.openpty()
    terminal = os.ttyname(slave)
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_REQUIRE_EXTENSION"}
    env["CC"] = "/bin/false"
    try:
        result = subprocess.run([sys.executable, "setup.py", "-q", "build"], cwd=src, env=env, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=600, start_new_session=True,
                                preexec_fn=lambda: os.close(os.open(terminal, os.O_RDWR)))  # its terminal
        seen = _read_all(master).decode(errors="replace")
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 0, result.stderr
    for output in (seen, result.stderr):
        assert "fastnn's compiled kernels (fastnn._kernels) were NOT built:" in output
        assert "NumPy backend only" in output and "FASTNN_REQUIRE_EXTENSION=1" in output
    built = src / "build"
    assert list(built.glob("lib*/fastnn/network.py")) and not list(built.glob("lib*/fastnn/_kernels*.so"))


# ----------------------------------------------------------------------------- messages that name the argument

def test_messages_name_the_argument(backend):
    m = model()
    with pytest.raises(TypeError, match=r"callbacks must be a list of callbacks.*callbacks=\[EarlyStopping"):
        m.fit(X, np.ones(4), verbose=0, callbacks=fnn.EarlyStopping(monitor="loss"))
    with pytest.raises(ValueError, match="n_out must be at most"):
        fnn.Dense(2, 10 ** 30)
    with pytest.raises(TypeError, match="models must be fastnn.Sequential models, got NoneType"):
        fnn.fit_parallel([m, None], X, np.ones(4))
    with pytest.raises(ValueError, match=r"weights\[0\] could not be read as a numeric array"):
        m.set_weights([[[1.0, 2.0], [3.0]], np.zeros(4), np.zeros((4, 1)), np.zeros(1)])
    assert fnn.EarlyStopping(patience=np.int64(3)).patience == 3


def test_fit_from_its_own_callback_says_so(backend):
    m = model()

    def refit(epoch, logs):
        m.fit(X, np.ones(4), epochs=1, verbose=0)

    with pytest.raises(RuntimeError, match="while this model is being fitted in the same thread"):
        m.fit(X, np.ones(4), epochs=1, verbose=0, callbacks=[refit])
    m.fit(X, np.ones(4), epochs=1, verbose=0)  # and the model is free afterwards
