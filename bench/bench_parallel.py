"""Two separate models trained in two threads (fit_parallel) against one after the other, and the
same two kernel calls without fit around them, which show what the machine's two cores give in
the same run: fit_parallel's ratio can be read against that ceiling.

On a shared machine the second core comes and goes within seconds, so rows timed one after the
other can disagree by a third. The last benchmark therefore runs all four ways in turn in every
round (common.interleaved).
"""
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastnn as fnn
from fastnn.trainer import Data, Trainer

from bench_mlp import fastnn_model
from common import case_data, interleaved, record, threads

GROUP = "parallel: 2 models of mlp small, 1 epoch each"


def kernel_call(model, X, labels, batch):
    """One epoch of model on (X, labels) as a bare kernel call (fastnn.trainer's): what fit hands
    the kernel, without fit's checks and bookkeeping around it."""
    trainer = Trainer(model.network, model.loss_code, Data.for_model(model, X, labels), batch,
                      update=model.optimizer.update())
    return lambda: trainer.epochs(1)


# The bare calls' two threads, started once (outside the timed rounds), as fit_parallel keeps its own.
_BARE_THREADS = ThreadPoolExecutor(max_workers=2)


def ways(models, calls, X, y, batch) -> dict:
    """The four ways to train the two models, each a function of no arguments, by name."""
    def fits():
        for m in models:
            m.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)

    def fit_parallel():
        fnn.fit_parallel(models, X, y, epochs=1, batch_size=batch, shuffle=False)

    def kernel_calls():
        for call in calls:
            call()

    def kernel_threads():
        for future in [_BARE_THREADS.submit(call) for call in calls]:
            future.result()

    return {"sequential": fits, "fit_parallel": fit_parallel, "kernel calls, sequential": kernel_calls,
            "kernel calls, 2 threads": kernel_threads}


def pinned(how: str):
    """Where each way runs: one after the other on one core; the bare threads with a one-thread
    BLAS, as fit_parallel gives its threads (which sets that itself)."""
    if "sequential" in how:
        return threads(1)
    if how.endswith("2 threads"):
        return fnn.threads._blas().limit(limits=1, user_api="blas")
    return contextlib.nullcontext()


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("how", ["sequential", "fit_parallel", "kernel calls, sequential", "kernel calls, 2 threads"])
def test_two_models(benchmark, rounds, quick, how):
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    X, y, sizes, batch = case_data("small", quick)
    labels = y.astype(np.int64)
    models, calls = [], []

    def setup():
        models[:] = [fastnn_model(sizes, seed=s) for s in (1, 2)]
        calls[:] = [kernel_call(m, X, labels, batch) for m in models]
        return (), {}

    run = ways(models, calls, X, y, batch)[how]
    # Thread settings outside the timed rounds. A round is 10-20 ms: more rounds than the suite's
    # default, for a steadier median.
    with pinned(how):
        record(benchmark, run, rounds if quick else 6 * rounds, 2 * len(X), "sample", how, setup=setup)
    # The same weights as training each model alone.
    alone = fastnn_model(sizes, seed=2)
    alone.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
    for a, b in zip(alone.get_weights(), models[1].get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.benchmark(group=GROUP + ", interleaved")
def test_two_models_interleaved(benchmark, rounds, quick):
    """The four ways in turn in every round (common.interleaved); the note gives fit_parallel over
    the sequential fits and the bare threads over the bare calls one after the other."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    X, y, sizes, batch = case_data("small", quick)
    labels = y.astype(np.int64)

    def fresh(how):
        models = [fastnn_model(sizes, seed=s) for s in (1, 2)]
        return models, ways(models, [kernel_call(m, X, labels, batch) for m in models], X, y, batch)[how]

    def train(prepared):
        models, run = prepared
        run()
        return models

    runs = {how: (train, 2 * len(X), functools.partial(fresh, how)) for how in ways([], [], X, y, batch)}
    trained, ratio = interleaved(benchmark, runs, rounds if quick else 6 * rounds, "sample",
                                 pairs=[("fit_parallel", "sequential"),
                                        ("kernel calls, 2 threads", "kernel calls, sequential")],
                                 around=pinned)
    assert all(np.isfinite(list(ratio.values())))
    # All four ways train the same weights.
    for models in trained.values():
        for a, b in zip(trained["sequential"][1].get_weights(), models[1].get_weights()):
            np.testing.assert_array_equal(a, b)
