"""Bad input gets a clear Python exception naming the argument, before any kernel runs (both backends)."""
import warnings

import numpy as np
import pytest

import fastnn as fnn


@pytest.fixture
def model(backend):
    m = fnn.Sequential([fnn.Dense(2, 4, activation="relu"), fnn.Dense(4, 3, activation="softmax")], seed=0)
    m.compile("sparse_categorical_crossentropy", "adam")
    return m


@pytest.fixture
def binary(backend):
    m = fnn.Sequential([fnn.Dense(2, 3, activation="tanh"), fnn.Dense(3, 1, activation="sigmoid")], seed=0)
    m.compile("binary_crossentropy", "sgd")
    return m


X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
LABELS = np.array([0, 1, 2, 1])


@pytest.mark.parametrize("bad_X, error, message", [
    (np.zeros(4), ValueError, r"X must be 2-D \(n_samples, 2\), got shape \(4,\)"),
    (np.zeros((4, 2, 1)), ValueError, "X must be 2-D"),
    (np.zeros((4, 3)), ValueError, r"X has 3 features \(shape \(4, 3\)\) but the model's first layer expects 2"),
    (np.zeros((0, 2)), ValueError, r"X is empty \(shape \(0, 2\)\)"),
    (np.array([[0, 1], [np.nan, 0], [1, 1], [0, 0]]), ValueError, r"X contains NaN or inf \(first at index \(1, 0\)"),
    (np.array([[0, 1], [1, 0], [1, np.inf], [0, 0]]), ValueError, r"index \(2, 1\)"),
    (np.array([["a", "b"]] * 4), TypeError, "X must hold numbers"),
    (np.array([[object(), 1]] * 4, dtype=object), TypeError, "X must hold numbers"),
    (np.ones((4, 2), dtype=complex), TypeError, "X must be real"),
    ([[0, 1], [1]], ValueError, "X could not be read as a numeric array"),
])
def test_bad_X(model, bad_X, error, message):
    with pytest.raises(error, match=message):
        model.fit(bad_X, LABELS, verbose=0)
    if error is ValueError and "features" in message:
        with pytest.raises(error, match=message):
            model.predict(bad_X)


@pytest.mark.parametrize("order", ["C", "F"])
def test_non_finite_found_past_the_first_chunk(model, order):
    # The check runs over blocks of 2**18 elements; the first bad element is in the third, and the
    # error names its index in X, whatever X's memory order.
    big = np.zeros((300_000, 2), order=order)
    big[290_001, 1] = -np.inf
    big[299_999, 0] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at index \(290001, 1\): -inf\)"):
        model.predict(big)


@pytest.mark.parametrize("bad_y, message", [
    (np.array([0, 1, 2]), r"y has 3 rows \(shape \(3,\)\) but X has 4"),
    (1, r"y must hold one row per sample of X \(4\), got a scalar"),
    (np.array([0, 1, 3, 1]), r"y labels must lie in \[0, 3\) for a 3-unit output layer; row 2 has 3"),
    (np.array([0, -1, 2, 1]), r"row 1 has -1"),
    (np.array([0, 0.5, 2, 1]), "y must hold integer class labels"),
    (np.zeros((4, 3)), "one integer class label per row"),
    (np.array([0, np.nan, 1, 1]), r"y contains NaN or inf \(first at index \(1,\)"),
    (np.array([0, 1e30, 1, 1]), r"row 1 has 1e\+30"),
    (np.array([0, 2**64 - 1, 1, 1], np.uint64), r"row 1 has 18446744073709551615"),
])
def test_bad_sparse_labels(model, bad_y, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cast warning on the way to the error
        with pytest.raises(ValueError, match=message):
            model.fit(X, bad_y, verbose=0)


def test_bad_binary_targets(binary):
    with pytest.raises(ValueError, match=r"y must have shape \(4, 1\) to match the output layer, got shape \(4, 2\)"):
        binary.fit(X, np.zeros((4, 2)), verbose=0)
    binary.fit(X, np.array([True, False, True, False]), verbose=0)  # bool and 1-D are fine


def test_inputs_already_in_kernel_layout_are_only_read(model):
    # float32 C-contiguous X and int64 labels reach the kernels as given, not copied: fit must
    # accept them read-only and leave them unchanged.
    X_ro, y_ro = X.astype(np.float32), LABELS.copy()
    for a in (X_ro, y_ro):
        a.flags.writeable = False
    model.fit(X_ro, y_ro, epochs=2, batch_size=3, verbose=0)
    np.testing.assert_array_equal(X_ro, X)
    np.testing.assert_array_equal(y_ro, LABELS)


def test_labels_can_be_bool_or_column(model):
    model.fit(X.astype(bool), LABELS.reshape(-1, 1), verbose=0)
    model.fit(X.tolist(), LABELS.astype(np.float32), verbose=0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"batch_size": -3}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
    ({"epochs": -1}, ValueError, "epochs must be >= 0, got -1"),
    ({"epochs": "10"}, TypeError, "epochs must be an int"),
    ({"validation_data": X}, ValueError, r"validation_data must be a tuple \(X_val, y_val\)"),
    ({"validation_data": (X[:, :1], LABELS)}, ValueError, "validation_data\\[0\\] has 1 features"),
    ({"callbacks": [42]}, TypeError, "callbacks must be callables"),
])
def test_bad_fit_arguments(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        model.fit(X, LABELS, verbose=0, **kwargs)


def test_batch_larger_than_data_and_zero_epochs(model):
    before = model.get_weights()
    assert model.fit(X, LABELS, epochs=0, verbose=0).history == {}
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.fit(X, LABELS, epochs=2, batch_size=1000, verbose=0).history["loss"]) == 2


@pytest.mark.parametrize("make, error, message", [
    (lambda: fnn.Dense(0, 2), ValueError, "n_in must be >= 1, got 0"),
    (lambda: fnn.Dense(2, -1), ValueError, "n_out must be >= 1, got -1"),
    (lambda: fnn.Dense(2.5, 1), TypeError, "n_in must be an int"),
    (lambda: fnn.Dense(True, 1), TypeError, "n_in must be an int"),
    (lambda: fnn.Dense(2, 1, activation="swish"), ValueError, r"activation must be one of \['exp', 'leaky_relu', "
                                                                 r"'linear', 'relu', 'sigmoid', 'softmax', 'tanh'\]"),
    (lambda: fnn.Dense(2, 1, init="orthogonal"), ValueError, "init must be one of"),
    (lambda: fnn.Sequential([]).compile("mse"), ValueError, "the model has no layers"),
    (lambda: fnn.Sequential([fnn.Dense(2, 2), "dense"]), TypeError, r"layers\[1\] must be a fastnn.Dense"),
    (lambda: fnn.Sequential([fnn.Dense(2, 2)], dtype="float16"), ValueError,
     r"dtype must be one of \['float32', 'float64'\]"),
    (lambda: fnn.Sequential([fnn.Dense(2, 2)], dtype="banana"), ValueError, "dtype must be one of"),
    (lambda: fnn.Sequential([fnn.Dense(2, 2)], seed=-1), ValueError, "seed must be a non-negative int"),
    (lambda: fnn.Sequential([fnn.Dense(2, 2)], seed="x"), ValueError, "seed must be"),
    (lambda: fnn.SGD(lr=0), ValueError, r"learning_rate must lie in \(0.0, inf\], got 0.0"),
    (lambda: fnn.SGD(lr=float("nan")), ValueError, "learning_rate must be finite"),
    (lambda: fnn.SGD(lr="fast"), TypeError, "learning_rate must be a real number"),
    (lambda: fnn.SGD(momentum=1.0), ValueError, r"momentum must lie in \[0.0, 1.0\)"),
    (lambda: fnn.SGD(momentum=-0.1), ValueError, "momentum must lie in"),
    (lambda: fnn.Adam(beta1=1.0), ValueError, "beta1 must lie in"),
    (lambda: fnn.Adam(beta2=-0.5), ValueError, "beta2 must lie in"),
    (lambda: fnn.Adam(eps=0), ValueError, "eps must lie in"),
    (lambda: fnn.Adam(lr=float("inf")), ValueError, "learning_rate must be finite"),
    (lambda: fnn.set_backend("numba"), ValueError, r"backend must be one of \['cython', 'python'\]"),
    (lambda: fnn.EarlyStopping(patience=-1), ValueError, "patience must be an int >= 0"),
])
def test_bad_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_compile(backend):
    m = fnn.Sequential([fnn.Dense(2, 1, activation="sigmoid")])
    with pytest.raises(ValueError, match=r"loss must be one of \['binary_crossentropy', 'categorical_crossentropy', "
                                         r"'mse', 'poisson', 'sparse_categorical_crossentropy'\]"):
        m.compile("hinge", "sgd")
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'adamw', 'rmsprop', 'sgd'\]"):
        m.compile("mse", "adagrad")
    with pytest.raises(ValueError, match="needs a 'softmax' output layer"):
        m.compile("categorical_crossentropy", "sgd")
    with pytest.raises(ValueError, match="needs a 'exp' output layer"):
        m.compile("poisson", "sgd")
    one_unit = fnn.Sequential([fnn.Dense(2, 1, activation="softmax")])
    with pytest.raises(ValueError, match="at least 2 units"):
        one_unit.compile("sparse_categorical_crossentropy", "sgd")


def test_evaluate_before_compile_and_bad_weights(backend):
    m = fnn.Sequential([fnn.Dense(2, 1)])
    with pytest.raises(RuntimeError, match=r"compile\(loss, optimizer\) before model.evaluate"):
        m.evaluate(X, np.zeros(4))
    with pytest.raises(ValueError, match=r"weights\[0\] must hold finite numbers"):
        m.set_weights([np.full((2, 1), np.nan), np.zeros(1)])
    with pytest.raises(ValueError, match=r"W must have shape \(2, 1\), got \(1, 2\)"):
        m.layers[0].W = np.zeros((1, 2))


def test_early_stopping_needs_a_reported_metric(model):
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_loss'.*validation_data"):
        model.fit(X, LABELS, epochs=2, verbose=0, callbacks=[fnn.EarlyStopping()])
