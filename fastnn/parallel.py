"""Several models trained at once: fit_parallel.

fit's kernels run without the GIL, so N models fit in N Python threads really run in parallel.
Each fit then uses one thread and a one-thread BLAS (fastnn.threads), so N threads never start
N × cores threads.
"""
import contextlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterator, Optional, Sequence

from .threads import one_thread_blas, one_thread_each
from .trainer import Data


def fit_parallel(models: Sequence, X, y, n_jobs: Optional[int] = None, **fit_kwargs) -> list:
    """Fit each model on (X, y) in its own thread, each with a one-thread BLAS and, where there are
    enough cores, a core of its own; returns the Histories in the models' order. The result equals
    fitting the models one after the other.
    n_jobs: threads at once (default: the number of CPUs). fit_kwargs go to every model.fit.
    Ctrl-C stops every worker's fit after its current batch and raises KeyboardInterrupt once
    all have stopped; the models are free for another fit."""
    from .validation import check_positive_int
    models = list(models)
    if len({id(m) for m in models}) != len(models):
        raise ValueError("models must be distinct: one model cannot be fitted in two threads at once")
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else check_positive_int("n_jobs", n_jobs)
    fit_kwargs.setdefault("verbose", 0)
    workers = min(n_jobs, max(len(models), 1))
    prepared = {}
    data = [_data(m, X, y, prepared) for m in models]
    with one_thread_blas(), _workers(workers) as pool:
        futures = [pool.submit(_fit_on_one_thread, m, d, fit_kwargs) for m, d in zip(models, data)]
        try:
            wait(futures)  # every fit ends before the BLAS limit is lifted, also when one of them raised
        except BaseException:  # Ctrl-C in this thread: the workers' fits stop after their current batch
            for f in futures:
                f.cancel()
            for m in models:
                m.network.stop[0] = 1
            wait(futures)
            raise
        finally:
            for m in models:
                m.network.stop[0] = 0
        return [f.result() for f in futures]


def _fit_on_one_thread(model, data: Data, fit_kwargs: dict):
    with one_thread_each():
        return model.fit(data, None, **fit_kwargs)


def _data(model, X, y, prepared: dict) -> Data:
    """(X, y) as model.fit would check and convert them, done once per kind of model: a worker that
    checks the shared data holds the GIL for it (a NaN scan of X), which the other workers wait for."""
    if not hasattr(model, "network") or not hasattr(model, "loss"):
        raise TypeError(f"models must be fastnn.Sequential models, got {type(model).__name__}")
    if model.loss is None:
        raise RuntimeError("call model.compile(loss, optimizer) before fit_parallel([model, ...], ...)")
    kind = Data.kind_of(model)
    if kind not in prepared:
        prepared[kind] = Data.for_model(model, X, y)
    return prepared[kind]


# Worker threads kept from one fit_parallel call to the next, by (workers, the caller's cores):
# starting threads costs a sizeable part of a small fit (bench/bench_parallel.py). A process
# forked from this one has none of these threads: it starts with no pools.
_POOL_PREFIX = "fastnn-fit_parallel"
_pools: dict = {}
_pools_lock = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pools.clear)


@contextlib.contextmanager
def _workers(workers: int) -> Iterator[ThreadPoolExecutor]:
    """The kept pool of `workers` threads for the caller's cores; a pool of its own, shut down
    afterwards, for a call from inside a worker (waiting on its own pool could deadlock)."""
    cores = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_setaffinity") else ()
    if threading.current_thread().name.startswith(_POOL_PREFIX):
        with ThreadPoolExecutor(max_workers=workers, initializer=_one_core_each(workers, cores)) as pool:
            yield pool
        return
    with _pools_lock:
        pool = _pools.get((workers, cores))
        if pool is None:
            pool = _pools[(workers, cores)] = ThreadPoolExecutor(
                max_workers=workers, initializer=_one_core_each(workers, cores), thread_name_prefix=_POOL_PREFIX)
    yield pool


def _one_core_each(workers: int, cores: tuple) -> Optional[Callable[[], None]]:
    """An initializer that keeps each worker thread on a core of its own among `cores` (the caller's;
    empty where affinity cannot be set), when there are enough.

    Left to Linux, both threads of a two-model fit_parallel often shared one core for much of their
    run (most likely the scheduler placing a thread woken to take the GIL next to the thread that
    handed it over on entering its kernel), which bench/bench_parallel.py shows as a slower group.
    Where affinity cannot be set, or there are fewer cores than workers, threads are left where
    the OS puts them."""
    if workers < 2 or len(cores) < workers:
        return None
    free = queue.SimpleQueue()
    for core in cores[:workers]:
        free.put(core)
    return lambda: os.sched_setaffinity(0, {free.get()})  # 0: the calling (worker) thread
