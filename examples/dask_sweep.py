"""A grid search of fastnn's scikit-learn classifier, run on a Dask cluster through joblib.

    python examples/dask_sweep.py                                  # a local cluster: 2 worker processes
    python examples/dask_sweep.py --workers 4
    python examples/dask_sweep.py --scheduler tcp://10.0.0.5:8786  # a cluster that is already running

GridSearchCV hands each (parameters, fold) fit to joblib; under joblib's "dask" backend those fits
run on the cluster's workers, which must have the same fastnn installed (`pip install "fastnn[dask]"`).
The data is scikit-learn's bundled digits set, so nothing is downloaded.
"""
import argparse
import sys
import time

# 4 grid points x 3 folds = 12 fits of a few seconds' work in all.
PARAM_GRID = {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]}


def _fastnn_version():
    """Runs on each worker: which fastnn it imports (a missing one would fail later, as an
    unpickling error deep inside a fit)."""
    try:
        import fastnn
    except ImportError as exc:
        return f"not importable ({exc})"
    return fastnn.__version__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", metavar="ADDRESS", help="connect to this Dask scheduler instead of "
                        "starting a local cluster")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per local worker (default 1)")
    args = parser.parse_args(argv)

    try:
        import joblib
        from distributed import Client, LocalCluster, get_task_stream
        from sklearn.datasets import load_digits
        from sklearn.model_selection import GridSearchCV
    except ImportError as exc:
        print(f"error: this example needs dask, distributed and scikit-learn ({exc}); "
              'install them with: pip install "fastnn[dask]"', file=sys.stderr)
        return 2
    import fastnn
    from fastnn.sklearn import MLPClassifier  # the one line that differs from scikit-learn's example

    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        # Worker processes, not threads, as on a real cluster. Dask starts each worker with a
        # one-thread BLAS, so workers x threads fits share the cores without oversubscription.
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        versions = client.run(_fastnn_version)
        wrong = {worker: v for worker, v in versions.items() if v != fastnn.__version__}
        if wrong:
            print(f"error: the workers must run fastnn {fastnn.__version__}, as this client does; "
                  f"found: {wrong}", file=sys.stderr)
            return 2
        print(f"cluster: {len(versions)} workers, {sum(client.nthreads().values())} threads "
              f"({args.scheduler or 'LocalCluster'})")

        X, y = load_digits(return_X_y=True)
        # max_iter 400: room for every grid point to converge (at the default 200 some stop early, and
        # each worker prints a ConvergenceWarning).
        search = GridSearchCV(MLPClassifier(max_iter=400, random_state=0), param_grid=PARAM_GRID, cv=3,
                              n_jobs=-1)  # -1: as many fits at once as the cluster has threads
        start = time.perf_counter()
        with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
            search.fit(X, y)
        seconds = time.perf_counter() - start

        workers_used = {task["worker"] for task in tasks.data}
        print(f"{len(search.cv_results_['params'])} parameter sets x 3 folds, fitted on "
              f"{len(workers_used)} worker(s) in {seconds:.1f} s")
        print(f"best parameters: {search.best_params_}")
        print(f"best CV score: {search.best_score_:.4f}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


if __name__ == "__main__":  # required: worker processes are spawned and re-import this file
    sys.exit(main())
