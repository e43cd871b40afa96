"""Reliability: random input never crashes the process, memory stays flat, threads are safe."""
import gc
import os
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn as fnn

ACCEPTED_ERRORS = (ValueError, TypeError, fnn.TrainingDivergedError, FloatingPointError)
# Examples per fuzz target: a few hundred in CI; FASTNN_FUZZ_SCALE=10 (say) for a longer hunt.
FUZZ_SCALE = float(os.environ.get("FASTNN_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * FUZZ_SCALE))


def small_model(seed=0, dtype="float64", n_in=3, n_out=2, loss="sparse_categorical_crossentropy"):
    out = "softmax" if "categorical" in loss else ("sigmoid" if loss == "binary_crossentropy" else "linear")
    model = fnn.Sequential([fnn.Dense(n_in, 5, activation="tanh"), fnn.Dense(5, n_out, activation=out)],
                           seed=seed, dtype=dtype)
    model.compile(loss, fnn.SGD(lr=0.1, momentum=0.5))
    return model


# ---------------------------------------------------------------- fuzzing the public API

elements = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                     st.floats(-1e6, 1e6), st.integers(-5, 5))


@st.composite
def fit_case(draw):
    rows = draw(st.integers(0, 6))
    cols = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["float64", "float32", "int32", "bool"]))
    X = draw(hnp.arrays(kind, (rows, cols), elements=st.booleans() if kind == "bool" else
                        (st.integers(-3, 3) if kind == "int32" else elements)))
    loss = draw(st.sampled_from(["sparse_categorical_crossentropy", "categorical_crossentropy",
                                 "binary_crossentropy", "mse"]))
    y_shape = draw(st.sampled_from([(rows,), (rows, 1), (rows, 2), (rows + 1,), (rows, 3)]))
    y = draw(hnp.arrays("float64", y_shape, elements=st.one_of(st.integers(-1, 3).map(float), elements)))
    batch = draw(st.one_of(st.none(), st.integers(-1, 8)))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return X, y, loss, batch, dtype


def run_case(case, backend_name):
    X, y, loss, batch, dtype = case
    with fnn.use_backend(backend_name):
        model = small_model(dtype=dtype, n_in=3, n_out=1 if loss == "binary_crossentropy" else 2, loss=loss)
        try:
            model.fit(X, y, epochs=2, batch_size=batch, verbose=0)
            return "ok", (model.predict(np.ones((2, 3))), float(np.abs(model.network.params).max()))
        except ACCEPTED_ERRORS as exc:
            return "error", type(exc)


# Beyond this, a fit's weights were thrown around by huge gradients (targets of 1e9, say): a
# pre-activation is then the difference of two such weights, whose rounding the two twins' sums
# decide differently, so their outputs may differ by far more than rounding: both must be finite.
WILD_WEIGHTS = 1e4


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # hypothesis' float32 arrays
@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=fit_case())
def test_fuzz_fit_never_crashes_and_backends_agree(both_backends, case):
    outcomes = [run_case(case, name) for name in ("cython", "python")]
    (kind_c, value_c), (kind_p, value_p) = outcomes
    if kind_c == "ok" and kind_p == "ok":
        (out_c, weights_c), (out_p, weights_p) = value_c, value_p
        if max(weights_c, weights_p) > WILD_WEIGHTS:
            assert np.isfinite(out_c).all() and np.isfinite(out_p).all()
        else:
            rtol = 1e-4 if case[4] == "float32" else 1e-9
            np.testing.assert_allclose(out_c, out_p, rtol=rtol, atol=rtol)
    else:
        # Rejected input is rejected by the shared validation before any kernel, so both agree;
        # only divergence can depend on rounding at the edge of overflow.
        if fnn.TrainingDivergedError not in (value_c, value_p):
            assert outcomes[0] == outcomes[1]


# hypothesis casts its float64 examples to float32 arrays, overflowing some to inf on purpose.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(X=hnp.arrays(st.sampled_from(["float32", "float64"]), hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=elements))
def test_fuzz_predict(backend, X):
    model = small_model()
    try:
        P = model.predict(X)
    except (ValueError, TypeError):
        return
    assert P.shape == (X.shape[0], 2) and np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-9)


_VALID_FILE = {}


def valid_model_file(tmp_dir) -> bytes:
    if "bytes" not in _VALID_FILE:
        path = os.path.join(tmp_dir, "valid.npz")
        small_model().save(path)
        with open(path, "rb") as f:
            _VALID_FILE["bytes"] = f.read()
    return _VALID_FILE["bytes"]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_fuzz_load_damaged_files(tmp_path, edits, cut):
    """A saved model with bytes changed and maybe cut short: load gives a model or the
    ValueError that says the file is not valid, nothing else."""
    data = bytearray(valid_model_file(str(tmp_path)))
    for at, value in edits:
        data[at % len(data)] = value
    if cut is not None:
        data = data[:cut % len(data)]
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data))
    try:
        loaded = fnn.load(path)
    except ValueError as exc:
        assert "not a valid fastnn model file" in str(exc)
        return
    assert np.isfinite(loaded.network.params).all()


@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_extreme_values_stay_finite_or_fail_cleanly(backend, dtype, scale):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(16, 3)) * scale).astype(dtype)
    labels = rng.integers(0, 2, 16)
    model = small_model(dtype=np.dtype(dtype).name)
    if not np.isfinite(X).all():  # 1e30 overflows float32: rejected before training
        with pytest.raises(ValueError, match="NaN or inf"):
            model.fit(X, labels, verbose=0)
        return
    try:
        model.fit(X, labels, epochs=3, batch_size=4, verbose=0)
    except fnn.TrainingDivergedError:
        pass
    assert np.isfinite(model.network.params).all()
    assert np.isfinite(model.predict(X)).all()


# ---------------------------------------------------------------- memory

def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_thousand_fits_keep_rss_flat(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3))
    labels = rng.integers(0, 2, 64)

    def fits(count):
        for i in range(count):
            model = small_model(seed=i)
            model.fit(X, labels, epochs=2, batch_size=16, verbose=0)
            model.predict(X)

    fits(100)  # warm up allocator pools and caches
    gc.collect()
    before = rss_bytes()
    fits(1000)
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 8 * 2 ** 20, f"RSS grew by {growth / 2 ** 20:.1f} MiB over 1000 fits"


def test_kernels_keep_no_references(backend):
    """Calling a kernel 1,000 times leaves its arguments' reference counts unchanged."""
    rng = np.random.default_rng(2)
    X, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    out = np.empty((4, 2))
    counts = [sys.getrefcount(a) for a in (X, W, b, out)]
    for _ in range(1000):
        backend.dense_forward(X, W, b, fnn.activations.TANH, out)
    assert [sys.getrefcount(a) for a in (X, W, b, out)] == counts


# ---------------------------------------------------------------- threads

def test_models_in_threads_equal_sequential_fits(backend):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    labels = rng.integers(0, 2, 200)

    def train(seed):
        model = small_model(seed=seed)
        model.fit(X, labels, epochs=5, batch_size=8, verbose=0)
        return model.get_weights()

    sequential = [train(seed) for seed in range(4)]
    parallel = [None] * 4

    def worker(i):
        parallel[i] = train(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(sequential, parallel):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)


def test_one_model_fitted_from_two_threads_is_refused(backend):
    model = small_model()
    X = np.zeros((8, 3))
    labels = np.zeros(8, np.int64)
    inside, release = threading.Event(), threading.Event()
    errors = []

    def hold(epoch, logs):  # the first fit waits inside its first epoch
        inside.set()
        release.wait(timeout=30)

    def first():
        try:
            model.fit(X, labels, epochs=1, verbose=0, callbacks=[hold])
        except Exception as exc:  # pragma: no cover - would fail the test below
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(timeout=30)
    with pytest.raises(RuntimeError, match="already being fitted in another thread"):
        model.fit(X, labels, epochs=1, verbose=0)
    release.set()
    t.join()
    assert errors == []
    model.fit(X, labels, epochs=1, verbose=0)  # free again afterwards


def test_fit_parallel_equals_fitting_one_after_the_other(backend):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(120, 3))
    labels = rng.integers(0, 2, 120)
    alone = [small_model(seed=seed) for seed in range(3)]
    expected = [model.fit(X, labels, epochs=4, batch_size=8, verbose=0) for model in alone]
    together = [small_model(seed=seed) for seed in range(3)]
    histories = fnn.fit_parallel(together, X, labels, n_jobs=2, epochs=4, batch_size=8)
    assert [h.history for h in histories] == [h.history for h in expected]  # in the models' order
    for a, b in zip(alone, together):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_fit_parallel_gives_each_kind_of_model_its_own_data(backend):
    """fit_parallel converts the shared X and y once per kind of model (dtype, widths, loss): a float64
    and a float32 classifier and a one-output regression on the same labels all train exactly as
    they would alone; bad data is refused before any thread starts."""
    rng = np.random.default_rng(6)
    X, labels = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)

    def models():
        return [small_model(seed=0), small_model(seed=1, dtype="float32"), small_model(seed=0),
                small_model(seed=2, n_out=1, loss="mse")]

    alone = [m.fit(X, labels, epochs=3, batch_size=8, verbose=0).history for m in models()]
    together = fnn.fit_parallel(models(), X, labels, n_jobs=2, epochs=3, batch_size=8)
    assert [h.history for h in together] == alone
    with pytest.raises(ValueError, match="X has 2 features"):
        fnn.fit_parallel(models(), X[:, :2], labels)


def _worker_threads(models, X, labels, callbacks=()) -> set:
    """The threads fit_parallel ran the models' epochs in."""
    seen = set()
    fnn.fit_parallel(models, X, labels, n_jobs=2, epochs=2,
                     callbacks=[lambda epoch, logs: seen.add(threading.get_ident()), *callbacks])
    return seen


def test_fit_parallel_inside_fit_parallel_and_after_a_fork(backend):
    """A callback may call fit_parallel again (it gets threads of its own: waiting on its own
    workers could deadlock), and a forked child, which has none of the parent's threads, still fits."""
    rng = np.random.default_rng(8)
    X, labels = rng.normal(size=(32, 3)), rng.integers(0, 2, 32)
    inner = []

    def nested(epoch, logs):
        inner.append(fnn.fit_parallel([small_model(seed=s) for s in range(2)], X, labels, n_jobs=2, epochs=1))

    outer = threading.Thread(target=_worker_threads, args=([small_model(seed=s) for s in range(2)], X, labels,
                                                           [nested]), daemon=True)
    outer.start()
    outer.join(timeout=60)
    assert not outer.is_alive() and len(inner) == 4  # 2 models x 2 epochs
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if fit_parallel finished with finite losses
        try:
            histories = fnn.fit_parallel([small_model(seed=s) for s in range(2)], X, labels, n_jobs=2, epochs=1)
            os._exit(0 if all(np.isfinite(h.history["loss"]).all() for h in histories) else 1)
        finally:
            os._exit(2)
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("fit_parallel hung in a forked child")
    assert os.waitstatus_to_exitcode(status) == 0


needs_two_cores = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                                     reason="needs two cores and thread affinity (Linux)")


def _fit_two_at_once(X, labels) -> dict:
    """fit_parallel on two models, two workers; the cores each worker thread may run on, by thread."""
    both_running = threading.Barrier(2)
    cores = {}

    def on_epoch_end(epoch, logs):  # runs in the worker thread that fits the model
        both_running.wait(timeout=30)  # so the two fits run at once, in two workers
        cores[threading.get_native_id()] = os.sched_getaffinity(0)

    fnn.fit_parallel([small_model(seed=s) for s in range(2)], X, labels, n_jobs=2, epochs=1,
                     callbacks=[on_epoch_end])
    return cores


@needs_two_cores
def test_fit_parallel_keeps_each_worker_on_a_core_of_its_own(backend):
    """See parallel._one_core_each. The caller's cores are unchanged afterwards; with fewer cores
    than workers the workers are left on the caller's cores."""
    rng = np.random.default_rng(5)
    X, labels = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    before = os.sched_getaffinity(0)
    cores = _fit_two_at_once(X, labels)
    assert len(cores) == 2 and all(len(c) == 1 for c in cores.values())
    assert len(set.union(*cores.values())) == 2
    assert os.sched_getaffinity(0) == before
    one = {min(before)}
    os.sched_setaffinity(0, one)
    try:
        assert list(_fit_two_at_once(X, labels).values()) == [one, one]
    finally:
        os.sched_setaffinity(0, before)


@needs_two_cores
def test_fit_parallel_keeps_its_threads_for_the_next_call(backend):
    rng = np.random.default_rng(7)
    X, labels = rng.normal(size=(32, 3)), rng.integers(0, 2, 32)
    first, second = _fit_two_at_once(X, labels), _fit_two_at_once(X, labels)
    assert len(first) == 2 and first == second  # the same two threads, each on the same core


def test_fit_parallel_refuses_a_model_twice_and_a_bad_n_jobs():
    model = small_model()
    X, labels = np.zeros((8, 3)), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="models must be distinct"):
        fnn.fit_parallel([model, model], X, labels)
    with pytest.raises(ValueError, match="n_jobs must be >= 1, got 0"):
        fnn.fit_parallel([model], X, labels, n_jobs=0)


def test_set_num_threads_sets_what_get_num_threads_reports():
    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        assert fnn.get_num_threads() == 1
        with pytest.raises(ValueError, match="n must be >= 1, got 0"):
            fnn.set_num_threads(0)
    finally:
        fnn.set_num_threads(None)
    assert fnn.get_num_threads() == before


def _in_thread(fn):
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def test_set_num_threads_takes_effect_from_any_thread():
    """threadpoolctl lets only the first thread that changed OpenBLAS's limit change it again;
    fastnn's own changes work from every thread, also while that first thread lives."""
    before = fnn.get_num_threads()
    first_done, release = threading.Event(), threading.Event()

    def first():
        fnn.set_num_threads(1)
        first_done.set()
        release.wait(10)

    holder = threading.Thread(target=first)
    holder.start()
    try:
        first_done.wait(10)
        seen = []
        _in_thread(lambda: (fnn.set_num_threads(2), seen.append(fnn.get_num_threads())))
        assert seen == [2]
    finally:
        release.set()
        holder.join()
        fnn.set_num_threads(None)
    assert fnn.get_num_threads() == before


def test_concurrent_fit_parallel_calls_give_back_the_blas_threads(backend):
    """Each call's limit may be set from one thread and lifted from another: the fits run with
    one BLAS thread, and afterwards BLAS has its threads back."""
    rng = np.random.default_rng(8)
    X, labels = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    fnn.set_num_threads(fnn.get_num_threads())  # the main thread first to change the limit
    before = fnn.get_num_threads()
    during, after = set(), []
    kwargs = {"epochs": 3, "callbacks": [lambda epoch, logs: during.add(fnn.get_num_threads())]}
    for trial in range(12):
        callers = [threading.Thread(target=fnn.fit_parallel, args=([small_model(s), small_model(s + 1)], X, labels),
                                    kwargs=kwargs) for s in (0, 2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        after.append(fnn.get_num_threads())
    fnn.set_num_threads(None)
    assert during == {1}
    assert after == [before] * 12
