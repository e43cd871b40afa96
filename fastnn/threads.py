"""How many threads fastnn uses, and how: `set_num_threads(n, pool=False)`.

By default the matrix products of large layers run on BLAS's threads (n of them once
set_num_threads was called) and everything else on the calling thread. With pool=True the
training step of a large network, and predict on many rows, are shared instead by a pool of
fastnn's own threads (the compiled kernels' "pool" path): each worker computes pieces of the
layers' products through a one-thread BLAS, so while such a step runs, BLAS is held to one
thread. The pool is faster when other programs compete for the cores (a whole BLAS product waits
for its slower half); on an idle machine OpenBLAS's threads, which share the packed operands of
a product, were faster at the shapes measured (docs/performance.md). With the pool, a fit or
predict started from the main thread uses its n threads; one started from another thread (a
thread-backed grid search, a Dask worker, fit_parallel's workers) uses one, so that several fits in
parallel never oversubscribe the cores. get_num_threads reports n once set_num_threads was called
(one in fit_parallel's workers), else the cores this process may use for the main thread and one
for any other.

BLAS thread counts are controlled through threadpoolctl.
"""
import contextlib
import os
import threading
from typing import Iterator, Optional

import numpy as np

_setting: Optional[int] = None  # set_num_threads' count, once called
_pool = False                   # set_num_threads' pool
_local = threading.local()      # .threads: the count of fits in a thread marked by one_thread_each


def _threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        raise ImportError("controlling BLAS threads needs threadpoolctl, a dependency of fastnn: "
                          "pip install threadpoolctl") from None
    return threadpoolctl


_original = None  # the limit set by set_num_threads' first call: restoring it gives BLAS its limit of before
_controller = None
_controller_lock = threading.Lock()
# fastnn's changes of the BLAS limit, one at a time (_changing_blas)
_blas_lock = threading.Lock()


def _blas():
    """threadpoolctl's handle on the loaded BLAS libraries, made once: finding them costs more than
    a small fit (bench/bench_parallel.py times fit_parallel). fastnn's kernels call SciPy's BLAS,
    which is loaded with them, so it is always among those found."""
    global _controller
    with _controller_lock:  # two first calls at once would each make one
        if _controller is None:
            _controller = _threadpoolctl().ThreadpoolController()
    return _controller


@contextlib.contextmanager
def _changing_blas() -> Iterator[None]:
    """Hold while changing the process-wide BLAS limit, from any thread.

    threadpoolctl (3.8 and later) lets only the first thread that changed OpenBLAS's limit change it
    again while that thread lives; the others' changes silently do nothing. So a fit_parallel
    call whose limit was set from one thread and lifted from another left BLAS at one thread.
    fastnn's changes are made one at a time under _blas_lock, each taking control for itself and
    giving it back."""
    clear = getattr(_threadpoolctl().OpenBLASController, "clear_controlling_thread", None)
    with _blas_lock:
        if clear is not None:
            clear(force=True)
        try:
            yield
        finally:
            if clear is not None:
                clear(force=True)


def blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded (fastnn's, SciPy's, NumPy's)."""
    return list(_blas().select(user_api="blas").lib_controllers)


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def set_num_threads(n: Optional[int], pool: bool = False) -> None:
    """Let fastnn use `n` threads, process-wide: BLAS (the products of large layers) is limited to
    n threads; with pool=True, the steps of large networks and predict on many rows are shared by
    n of fastnn's own threads instead (see this module's notes for when that is faster).
    fit_parallel's workers still use one thread each. None: back to the default (no pool; BLAS
    back to the limit it had before the first call)."""
    global _original, _setting, _pool
    from .validation import check_positive_int
    if not isinstance(pool, (bool, np.bool_)):
        raise TypeError(f"pool must be True or False, got {pool!r}")
    if n is None:
        with _changing_blas():
            if _original is not None:
                _original.restore_original_limits()
            _original = None
        _setting, _pool = None, False
        return
    n = check_positive_int("n", n)  # before anything changes
    with _changing_blas():
        limits = _blas().limit(limits=n, user_api="blas")
        if _original is None:
            _original = limits
    _setting, _pool = n, bool(pool)


def pool_threads() -> int:
    """The threads of fastnn's pool for a fit or predict started from the calling thread: 1 (no
    pool) unless set_num_threads(n, pool=True) asked for one and this is the main thread."""
    if not _pool or getattr(_local, "threads", None) is not None:
        return 1
    return get_num_threads() if threading.current_thread() is threading.main_thread() else 1


def product_threads(bfloat16: bool) -> int:
    """The threads of fastnn's own that a fit or predict started from the calling thread shares its
    work among (fastnn._contract.TrainingRun.threads): pool_threads(), except that bfloat16
    products, which BLAS does not compute, always take get_num_threads() (one in the workers of
    fit_parallel and of thread-backed searches)."""
    return get_num_threads() if bfloat16 else pool_threads()


def get_num_threads() -> int:
    """The threads a fit started from the calling thread may use (see this module's rules)."""
    local = getattr(_local, "threads", None)
    if local is not None:
        return local
    if _setting is not None:
        return _setting
    return available_cores() if threading.current_thread() is threading.main_thread() else 1


@contextlib.contextmanager
def one_thread_each() -> Iterator[None]:
    """Fits started in the calling thread while this holds use one thread (fit_parallel's workers)."""
    before = getattr(_local, "threads", None)
    _local.threads = 1
    try:
        yield
    finally:
        _local.threads = before


_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def one_thread_blas() -> Iterator[None]:
    """BLAS at one thread while any caller holds this (fit_parallel's fits, the pool's steps): the
    first caller in sets the limit, the last one out lifts it (callers that each saved and
    restored the limit, interleaved from two threads, could restore the other's one-thread limit)."""
    global _blas_users, _blas_limit
    with _changing_blas():
        if _blas_users == 0:
            _blas_limit = _blas().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _changing_blas():
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None
