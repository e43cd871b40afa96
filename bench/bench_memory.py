"""Memory of a fit: peak RSS above what the data and the model already hold, against the budget
data + 3 × parameters + O(batch), and RSS across epochs (flat: nothing is allocated per batch).
Measured in a fresh process, so nothing else in the suite moves the peak."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from bench_mlp import fastnn_model
from common import case_data, peak_rss, rss

X, y, sizes, batch = case_data(sys.argv[2], sys.argv[3] == "quick")
model = fastnn_model(sizes)
model.fit(X[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)  # first-call allocations
before = rss()
after_epoch = []
with peak_rss() as highest:
    model.fit(X, y, epochs=4, batch_size=batch, verbose=0, callbacks=[lambda e, logs: after_epoch.append(rss())])
workspace = 4 * batch * (2 * sum(sizes[1:]) + sizes[0] + sizes[-1])
print(json.dumps(dict(data=X.nbytes + y.nbytes, params=4 * model.count_params(), workspace=workspace,
                      peak_above_start=max(highest[0], *after_epoch) - before, epochs=after_epoch)))
"""


@pytest.mark.benchmark(group="memory: mlp medium fit, 4 epochs, shuffled")
def test_fit_memory(benchmark, quick):
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    here = os.path.dirname(os.path.abspath(__file__))

    def run():
        out = subprocess.run([sys.executable, "-c", SCRIPT, here, "medium", "quick" if quick else "full"],
                             capture_output=True, text=True, check=True, cwd=here)
        return json.loads(out.stdout)

    m = benchmark.pedantic(run, rounds=1, iterations=1)
    budget = m["data"] + 3 * m["params"] + m["workspace"] + 8 * 2 ** 20  # + allocator/interpreter slack
    growth = max(m["epochs"]) - min(m["epochs"])
    benchmark.extra_info.update(units=1, unit="fit", impl="fastnn (cython)", memory={
        "peak above start (MiB)": m["peak_above_start"] / 2 ** 20, "budget (MiB)": budget / 2 ** 20,
        "data (MiB)": m["data"] / 2 ** 20, "parameters (MiB)": m["params"] / 2 ** 20,
        "RSS change across epochs (MiB)": growth / 2 ** 20})
    assert m["peak_above_start"] <= budget
    assert growth <= 2 * 2 ** 20


MEMMAP_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import fastnn as fnn
from fastnn import streams
from common import peak_rss, rss

X = np.load(sys.argv[2], mmap_mode="r")  # (n, n_features) float32 on disk
labels = np.load(sys.argv[2][:-4] + "-y.npy", mmap_mode="r")
model = fnn.Sequential([fnn.Dense(32, activation="relu"), fnn.Dense(1, activation="sigmoid")], seed=0)
model.compile("binary_crossentropy", fnn.Adam(learning_rate=1e-3))
before = rss()
started = time.perf_counter()
with peak_rss() as highest:
    history = model.fit(X, labels, epochs=1, batch_size=1024, verbose=0)
seconds = time.perf_counter() - started
print(json.dumps(dict(file=X.nbytes + labels.nbytes, chunk=streams.CHUNK_BYTES, peak_above_start=highest[0] - before,
                      seconds=seconds, loss=history.history["loss"][-1])))
"""


def _memmap_file(folder, gigabytes: float, n_features: int = 64) -> str:
    """A float32 X (n, n_features) and its labels y (n,) as .npy files, written a block at a time."""
    n = int(gigabytes * 2 ** 30) // (4 * n_features)
    path = os.path.join(folder, "X.npy")
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n_features))
    y = np.lib.format.open_memmap(path[:-4] + "-y.npy", mode="w+", dtype=np.float32, shape=(n,))
    rng = np.random.default_rng(0)
    for start in range(0, n, 1 << 18):
        block = rng.standard_normal((min(1 << 18, n - start), n_features), dtype=np.float32)
        X[start:start + len(block)] = block
        y[start:start + len(block)] = block[:, 0] * block[:, 1] > 0
    X.flush(), y.flush()
    del X, y
    return path


@pytest.mark.benchmark(group="memory: fit over a memory-mapped file, 1 epoch")
def test_memmap_fit_memory(benchmark, quick, tmp_path):
    """fit reads a memory-mapped X a chunk at a time and gives the pages back: the process's RSS
    grows by a few chunks, not by the file (2 GB; 256 MB in the quick pass)."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    path = _memmap_file(str(tmp_path), 0.25 if quick else 2.0)

    def run():
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run([sys.executable, "-c", MEMMAP_SCRIPT, here, path], capture_output=True, text=True,
                             check=True, cwd=str(tmp_path))
        return json.loads(out.stdout)

    m = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(units=1, unit="fit", impl="fastnn (cython)", memory={
        "file (MiB)": m["file"] / 2 ** 20, "chunk (MiB)": m["chunk"] / 2 ** 20,
        "peak above start (MiB)": m["peak_above_start"] / 2 ** 20,
        "peak / chunk": m["peak_above_start"] / m["chunk"], "fit (s)": m["seconds"]})
    assert m["peak_above_start"] <= 4 * m["chunk"]
    assert m["loss"] < 0.69  # it learned something from the stream
