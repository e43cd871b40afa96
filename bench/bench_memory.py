"""Memory of a fit: peak RSS above what the data and the model already hold, against the budget
data + 3 × parameters + O(batch), and RSS across epochs (flat: nothing is allocated per batch).
Measured in a fresh process, so nothing else in the suite moves the peak."""
import json
import os
import subprocess
import sys

import pytest

import fastnn as fnn

SCRIPT = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from bench_mlp import fastnn_model
from common import case_data

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

X, y, sizes, batch = case_data(sys.argv[2], sys.argv[3] == "quick")
model = fastnn_model(sizes)
model.fit(X[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)  # first-call allocations
before = rss()
highest, done = [before], threading.Event()

def sample():  # the kernels release the GIL, so this thread sees RSS during the fit
    while not done.is_set():
        highest[0] = max(highest[0], rss())
        time.sleep(0.0005)

sampler = threading.Thread(target=sample)
sampler.start()
after_epoch = []
model.fit(X, y, epochs=4, batch_size=batch, verbose=0, callbacks=[lambda e, logs: after_epoch.append(rss())])
done.set()
sampler.join()
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
