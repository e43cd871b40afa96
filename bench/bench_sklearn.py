"""fastnn.sklearn's MLPClassifier against scikit-learn's own: the one-import change.

- "sklearn digits adam" / "sklearn digits lbfgs": scikit-learn's bundled digits data (no download),
  a fixed train_test_split(random_state=0), MLPClassifier(hidden_layer_sizes=(64,), random_state=0),
  one BLAS thread on one core, and two BLAS threads (at these shapes the second thread can cost
  more than it gives). The rate is per epoch (per L-BFGS iteration): fit time / n_iter_, so
  the ratio does not depend on where each stopping rule fired. fastnn must score within one point
  of scikit-learn's test accuracy (or better), and above 0.9.
- "... interleaved": the same three fits in turn in every round, each row's note the median of
  the per-round ratios of fastnn's rate over scikit-learn's: rows timed one after the other on a
  shared host do not see the same machine, and scikit-learn's epoch time moves between runs
  (docs/performance.md). Every fit must score above 0.9 here too.
- "sklearn gridsearch threads": GridSearchCV of fastnn's classifier with n_jobs=2 under joblib's
  threading backend and with n_jobs=1, in turn in every round, each model on a one-thread BLAS:
  fits release the GIL, so two run at once in one process. The note gives the median of the
  per-round ratios. Both searches must find the same scores.
"""
import functools

import numpy as np
import pytest

# scikit-learn is a peer here, and fastnn.sklearn builds on its base classes: no rows without it.
pytest.importorskip("sklearn")

import joblib  # noqa: E402  (installed with scikit-learn)
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, ParameterGrid, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402

from common import interleaved, record, threads  # noqa: E402

# The default estimator computes in float64 as scikit-learn does (digits is float64); dtype="float32"
# is fastnn's fast path.
IMPLS = {"fastnn.sklearn": MLPClassifier, "fastnn.sklearn float32": functools.partial(MLPClassifier, dtype="float32"),
         "scikit-learn": SklearnMLPClassifier}
PARAMS = dict(hidden_layer_sizes=(64,), random_state=0)
SOLVERS = [("adam", "epoch"), ("lbfgs", "iteration")]
GRID = {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]}
QUICK_GRID = {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4]}


@functools.cache
def digits():
    """X_train, X_test, y_train, y_test."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, random_state=0)


@functools.cache
def sklearn_accuracy(solver: str) -> float:
    """scikit-learn's test accuracy, the bar for fastnn's (an untimed fit of its own, so each row
    can run alone, e.g. with -k)."""
    X_train, X_test, y_train, y_test = digits()
    with threadpool_limits(1):
        return SklearnMLPClassifier(solver=solver, **PARAMS).fit(X_train, y_train).score(X_test, y_test)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("solver, unit", SOLVERS, ids=[s for s, _ in SOLVERS])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_digits(benchmark, rounds, solver, unit, impl, n_threads):
    benchmark.group = f"sklearn digits {solver}, {n_threads} BLAS thread{'s' if n_threads > 1 else ''}"
    X_train, X_test, y_train, y_test = digits()
    estimator = IMPLS[impl]

    with threads(n_threads):
        fitted = record(benchmark, lambda: estimator(solver=solver, **PARAMS).fit(X_train, y_train),
                        rounds, 1, unit, impl)
    # n_iter_ is known only after a fit; it is the same every round (random_state=0).
    benchmark.extra_info["units"] = fitted.n_iter_
    accuracy = fitted.score(X_test, y_test)
    benchmark.extra_info["note"] = f"test accuracy {accuracy:.3f} after {fitted.n_iter_} {unit}s"
    assert accuracy > 0.9, f"{impl} {solver}: test accuracy {accuracy:.3f}"
    if impl.startswith("fastnn"):
        bar = sklearn_accuracy(solver)
        assert accuracy >= bar - 0.01, f"fastnn {solver}: test accuracy {accuracy:.3f}, scikit-learn {bar:.3f}"


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("solver, unit", SOLVERS, ids=[s for s, _ in SOLVERS])
def test_digits_interleaved(benchmark, rounds, solver, unit, n_threads):
    benchmark.group = (f"sklearn digits {solver}, {n_threads} BLAS thread{'s' if n_threads > 1 else ''}, "
                       "interleaved")
    X_train, X_test, y_train, y_test = digits()

    def fit(impl):
        return lambda: IMPLS[impl](solver=solver, **PARAMS).fit(X_train, y_train)

    with threads(n_threads):
        units = {impl: fit(impl)().n_iter_ for impl in IMPLS}  # untimed: the epochs (iterations) of each
        fitted, _ = interleaved(benchmark, {impl: (fit(impl), units[impl]) for impl in IMPLS}, 2 * rounds, unit,
                                pairs=[(impl, "scikit-learn") for impl in IMPLS if impl != "scikit-learn"])
    for impl, estimator in fitted.items():
        accuracy = estimator.score(X_test, y_test)
        assert accuracy > 0.9, f"{impl} {solver}: test accuracy {accuracy:.3f}"


@pytest.mark.benchmark(group="sklearn gridsearch threads")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # some grid points stop at max_iter
def test_gridsearch_threads(benchmark, rounds, quick):
    X, _, y, _ = digits()
    grid = QUICK_GRID if quick else GRID
    n_fits = 3 * len(ParameterGrid(grid))
    max_iter = 50 if quick else 200  # a quick pass measures the scaling, not convergence

    def search(n_jobs):
        def run():
            # threadpool_limits is process-wide: set once around the search, it holds for every fit.
            with joblib.parallel_config(backend="threading"), threadpool_limits(1):
                return GridSearchCV(MLPClassifier(max_iter=max_iter, random_state=0), grid, cv=3,
                                    n_jobs=n_jobs).fit(X, y)
        return run, n_fits

    results, _ = interleaved(benchmark, {"n_jobs=2, threading": search(2), "n_jobs=1": search(1)},
                             max(2, min(rounds, 3)) if quick else 2 * rounds, "fit")
    two, one = results["n_jobs=2, threading"], results["n_jobs=1"]
    assert 0.85 < one.best_score_ <= 1.0, f"best CV score {one.best_score_:.3f}"
    # Each fit is seeded and single-threaded: running two at once must not change a score.
    np.testing.assert_array_equal(two.cv_results_["mean_test_score"], one.cv_results_["mean_test_score"])
