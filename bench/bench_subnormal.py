"""Subnormal numbers: a float32 ReLU network trained with Adam after most of its units stopped
learning. Their optimizer state decays geometrically, into the subnormal range where every
operation takes a slow path on many CPUs, unless it is flushed to 0 (the contract's Update does).
The row shows late epochs' time against early ones' and the share of subnormal state left."""
import time

import numpy as np
import pytest

import fastnn as fnn


@pytest.mark.benchmark(group="subnormal optimizer state: 64-512-512-10 float32 Adam, most units dead")
def test_late_epochs_run_as_fast_as_early_ones(benchmark, quick):
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048 if quick else 4096, 64)).astype(np.float32)
    y = rng.integers(0, 10, len(X))
    model = fnn.Sequential([fnn.Dense(64, 512, "relu"), fnn.Dense(512, 512, "relu"), fnn.Dense(512, 10, "softmax")],
                           seed=0)
    model.compile("sparse_categorical_crossentropy", fnn.Adam(learning_rate=1e-3))
    model.fit(X, y, epochs=2, batch_size=256, verbose=0)  # every unit has had a gradient: its state is not 0
    weights = model.get_weights()
    weights[1][:384] = weights[3][:384] = -1e3  # then three units in four stop learning
    model.set_weights(weights)
    epochs = 40 if quick else 120  # 0.9 ** steps: Adam's m of a dead unit is subnormal after ~700 steps

    def run():
        seconds = []
        for _ in range(epochs):
            start = time.perf_counter()
            model.fit(X, y, epochs=1, batch_size=256, verbose=0)
            seconds.append(time.perf_counter() - start)
        return seconds

    seconds = benchmark.pedantic(run, rounds=1, iterations=1)
    tiny = np.finfo(np.float32).tiny
    subnormal = {name: float(np.mean((a != 0) & (np.abs(a) < tiny))) for name, a in model.optimizer.state.items()}
    tenth = max(1, epochs // 10)
    benchmark.extra_info.update(units=1, unit="fit", impl="fastnn (cython)", memory={
        "first epochs (ms)": 1e3 * float(np.median(seconds[:tenth])),
        "last epochs (ms)": 1e3 * float(np.median(seconds[-tenth:])),
        "last / first": float(np.median(seconds[-tenth:]) / np.median(seconds[:tenth])),
        **{f"subnormal share of {name}": share for name, share in subnormal.items()}})
    assert all(share == 0 for share in subnormal.values())
