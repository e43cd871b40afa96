"""Train fastnn's scikit-learn classifier on a Dask array, one chunk at a time, with dask-ml's Incremental.

    python examples/dask_incremental.py                 # a LocalCluster: 2 worker processes, 1 thread each
    python examples/dask_incremental.py --threads       # the same 2 workers as threads of this process

dask_ml.wrappers.Incremental(estimator).fit(X, y) calls estimator.partial_fit(block_X, block_y) once
for every chunk of rows of X, one after the other, on whichever worker holds that chunk: the data
never has to fit in one process's memory. fastnn's MLPClassifier.partial_fit is one epoch over the
rows it is given, as scikit-learn's is. Needs `pip install "fastnn[dask]"` (dask, distributed, dask-ml).

The script then trains a second copy by calling partial_fit itself on the same chunks in the same
order, and checks that both end with the same weights: Incremental adds no training of its own.
"""
import argparse
import sys
import time

import numpy as np

N_ROWS, N_FEATURES, CHUNK_ROWS = 200_000, 20, 20_000  # 16 MB of float32 in 10 chunks
N_TEST = 20_000


def make_data(seed, n_rows):
    """X: standard normal float32 rows, in chunks of CHUNK_ROWS; y: 1 where x0 * x1 + x2 > 0, else 0
    (not linearly separable, so the hidden layer has something to learn)."""
    import dask.array as da

    X = da.random.default_rng(seed).standard_normal((n_rows, N_FEATURES), chunks=(CHUNK_ROWS, N_FEATURES),
                                                    dtype=np.float32)
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.int64)
    return X, y


def _import_on_worker():
    """Runs on each worker: import what the training tasks unpickle (the estimator, dask-ml's task)."""
    import dask_ml.wrappers  # noqa: F401
    import fastnn.sklearn  # noqa: F401


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", action="store_true",
                        help="run the 2 workers as threads of this process (processes=False)")
    args = parser.parse_args(argv)
    try:
        from dask_ml.wrappers import Incremental
        from distributed import Client, LocalCluster, wait
        from sklearn.base import clone
    except ImportError as exc:
        print(f"error: this example needs dask, distributed, scikit-learn and dask-ml ({exc}); "
              'install them with: pip install "fastnn[dask]"', file=sys.stderr)
        return 2
    from fastnn.sklearn import MLPClassifier

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=not args.threads,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        X, y = make_data(seed=0, n_rows=N_ROWS)
        X_test, y_test = make_data(seed=1, n_rows=N_TEST)
        # Compute the chunks once, on the workers, and keep them there for both trainings below.
        X, y = client.persist([X, y])
        wait([X, y])
        # A new worker process imports scikit-learn, fastnn and dask-ml when its first task needs
        # them (seconds); do that now, so that the time below is the training's.
        client.run(_import_on_worker)
        n_chunks = X.numblocks[0]

        estimator = MLPClassifier(hidden_layer_sizes=(32,), random_state=0)
        # shuffle_blocks=False: chunk 0, 1, 2, ... in order. Incremental's default (True) visits the
        # chunks in a random order, a new one each run unless random_state is set.
        model = Incremental(estimator, scoring="accuracy", shuffle_blocks=False)
        start = time.perf_counter()
        model.fit(X, y, classes=[0, 1])  # the keyword goes to every partial_fit call
        seconds = time.perf_counter() - start
        accuracy = model.score(X_test, y_test)  # predicts chunk by chunk on the workers
        fitted = model.estimator_  # the trained MLPClassifier (a clone of `estimator`)

        # Each partial_fit call is one epoch: one entry in loss_curve_, its rows added to t_.
        print(f"cluster: 2 workers, 1 thread each ({'threads' if args.threads else 'processes'})")
        print(f"data: {N_ROWS} x {N_FEATURES} float32 in {n_chunks} chunks of {CHUNK_ROWS} rows")
        print(f"Incremental.fit: {len(fitted.loss_curve_)} partial_fit calls, {fitted.t_} rows, {seconds:.2f} s")
        print(f"held-out accuracy ({N_TEST} rows): {accuracy:.4f}")

        # The same training by hand: partial_fit on each chunk, in the same order, in this process.
        by_hand = clone(estimator)
        start = time.perf_counter()
        for i in range(n_chunks):
            by_hand.partial_fit(X.blocks[i].compute(), y.blocks[i].compute(), classes=[0, 1])
        seconds = time.perf_counter() - start
        print(f"partial_fit by hand: {n_chunks} calls, {seconds:.2f} s (the time includes fetching the chunks)")

        pairs = list(zip(fitted.coefs_ + fitted.intercepts_, by_hand.coefs_ + by_hand.intercepts_))
        if all(np.array_equal(a, b) for a, b in pairs):
            print("weights: identical to the hand-made loop's, bit for bit")
        else:
            difference = max(float(np.max(np.abs(a - b))) for a, b in pairs)
            print(f"weights: differ from the hand-made loop's by up to {difference:.3g}")
            return 1
    return 0


if __name__ == "__main__":  # required: worker processes are spawned and re-import this file
    sys.exit(main())
