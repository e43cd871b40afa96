"""Two separate models trained in two threads (fit_parallel) against one after the other."""
import numpy as np
import pytest

import fastnn as fnn

from bench_mlp import fastnn_model
from common import case_data, record, threads


@pytest.mark.benchmark(group="parallel: 2 models of mlp small, 1 epoch each")
@pytest.mark.parametrize("how", ["sequential", "fit_parallel"])
def test_two_models(benchmark, rounds, quick, how):
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    X, y, sizes, batch = case_data("small", quick)
    models = []

    def setup():
        models[:] = [fastnn_model(sizes, seed=s) for s in (1, 2)]
        return (), {}

    if how == "sequential":
        def run():
            with threads(1):
                for m in models:
                    m.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
    else:
        def run():
            fnn.fit_parallel(models, X, y, epochs=1, batch_size=batch, shuffle=False)

    record(benchmark, run, rounds, 2 * len(X), "sample", how, setup=setup)
    # The same weights as training each model alone.
    alone = fastnn_model(sizes, seed=2)
    alone.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
    for a, b in zip(alone.get_weights(), models[1].get_weights()):
        np.testing.assert_array_equal(a, b)
