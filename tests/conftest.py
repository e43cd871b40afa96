"""Shared fixtures: every numerical test runs on both backends through the `backend` fixture.

- `backend`: the kernel module (fastnn._kernels or fastnn._fallback), active for the whole test.
  Without a compiled build the "cython" case is skipped, or fails when FASTNN_REQUIRE_EXTENSION=1
  (CI), or when a compiled file is present but does not import (a broken build is never a skip).
- `compiled`, `both_backends`: fastnn._kernels, or both modules, for tests that compare or probe them.
- `dtype`: float32 and float64.  `assert_close`: the suite's tolerances.
- `make_call`: random valid arguments for any kernel, for the tests that treat kernels generically.
"""
import copy
import dataclasses
import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pytest

import fastnn
import fastnn.backend as fnn_backend
from fastnn import data as fnn_data
from fastnn import _fallback
from fastnn._contract import (ADAM, CATEGORICAL_CROSSENTROPY, COSINE, LINEAR, MEAN_ABSOLUTE_ERROR, SGD, SIGMOID,
                              SPARSE_TOP_K_CATEGORICAL_ACCURACY, TOP_K_CATEGORICAL_ACCURACY, TrainingRun, Update)

PACKAGE_DIR = Path(fastnn.__file__).resolve().parent
REQUIRE_EXTENSION = os.environ.get("FASTNN_REQUIRE_EXTENSION", "").strip().lower() in {"1", "true", "yes", "on"}
BACKEND_AT_IMPORT = fastnn.get_backend()
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


# ----------------------------------------------------------------------------- which fastnn is tested

def _compiled_files():
    return sorted(p.name for p in PACKAGE_DIR.glob("_kernels*") if p.suffix in (".so", ".pyd"))


def _compiled_problem():
    """None when fastnn._kernels is importable; otherwise (why not, whether that is a broken build)."""
    if "cython" in fastnn.available_backends():
        return None
    error = getattr(fnn_backend, "_IMPORT_ERROR", None)
    if _compiled_files():
        return f"fastnn._kernels was built ({', '.join(_compiled_files())}) but does not import: {error}", True
    return f"the compiled extension fastnn._kernels wasn't built (nothing in {PACKAGE_DIR}): {error}", False


def _shadowing_problem():
    """When fastnn is installed (not editable), the tests must import that copy, not the source folder."""
    try:
        installed = Path(importlib.metadata.distribution("fastnn").locate_file("fastnn/__init__.py"))
    except importlib.metadata.PackageNotFoundError:
        return None  # a development run (PYTHONPATH=.): the source folder is the package
    if not installed.is_file() or installed.resolve() == Path(fastnn.__file__).resolve():
        return None  # editable install, or the installed copy is the one imported
    return (f"the tests imported fastnn from {fastnn.__file__}, but fastnn is installed at {installed}: "
            "the source folder shadows the built package. From the repository root run `pytest` "
            "(pyproject.toml sets --import-mode=importlib), not `python -m pytest`, which puts the "
            "current directory on sys.path; and do not put the checkout on PYTHONPATH")


def pytest_sessionstart(session):
    problem = _shadowing_problem()
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_report_header(config):
    problem = _compiled_problem()
    kernels = fnn_backend._MODULES.get("cython")
    return [f"fastnn: {fastnn.__file__}",
            f"fastnn backend: {fastnn.get_backend()} (available: {', '.join(fastnn.available_backends())}; "
            f"FASTNN_REQUIRE_EXTENSION={'1' if REQUIRE_EXTENSION else 'unset'})",
            f"fastnn._kernels: {kernels.__file__ if kernels is not None else problem[0]}"]


def require_compiled():
    """Skip the calling test when the extension is missing; fail instead under
    FASTNN_REQUIRE_EXTENSION=1 or when a compiled file exists but does not import."""
    problem = _compiled_problem()
    if problem is not None:
        reason, broken = problem
        if REQUIRE_EXTENSION or broken:
            pytest.fail(reason)
        pytest.skip(reason)
    return fnn_backend._MODULES["cython"]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(params=["cython", "python"], ids=["cython", "python"])
def backend(request):
    """The kernel module of one backend, which is also the active backend during the test."""
    if request.param == "cython":
        require_compiled()
    with fastnn.use_backend(request.param):
        yield fnn_backend.ops()


@pytest.fixture(params=[True, False], ids=["simd", "portable"])
def simd(request, backend):
    """The compiled backend with its micro-kernels and lanes on (where the CPU has them) and off;
    the pure-Python backend has none, and runs the same checks both times."""
    if hasattr(backend, "_set_simd"):
        previous = backend._set_simd(request.param)
        yield request.param
        backend._set_simd(previous)
    else:
        yield request.param


@pytest.fixture
def compiled():
    """fastnn._kernels (skip or fail as `backend` does when it is missing)."""
    return require_compiled()


@pytest.fixture
def both_backends():
    """For tests that compare the backends: {"cython": _kernels, "python": _fallback}."""
    return {"cython": require_compiled(), "python": _fallback}


@pytest.fixture(scope="session")
def backend_at_import():
    return BACKEND_AT_IMPORT


@pytest.fixture(autouse=True)
def _backend_is_restored():
    """No test may leave another backend active than the one it found."""
    before = fastnn.get_backend()
    yield
    assert fastnn.get_backend() == before, "the test changed the active backend without restoring it"


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


def _assert_close(actual, expected, dtype, scale=0.0):
    """|actual - expected| <= rtol (|expected| + scale) + tiny, elementwise.

    rtol is 1e-12 for float64 and 1e-5 for float32. `scale` (scalar or broadcastable) is the
    magnitude of the terms summed to get `expected` (e.g. |X| @ |W| for X @ W), so a result that
    cancels to near 0 is held to an absolute error relative to its terms, as rounding allows.
    `tiny` (the dtype's smallest normal number) accepts underflow to 0 or to a subnormal.
    """
    dtype = np.dtype(dtype)
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    bound = RTOL[dtype] * (np.abs(expected) + scale) + np.finfo(dtype).tiny
    error = np.abs(actual - expected)
    bad = ~(error <= bound)  # NaN counts as bad
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(error, nan=np.inf), -1.0)), bad.shape)
        raise AssertionError(f"{bad.sum()} of {bad.size} elements differ beyond rtol={RTOL[dtype]:g} "
                             f"(scaled); e.g. at {i}: got {actual[i]!r}, expected {expected[i]!r}")


@pytest.fixture
def assert_close():
    return _assert_close


def _make_call(name, dtype, rng, batch=5, n_in=4, n_out=3, activation=SIGMOID):
    """Random valid arguments (a dict in parameter order) for kernel `name`, and the names of the
    arrays it writes. A = f(Z) and softmax/probability inputs are realistic, labels are in range.
    train_epochs gets a network n_in -> 4 (activation) -> n_out (logits), categorical
    cross-entropy, Adam, an L2 penalty, two metrics, dropout on both layers' inputs, kernel
    penalties, two shuffled epochs of `batch` weighted rows in mini-batches of 2. Some loss calls pass sample_weight, some leave it out."""
    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    def zeros(*shape):
        return np.zeros(shape, dtype)

    Z = rand(batch, n_out, scale=3.0)
    A = zeros(batch, n_out)
    _fallback.activate(Z, activation, A)
    X, W, b = rand(batch, n_in), rand(n_in, n_out), rand(n_out)
    Y = rng.uniform(size=(batch, n_out)).astype(dtype)
    labels = rng.integers(0, n_out, size=batch, dtype=np.int64)
    weights = rng.uniform(0.5, 2.0, size=batch).astype(dtype)
    n_flat = n_in * n_out + n_out  # length of a flat parameter buffer
    n_net = n_in * 4 + 4 + 4 * n_out + n_out  # the parameters of train_epochs' n_in -> 4 -> n_out network
    calls = {
        "activate": (dict(Z=Z, activation=activation, out=zeros(batch, n_out)), ["out"]),
        "activation_grad": (dict(A=A, dA=rand(batch, n_out), activation=activation,
                                 out=zeros(batch, n_out)), ["out"]),
        # (bfloat16 rounding is of float32 only, whatever dtype the test asks for)
        "round_bfloat16": (dict(a=rand(n_flat).astype(np.float32), out=np.zeros(n_flat, np.float32)), ["out"]),
        "dense_forward": (dict(X=X, W=W, b=b, activation=activation, out=zeros(batch, n_out)), ["out"]),
        "dense_backward": (dict(X=X, W=W, A=A, dA=rand(batch, n_out), activation=activation,
                                dZ=zeros(batch, n_out), dW=zeros(n_in, n_out), db=zeros(n_out),
                                dX=zeros(batch, n_in)), ["dZ", "dW", "db", "dX"]),
        "sigmoid_bce": (dict(Z=Z, Y=Y, dZ=zeros(batch, n_out)), ["dZ"]),
        "softmax_cce": (dict(Z=Z, Y=Y, dZ=zeros(batch, n_out)), ["dZ"]),
        "softmax_sparse_cce": (dict(Z=Z, labels=labels, dZ=zeros(batch, n_out), sample_weight=weights), ["dZ"]),
        "mse": (dict(A=A, Y=Y, dA=zeros(batch, n_out), sample_weight=weights), ["dA"]),
        "poisson_nll": (dict(Z=Z, Y=np.round(3 * Y), dZ=zeros(batch, n_out)), ["dZ"]),
        "binary_correct": (dict(Z=Z, Y=np.round(Y)), []),
        "categorical_correct": (dict(Z=Z, Y=Y), []),
        "sparse_correct": (dict(Z=Z, labels=labels), []),
        "optimizer_step": (dict(update=Update(optimizer=ADAM, lr=0.01, eps=1e-8, clipnorm=0.5, m=rand(n_flat),
                                              v=rand(n_flat) ** 2),
                                params=rand(n_flat), grads=rand(n_flat), step=3, sizes=np.array([n_in, n_out])),
                           ["update.m", "update.v", "params", "grads"]),
        "scheduled_lr": (dict(update=Update(optimizer=SGD, lr=0.0, schedule=COSINE,
                                            schedule_args=np.array([0.0, 10.0, 0.1, 0.5, 3.0])), step=2), []),
        "metric_sum": (dict(P=A, Y=Y, metric=MEAN_ABSOLUTE_ERROR, k=2), []),
        "sparse_metric_sum": (dict(P=A, labels=labels, metric=SPARSE_TOP_K_CATEGORICAL_ACCURACY, k=2), []),
        "train_epochs": (dict(run=TrainingRun(sizes=np.array([n_in, 4, n_out]), codes=np.array([activation, LINEAR]),
                                              params=rand(n_net, scale=0.5), grads=zeros(n_net),
                                              loss=CATEGORICAL_CROSSENTROPY, X=X, Y=Y / Y.sum(axis=1, keepdims=True),
                                              sample_weight=weights, batch=2, l2=0.1,
                                              update=Update(optimizer=ADAM, lr=0.01, m=zeros(n_net), v=zeros(n_net)),
                                              metrics=np.array([MEAN_ABSOLUTE_ERROR, TOP_K_CATEGORICAL_ACCURACY]),
                                              top_k=2, dropout=np.array([0.25, 0.5]), dropout_seed=3,
                                              penalties=np.array([[0.01, 0.02], [0.0, 0.03]])),
                              order=np.stack([rng.permutation(batch) for _ in range(2)]), step=0,
                              epoch_loss=np.zeros(2), epoch_correct=np.zeros(2, np.int64),
                              epoch_metrics=np.zeros((2, 2))),
                         ["run.params", "run.grads", "run.update.m", "run.update.v", "epoch_loss", "epoch_correct",
                          "epoch_metrics"]),
        "network_predict": (dict(sizes=np.array([n_in, 4, n_out]), codes=np.array([activation, LINEAR]),
                                 params=rand(n_net), X=X, out=zeros(batch, n_out), rows=2, threads=2), ["out"]),
        "shuffle_orders": (dict(key=rng.integers(0, 2**32, 624, dtype=np.uint32), pos=int(rng.integers(0, 625)),
                                sample_idx=rng.permutation(batch), order=np.zeros((3, batch), np.int64)),
                           ["key", "order"]),
        "step_path": (dict(run=TrainingRun(sizes=np.array([n_in, 4, n_out]), codes=np.array([activation, LINEAR]),
                                           params=rand(n_net), grads=zeros(n_net), loss=CATEGORICAL_CROSSENTROPY,
                                           X=X, Y=Y, batch=2)), []),
    }
    if name not in calls:
        pytest.fail(f"tests/conftest.py has no example arguments for kernel {name!r}: add them to make_call")
    return calls[name]


@pytest.fixture
def make_call():
    return _make_call


def _loss_targets(loss, rng, n, n_out):
    """Random targets y for a loss name: labels, one-hot rows, 0/1, counts or reals, (n, n_out)."""
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, n_out, n)
    if loss == "categorical_crossentropy":
        return fnn_data.one_hot(rng.integers(0, n_out, n), n_out)
    if loss == "binary_crossentropy":
        return (rng.random((n, n_out)) > 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(1.5, size=(n, n_out)).astype(float)
    return rng.normal(size=(n, n_out))


@pytest.fixture
def loss_targets():
    return _loss_targets


def kernel_names():
    """The contract's kernels: the public functions defined in fastnn._fallback's files."""
    return sorted(name for name, obj in vars(_fallback).items()
                  if callable(obj) and not name.startswith("_")
                  and getattr(obj, "__module__", "").startswith(_fallback.__name__ + "."))


def _copy_args(args):
    """A deep copy of a kernel call's arguments (a TrainingRun holds arrays the call writes)."""
    return copy.deepcopy(args)


def _arrays_of(args):
    """{name: array} of every array in a kernel call's arguments, those inside a TrainingRun and
    its Update named "run.X", "run.update.m", ..."""
    found = {}

    def visit(prefix, value):
        if isinstance(value, np.ndarray):
            found[prefix] = value
        elif dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                visit(f"{prefix}.{field.name}", getattr(value, field.name))

    for name, value in args.items():
        visit(name, value)
    return found


@pytest.fixture
def call_arrays():
    """(copy_args, arrays_of): a deep copy of a kernel call's arguments, and {name: array} of the
    arrays in them, those inside a TrainingRun named "run.X", "run.update.m", ..."""
    return _copy_args, _arrays_of


def pytest_generate_tests(metafunc):
    """A test with a `kernel_name` argument runs once for every kernel of the contract."""
    if "kernel_name" in metafunc.fixturenames:
        metafunc.parametrize("kernel_name", kernel_names())
