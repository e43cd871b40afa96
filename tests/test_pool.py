"""fastnn's thread pool (the compiled twin's "pool" path for large networks): reruns bit for bit,
other thread counts and the NumPy twin to rounding, predict the same for every thread count; and
the thread-count rules of fastnn.threads."""
import threading

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _contract, threads
from fastnn.trainer import Data, Trainer

# Wide enough for several column blocks per layer, a batch large enough for the pool (a forward
# pass of at least the kernels' POOL_MIN_WORK multiply-adds), and a short last batch.
SIZES = (40, 160, 144, 6)
N, BATCH = 300, 96

CASES = {
    "adam, dropout, sparse labels": dict(loss="sparse_categorical_crossentropy", optimizer=lambda: fnn.Adam(1e-3),
                                         hidden="relu", output="softmax", dropout=0.25),
    "momentum, L2 penalty, one-hot": dict(loss="categorical_crossentropy",
                                          optimizer=lambda: fnn.SGD(0.05, momentum=0.9, nesterov=True),
                                          hidden="tanh", output="softmax", l2=1e-3),
    "rmsprop, clipnorm, weighted sigmoids": dict(loss="binary_crossentropy",
                                                 optimizer=lambda: fnn.RMSprop(1e-3, momentum=0.5, clipnorm=0.5),
                                                 hidden="sigmoid", output="sigmoid", weighted=True),
    "adamw, global clipnorm, softmax under mse": dict(loss="mse",
                                                      optimizer=lambda: fnn.AdamW(1e-3, global_clipnorm=1.0),
                                                      hidden="leaky_relu", output="softmax"),
    # a hidden layer too narrow to cut by columns, and a softmax in the middle: cut by rows
    "sgd, narrow and softmax hidden layers": dict(loss="mse", optimizer=lambda: fnn.SGD(0.1), hidden="relu",
                                                  output="linear", sizes=(40, 256, 48, 6),
                                                  middle="softmax", dropout=0.1),
}


def _sizes(case):
    return CASES[case].get("sizes", SIZES)


def _model(case, dtype, seed=0):
    c = CASES[case]
    layers = []
    sizes = _sizes(case)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if c.get("dropout") and i > 0:
            layers.append(fnn.Dropout(c["dropout"]))
        activation = c["output"] if i == len(sizes) - 2 else c.get("middle", c["hidden"]) if i == 1 else c["hidden"]
        reg = fnn.regularizers.l2(c["l2"]) if c.get("l2") else None
        layers.append(fnn.Dense(n_in, n_out, activation=activation, kernel_regularizer=reg))
    model = fnn.Sequential(layers, seed=seed, dtype=dtype)
    model.compile(loss=c["loss"], optimizer=c["optimizer"]())
    return model


def _data(case, dtype):
    rng = np.random.default_rng(3)
    sizes = _sizes(case)
    X = rng.standard_normal((N, sizes[0]))
    labels = rng.integers(0, sizes[-1], N)
    loss = CASES[case]["loss"]
    if loss == "sparse_categorical_crossentropy":
        y = labels
    elif loss == "binary_crossentropy":
        y = (rng.random((N, sizes[-1])) < 0.4).astype(float)
    else:
        y = np.eye(sizes[-1])[labels]
    weights = rng.random(N) + 0.1 if CASES[case].get("weighted") else None
    return X.astype(dtype), y, weights


def _fit(case, dtype, n_threads, epochs=2):
    """(params, per-epoch losses) after `epochs` epochs with fit's Trainer at n_threads threads."""
    model = _model(case, dtype)
    X, y, weights = _data(case, dtype)
    model.fit(X[:2], y[:2], epochs=0, verbose=0)  # builds the network and its optimizer state
    with _threads(n_threads):
        history = model.fit(X, y, epochs=epochs, batch_size=BATCH, sample_weight=weights, shuffle=True, verbose=0)
    return model.network.params.copy(), np.array(history.history["loss"])


class _threads:
    """fnn.set_num_threads(n, pool=True) for a block, the default back afterwards."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        fnn.set_num_threads(self.n, pool=True)

    def __exit__(self, *exc):
        fnn.set_num_threads(None)


@pytest.mark.parametrize("case", list(CASES))
def test_reruns_give_the_same_fit_and_other_thread_counts_the_same_losses(backend, simd, dtype, case):
    one, two, three = (_fit(case, dtype, n) for n in (1, 2, 3))
    # Rounding compounds over the epochs (Adam's step turns a tiny gradient's rounding into a step
    # of up to the learning rate), so the fits are held together by their losses;
    # test_a_pooled_gradient_equals_the_one_thread_gradient_to_rounding holds one step tightly.
    for other in (one, three):
        np.testing.assert_allclose(two[1], other[1], rtol=1e-4 if dtype == np.float32 else 1e-10)
    for count, first in ((2, two), (3, three)):  # a rerun, bit for bit
        again = _fit(case, dtype, count)
        np.testing.assert_array_equal(again[0], first[0])
        np.testing.assert_array_equal(again[1], first[1])


def _gradient(case, dtype, n_threads, seed=0):
    """(loss, gradient) of one full-batch pass (every row one batch) at n_threads threads."""
    model = _model(case, dtype, seed)
    X, y, weights = _data(case, dtype)
    model.fit(X[:2], y[:2], epochs=0, verbose=0)
    data = Data.for_model(model, X, y, sample_weight=weights)
    trainer = Trainer(model.network, model.loss_code, data, batch=N, threads=n_threads,
                      penalties=np.array([[0.0, CASES[case].get("l2", 0.0)]] * (len(_sizes(case)) - 1)))
    loss, _ = trainer.loss_and_count()
    return loss, model.network.grads.copy(), trainer.path


@pytest.mark.parametrize("case", list(CASES))
def test_a_pooled_gradient_equals_the_one_thread_gradient_to_rounding(backend, simd, dtype, assert_close, case):
    loss_1, grad_1, path_1 = _gradient(case, dtype, 1)
    loss_2, grad_2, path_2 = _gradient(case, dtype, 2)
    assert path_1 != "pool"
    assert path_2 == ("pool" if fnn.get_backend() == "cython" else "layers")
    assert_close(loss_2, loss_1, dtype)
    assert_close(grad_2, grad_1, dtype, scale=np.abs(grad_1).max())


def test_the_twins_agree_on_a_pooled_step(dtype, assert_close):
    case = "adam, dropout, sparse labels"
    with fnn.use_backend("cython"):
        compiled = _gradient(case, dtype, 2)
    with fnn.use_backend("python"):
        numpy = _gradient(case, dtype, 2)
    assert compiled[2] == "pool"
    assert_close(compiled[0], numpy[0], dtype)
    assert_close(compiled[1], numpy[1], dtype, scale=np.abs(numpy[1]).max())


def test_small_networks_and_one_thread_do_not_take_the_pool(backend):
    rng = np.random.default_rng(0)
    model = fnn.Sequential([fnn.Dense(20, 32, "relu"), fnn.Dense(32, 2, "softmax")], seed=0)
    model.compile("sparse_categorical_crossentropy", "adam")
    model.fit(rng.standard_normal((64, 20)), rng.integers(0, 2, 64), epochs=0, verbose=0)
    data = Data.for_model(model, rng.standard_normal((64, 20)), rng.integers(0, 2, 64))
    assert Trainer(model.network, model.loss_code, data, batch=32, threads=8).path != "pool"


def test_a_bad_thread_count_is_refused_before_any_kernel_runs(backend):
    model = _model("adam, dropout, sparse labels", np.float32)
    X, y, _ = _data("adam, dropout, sparse labels", np.float32)
    model.fit(X[:2], y[:2], epochs=0, verbose=0)
    data = Data.for_model(model, X, y)
    before = model.network.params.copy()
    for bad in (0, 65, 2.0, True):
        trainer = Trainer(model.network, model.loss_code, data, batch=BATCH, threads=1)
        trainer.run = _contract.TrainingRun(**{**trainer.run.__dict__, "threads": bad})
        with pytest.raises(ValueError, match="threads must be an int from 1 to 64"):
            trainer.epochs(1)
    np.testing.assert_array_equal(model.network.params, before)


def test_the_default_is_the_cores_in_the_main_thread_and_one_elsewhere():
    fnn.set_num_threads(None)
    assert fnn.get_num_threads() == threads.available_cores()
    seen = []
    worker = threading.Thread(target=lambda: seen.append(fnn.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [1]
    with _threads(3):
        assert fnn.get_num_threads() == 3
        with threads.one_thread_each():
            assert fnn.get_num_threads() == 1
        assert fnn.get_num_threads() == 3
    assert fnn.get_num_threads() == threads.available_cores()


def test_the_pool_is_asked_for(backend):
    model = _model("adam, dropout, sparse labels", np.float32)
    X, y, _ = _data("adam, dropout, sparse labels", np.float32)
    model.fit(X[:2], y[:2], epochs=0, verbose=0)
    data = Data.for_model(model, X, y)
    try:
        fnn.set_num_threads(2)
        assert threads.pool_threads() == 1
        assert Trainer(model.network, model.loss_code, data, batch=BATCH).path != "pool"
        fnn.set_num_threads(2, pool=True)
        assert threads.pool_threads() == 2
        seen = []
        worker = threading.Thread(target=lambda: seen.append(threads.pool_threads()))
        worker.start()
        worker.join()
        assert seen == [1]  # a fit from another thread (a thread-backed grid search) takes no pool
        with threads.one_thread_each():
            assert threads.pool_threads() == 1
        assert Trainer(model.network, model.loss_code, data, batch=BATCH).path == (
            "pool" if fnn.get_backend() == "cython" else "layers")
        with pytest.raises(TypeError, match="pool must be True or False"):
            fnn.set_num_threads(2, pool="yes")
        fnn.set_num_threads(2)
        with pytest.raises(ValueError, match="n must be >= 1"):
            fnn.set_num_threads(0, pool=True)
        assert threads.pool_threads() == 1 and fnn.get_num_threads() == 2  # a refused call changes nothing
    finally:
        fnn.set_num_threads(None)
    assert threads.pool_threads() == 1


def test_a_pooled_fit_gives_blas_its_threads_back(backend):
    blas = threads._blas()

    def blas_threads():
        return max(lib.num_threads for lib in blas.select(user_api="blas").lib_controllers)

    before = blas_threads()
    _fit("adam, dropout, sparse labels", np.float32, 2, epochs=1)
    assert blas_threads() == before


@pytest.mark.parametrize("n, rows", [(1, 1024), (3, 2), (2500, 1024), (5000, 700)])
def test_predict_shares_chunks_of_rows_and_gives_the_same_output_for_any_thread_count(backend, simd, dtype,
                                                                                      assert_close, n, rows):
    model = fnn.Sequential([fnn.Dense(64, 256, "relu"), fnn.Dense(256, 96, "tanh"), fnn.Dense(96, 7, "softmax")],
                           seed=2, dtype=dtype)
    model.build(64)
    X = np.random.default_rng(n).standard_normal((n, 64)).astype(dtype)
    outputs = {}
    for count in (1, 2, 3):
        with _threads(count):
            outputs[count] = model.predict(X, batch_size=rows)
    if fnn.get_backend() == "cython":  # the chunks of rows are the same for every thread count
        np.testing.assert_array_equal(outputs[1], outputs[2])
        np.testing.assert_array_equal(outputs[2], outputs[3])
    reference = np.ones((n, 1), dtype)
    for l, layer_output in enumerate(model.network.layer_outputs(X)):
        reference = layer_output
    assert_close(outputs[1], reference, dtype)
    assert_close(outputs[2], reference, dtype)


def test_predict_refuses_bad_arguments_before_writing(backend):
    network = _model("adam, dropout, sparse labels", np.float64).network
    X = np.zeros((4, SIZES[0]))
    out = np.full((4, SIZES[-1]), 7.0)
    args = (network.sizes, network.codes, network.params)
    for bad, message in [(dict(rows=0), "rows must be an int >= 1"), (dict(threads=0), "threads must be an int"),
                         (dict(out=np.zeros((4, 2))), "out"), (dict(X=np.zeros((4, 3))), "X"),
                         (dict(X=np.zeros((4, SIZES[0]), np.float32)), "X must be a 2-d float64 array")]:
        call = {"X": X, "out": out, "rows": 2, "threads": 2, **bad}
        with pytest.raises(ValueError, match=message):
            backend.network_predict(*args, call["X"], call["out"], call["rows"], call["threads"])
    assert (out == 7.0).all()
