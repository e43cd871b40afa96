"""Helpers of the benchmark suite: the peers' cases and data, thread pinning, recording a row.

Every benchmark records how many units of work one round does (epochs or samples) in extra_info,
so `python -m fastnn bench` can print throughputs and ratios measured in the same run.
"""
import contextlib
import math
import os
import sys
import threading
import time

from typing import Optional

import numpy as np

import fastnn as fnn

# name: (samples, layer sizes, batch) — the peers' cases (../shared/peers/mlp.py).
CASES = {"small": (20000, [20, 32, 32, 2], 32),
         "medium": (100000, [128, 512, 512, 10], 256),
         "large": (20000, [784, 1024, 1024, 10], 512)}
QUICK_SAMPLES = {"small": 2000, "medium": 2048, "large": 1024}


def case_data(case: str, quick: bool):
    n, sizes, batch = CASES[case]
    n = QUICK_SAMPLES[case] if quick else n
    X, y = fnn.data.classification(n, n_features=sizes[0], n_classes=sizes[-1], seed=0, dtype="float32")
    return X, y, sizes, batch


def all_threads_affinity(cores) -> None:
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that just ended
            pass


@contextlib.contextmanager
def threads(n: int):
    """Run with `n` threads: fastnn's pool and BLAS limited to n, torch told n, and with n == 1 every thread of the
    process pinned to one core (the only way to hold JAX/XLA's own pool to one core in-process)."""
    from threadpoolctl import threadpool_limits
    everything = os.sched_getaffinity(0)
    torch_threads = None
    try:
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            torch_threads = torch.get_num_threads()
            torch.set_num_threads(n)
        if n < len(everything):
            all_threads_affinity(set(sorted(everything)[:n]))
        fnn.set_num_threads(n)  # fastnn's pool; BLAS too
        with threadpool_limits(limits=n):
            yield
    finally:
        fnn.set_num_threads(None)
        all_threads_affinity(everything)
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)


@contextlib.contextmanager
def fastnn_pool(n: int):
    """fastnn's own pool of n threads for the steps and predictions inside (fnn.set_num_threads(n,
    pool=True)); n threads without it afterwards."""
    fnn.set_num_threads(n, pool=True)
    try:
        yield
    finally:
        fnn.set_num_threads(n)


@contextlib.contextmanager
def micro_kernels(on: bool, wide: Optional[bool] = None):
    """The compiled backend with its micro-kernels (_compiled/microkernels.h) on, its default where the
    CPU has them, or off (FASTNN_SIMD=0's portable loops and BLAS), for the rows that show the gain;
    wide: their AVX-512 versions (True), the AVX2 ones (False), or the default (None)."""
    kernels = fnn.backend._MODULES["cython"]
    if kernels is None:  # not built: nothing to switch
        yield
        return
    previous = kernels._set_simd(on)
    previous_wide = kernels._set_wide(kernels._simd_level() == "avx512" if wide is None else wide)
    try:
        yield
    finally:
        kernels._set_simd(previous)
        kernels._set_wide(previous_wide)


# Untimed rounds before the timed ones: at least this long in all. After the process had waited
# (the memory benchmark's subprocess), the next row's first ~0.1 s ran at half speed: the
# 20-32-32-2 micro-kernels then read 0.85-0.91x the portable path, timed right after, against 1.6x
# when that row ran first (one warm-up round of 10 ms did not cover it).
WARMUP_SECONDS = 0.3


def warmup_rounds(fn, setup=None) -> int:
    """More rounds of fn (each after setup) to make WARMUP_SECONDS with the one run here."""
    args, kwargs = setup() if setup else ((), {})
    start = time.perf_counter()
    fn(*args, **kwargs)
    return max(0, math.ceil(WARMUP_SECONDS / max(time.perf_counter() - start, 1e-6)) - 1)


def record(benchmark, fn, rounds: int, units: float, unit: str, impl: str, setup=None):
    """Time fn over `rounds` rounds (after at least WARMUP_SECONDS of untimed ones) and label the
    row for the ratio table."""
    benchmark.extra_info.update(units=units, unit=unit, impl=impl)
    warmup = warmup_rounds(fn, setup)
    if setup is None:
        return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
    return benchmark.pedantic(fn, setup=setup, rounds=rounds, warmup_rounds=warmup)


def accuracy(pred, y) -> float:
    return float(np.mean(np.asarray(pred) == y))


# OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s) after a threaded product, on the cores that
# the implementation run next would use.
IDLE_SECONDS = 0.2


@contextlib.contextmanager
def idle_first(name=None):
    """A context for interleaved's `around`: wait, untimed, for the cores to go idle before each entry."""
    time.sleep(IDLE_SECONDS)
    yield


def interleaved(benchmark, runs: dict, rounds: int, unit: str, pairs=None, around=None,
                warm: bool = False) -> tuple[dict, dict]:
    """Run every entry of `runs` in turn in each round, recorded as one row whose note gives, for
    each pair (a, b) in `pairs`, how many times a's throughput was b's, as the median of the
    per-round ratios (default: the first entry against each other one).
    An entry is name: (run, units of work per run) or (run, units, prepare): then each round calls
    prepare() untimed (to make a fresh model) and times run(what it returned). around(name), if
    given, is a context each entry runs in, entered and left untimed (thread settings). warm: each
    entry's timed run follows an untimed one of its own, as in a run of many epochs (JAX's
    threads, started cold right after another library's run, are slower: docs/performance.md).
    The note also gives each entry's median throughput. Returns each entry's last result and the
    ratios by pair.

    On this shared host one core ran the same single-threaded work at half the speed of the other,
    and which core a row lands on changes between rows; in turn, every entry sees the same machine."""
    seconds = {name: [] for name in runs}
    results = {}

    def one_round():
        for name, (run, _, *prepare) in runs.items():
            with around(name) if around else contextlib.nullcontext():
                if warm:
                    run(*([prepare[0]()] if prepare else []))
                args = [prepare[0]()] if prepare else []
                start = time.perf_counter()
                results[name] = run(*args)
                seconds[name].append(time.perf_counter() - start)

    first, *others = runs
    pairs = pairs or [(first, name) for name in others]
    record(benchmark, one_round, rounds, sum(entry[1] for entry in runs.values()) * (2 if warm else 1), unit,
           "all, in turn")
    rate = {name: runs[name][1] / np.array(seconds[name][-rounds:]) for name in runs}  # not record's warm-up
    ratio = {(a, b): float(np.median(rate[a] / rate[b])) for a, b in pairs}
    benchmark.extra_info["note"] = ("per-round median: " + ", ".join(f"{a} {r:.2f}x {b}" for (a, b), r in ratio.items())
                                    + "; each entry's median: " + ", ".join(
                                        f"{name} {np.median(rate[name]):.4g} {unit}/s" for name in runs))
    return results, ratio


def rss() -> int:
    """This process's resident memory, in bytes (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@contextlib.contextmanager
def peak_rss():
    """Yields [peak]: the highest RSS a thread saw while the block ran (the kernels release the
    GIL, so it samples during a fit), filled in when the block ends."""
    highest, done = [rss()], threading.Event()

    def sample():
        while not done.is_set():
            highest[0] = max(highest[0], rss())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield highest
    finally:
        done.set()
        sampler.join()
        highest[0] = max(highest[0], rss())
