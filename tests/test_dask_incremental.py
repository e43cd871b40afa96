"""dask-ml's Incremental wrapper trains fastnn.sklearn's estimators on a Dask array larger than one
chunk, on a LocalCluster: one partial_fit call per chunk, in chunk order, with the same result as
calling partial_fit on each chunk by hand (examples/dask_incremental.py is the long version).

dask, distributed and dask-ml are in the test extra, so a missing one fails these tests (it does not
skip them)."""
import importlib

import numpy as np
import pytest

N_ROWS, N_FEATURES, CHUNK_ROWS = 20_000, 8, 4_000  # 5 chunks
N_TEST = 5_000


def _require(module):
    """The module, imported; a test failure (not a skip, nor a collection error) when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        problem = f"{module} is not importable ({exc}); the test extra provides it: pip install \".[test]\""
    pytest.fail(problem, pytrace=False)


def _data(da, seed, n_rows, kind):
    """Standard normal float32 X in chunks of CHUNK_ROWS rows, and a target that needs the hidden layer:
    x0 * x1 + x2 (regressor), or whether it is > 0 (classifier). A linear model gets about 0.81
    accuracy and 0.50 R^2 on it."""
    X = da.random.default_rng(seed).standard_normal((n_rows, N_FEATURES), chunks=(CHUNK_ROWS, N_FEATURES),
                                                    dtype=np.float32)
    target = X[:, 0] * X[:, 1] + X[:, 2]
    return X, (target > 0).astype(np.int64) if kind == "classifier" else target


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_incremental_calls_partial_fit_once_per_chunk_in_order(kind):
    da = _require("dask.array")
    distributed = _require("distributed")
    Incremental = _require("dask_ml.wrappers").Incremental
    clone = _require("sklearn.base").clone
    fastnn_sklearn = _require("fastnn.sklearn")

    if kind == "classifier":
        estimator = fastnn_sklearn.MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0)
        scoring, fit_kwargs = "accuracy", {"classes": [0, 1]}
    else:
        estimator = fastnn_sklearn.MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0)
        scoring, fit_kwargs = "r2", {}

    # Worker threads of this process (processes=False): they start at once, where worker processes
    # take seconds to start and to import scikit-learn, fastnn and dask-ml. The example runs processes.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        X, y = client.persist(list(_data(da, 0, N_ROWS, kind)))
        X_test, y_test = _data(da, 1, N_TEST, kind)
        n_chunks = X.numblocks[0]
        assert X.numblocks == (5, 1) and y.numblocks == (5,)

        # shuffle_blocks=False: chunks 0, 1, ..., 4 in order (the default visits them in a random order).
        model = Incremental(estimator, scoring=scoring, shuffle_blocks=False).fit(X, y, **fit_kwargs)
        fitted = model.estimator_

        # Each partial_fit call is one epoch over the rows it gets: it appends one loss to loss_curve_
        # and adds its rows to t_. So n_chunks losses and N_ROWS rows is one call per chunk (one call on
        # all of X would leave 1 loss; two per chunk, 10 losses and twice the rows).
        assert len(fitted.loss_curve_) == n_chunks, fitted.loss_curve_
        assert fitted.t_ == N_ROWS
        assert not hasattr(estimator, "coefs_")  # Incremental trained a clone

        # The same calls by hand, in this process. Equal loss curves: the i-th call got chunk i.
        by_hand = clone(estimator)
        for i in range(n_chunks):
            by_hand.partial_fit(X.blocks[i].compute(), y.blocks[i].compute(), **fit_kwargs)
        # Exact: the same kernels, on the same float32 chunks, in the same order.
        np.testing.assert_array_equal(fitted.loss_curve_, by_hand.loss_curve_)
        for got, expected in zip(fitted.coefs_ + fitted.intercepts_, by_hand.coefs_ + by_hand.intercepts_):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)

        # It learned: above a linear model's 0.81 accuracy / 0.50 R^2 (it gets about 0.96 on both).
        if kind == "classifier":
            score = model.score(X_test, y_test)  # dask-ml's accuracy, chunk by chunk on the workers
        else:
            # dask-ml's own r2_score fails on Dask arrays with dask >= 2025.2 ("cannot broadcast
            # shape (nan,) to shape (nan,)", dask/dask-ml#1012): score NumPy arrays, with scikit-learn's.
            score = model.score(X_test.compute(), y_test.compute())
        assert score > 0.9, f"held-out {scoring} {score:.4f}"
