"""Ctrl-C and stop requests end a training run after the batch it is in, on both backends: in a
fit (a real SIGINT to a subprocess whose single epoch lasts seconds), in fit_parallel (the workers
stop and the models are free again), and through the run's stop flag."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import fastnn as fnn
from fastnn import trainer

# A subprocess that trains a network whose one epoch takes seconds, and reports what Ctrl-C left.
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastnn as fnn

    backend, parallel = sys.argv[1], sys.argv[2] == "parallel"
    fnn.set_backend(backend)
    rng = np.random.default_rng(0)
    n, batch = 48_000, 128
    X = rng.standard_normal((n, 512)).astype(np.float32)
    y = rng.integers(0, 10, n)

    def model(seed):
        m = fnn.Sequential([fnn.Dense(512, 1024, "relu"), fnn.Dense(1024, 1024, "relu"),
                            fnn.Dense(1024, 10, "softmax")], seed=seed)
        m.compile("sparse_categorical_crossentropy", fnn.SGD(lr=0.01, momentum=0.9))
        return m

    models = [model(0), model(1)] if parallel else [model(0)]
    print("training", flush=True)
    try:
        if parallel:
            fnn.fit_parallel(models, X, y, n_jobs=2, epochs=5, batch_size=batch)
        else:
            models[0].fit(X, y, epochs=5, batch_size=batch, verbose=0)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    report = {"outcome": outcome, "batches_per_epoch": -(-n // batch),
              "iterations": [m.optimizer.iterations for m in models],
              "finite": [bool(np.isfinite(m.network.params).all()) for m in models]}
    for m in models:  # each model is free for the next fit
        m.fit(X[:256], y[:256], epochs=1, batch_size=batch, verbose=0)
    report["refit"] = True
    print(json.dumps(report), flush=True)
""")


def interrupt_child(backend_name: str, mode: str, after: float = 1.0) -> tuple[dict, float]:
    """Start the child, send SIGINT `after` seconds into its fit; (its report, seconds from the
    signal to its exit)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # run outside the checkout: started in it, Python would import the source folder, not the build
    child = subprocess.Popen([sys.executable, "-c", CHILD, backend_name, mode], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir())
    try:
        assert child.stdout.readline().strip() == "training", child.stderr.read()
        time.sleep(after)
        child.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        out, err = child.communicate(timeout=60)
        seconds = time.perf_counter() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), seconds


@pytest.mark.parametrize("mode", ["fit", "parallel"])
def test_ctrl_c_stops_a_long_epoch(backend, mode):
    """The signal arrives a second into the first epoch (which takes several seconds): the fit
    stops inside that epoch, with every model's step count short of one epoch's batches and its
    weights finite, and the models train again at once."""
    report, seconds = interrupt_child(fnn.get_backend(), mode)
    assert report["outcome"] == "interrupted"
    for iterations in report["iterations"]:
        assert 0 < iterations < report["batches_per_epoch"], report
    assert all(report["finite"]) and report["refit"]
    assert seconds < 10, f"the child took {seconds:.1f} s to exit after SIGINT"


def small(seed=0):
    model = fnn.Sequential([fnn.Dense(3, 8, "tanh"), fnn.Dense(8, 2, "softmax")], seed=seed, dtype="float64")
    model.compile("sparse_categorical_crossentropy", fnn.Adam(lr=0.01))
    return model


@pytest.mark.parametrize("batch", [4, 50])
def test_a_stop_request_ends_the_run_after_its_batch(backend, simd, batch):
    """With the stop flag set, a run of three epochs trains one batch and reports it: its weights,
    optimizer state and step count are exactly those of a run over that batch alone."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    stopped, reference = small(), small()
    data = trainer.Data.for_model(stopped, X, y)
    stopped.network.stop[0] = 1
    result = trainer.Trainer(stopped.network, stopped.loss_code, data, batch,
                             update=stopped.optimizer.update()).epochs(3, step=0)
    assert result.stopped and result.step == 1
    assert result.finished == (1 if batch == 50 else 0)  # a whole epoch in one batch is a finished epoch
    first = trainer.Data(data.X[:batch], data.y[:batch])
    expected = trainer.Trainer(reference.network, reference.loss_code, first, batch,
                               update=reference.optimizer.update()).epochs(1, step=0)
    assert not expected.stopped and expected.step == 1
    np.testing.assert_array_equal(stopped.network.params, reference.network.params)
    np.testing.assert_array_equal(stopped.optimizer.update().m, reference.optimizer.update().m)


def test_a_stopped_fit_raises_keyboardinterrupt_and_frees_the_model(backend):
    model = small()
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    model.network.stop[0] = 1
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 1
    model.network.stop[0] = 0
    history = model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2 and model.optimizer.iterations == 11
