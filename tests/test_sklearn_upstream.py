"""scikit-learn's own tests of its MLP (sklearn/neural_network/tests/test_mlp.py of the installed
version), run against fastnn.sklearn: the module's source is read, its import line pointed at
fastnn.sklearn, and its tests collected here as ours.

Every test runs: the ones that reach private internals (test_fit sets _coef_grads and velocities,
test_gradient calls _loss_grad_lbfgs, others read _optimizer.learning_rate or
_no_improvement_count) find fastnn's estimators keeping the same names.
"""
import pathlib
import re

import pytest

sklearn = pytest.importorskip("sklearn")


UPSTREAM = pathlib.Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"


def _load():
    source = UPSTREAM.read_text()
    if IMPORT not in source:
        raise RuntimeError(f"{UPSTREAM} no longer imports the estimators as {IMPORT!r}: update this module")
    source = source.replace(IMPORT, "from fastnn.sklearn import MLPClassifier, MLPRegressor")
    namespace = {"__name__": __name__, "__file__": str(UPSTREAM)}
    exec(compile(source, str(UPSTREAM), "exec"), namespace)
    return namespace


_upstream = _load()
TESTS = sorted(name for name in _upstream if name.startswith("test_"))
for _name in TESTS:
    globals()[_name] = _upstream[_name]


@pytest.fixture(autouse=True)
def _on_each_backend(backend):
    """Every upstream test runs once per backend (conftest's parametrized `backend` fixture)."""
    yield


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest fixture, with its default seed."""
    return 42


def test_the_upstream_tests_are_collected():
    """The module really was found and read: a rename upstream must not silently run nothing."""
    assert len(TESTS) > 30
    assert _upstream["MLPClassifier"].__module__ == "fastnn.sklearn"
