"""The Keras surface of Sequential: layers that infer their input width, add, model(X), the
optimizer given to compile used as given, learning_rate, and fit's validation_split,
sample_weight, class_weight and initial_epoch; train_on_batch, test_on_batch, evaluate's forms."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import data


def moons(n=60, seed=0):
    X, y = data.moons(n, noise=0.2, seed=seed)
    order = np.random.default_rng(seed).permutation(n)  # both classes in every part of the rows
    return X[order], y[order]


def keras_model(seed=0, dtype="float64", optimizer=None, metrics=None):
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(1, activation="sigmoid")],
                           seed=seed, dtype=dtype)
    model.compile(loss="binary_crossentropy", optimizer=optimizer or fnn.Adam(learning_rate=0.01), metrics=metrics)
    return model


def explicit_model(seed=0, dtype="float64", optimizer=None):
    model = fnn.Sequential([fnn.Dense(2, 8, activation="tanh"), fnn.Dense(8, 1, activation="sigmoid")],
                           seed=seed, dtype=dtype)
    model.compile(loss="binary_crossentropy", optimizer=optimizer or fnn.Adam(learning_rate=0.01))
    return model


# ---------------------------------------------------------------- building

def test_units_only_layers_build_at_first_fit_as_explicit_ones(backend, simd):
    """Dense(units) learns n_in from the data; the seed gives the same weights, so the same fit."""
    X, y = moons()
    inferred, explicit = keras_model(), explicit_model()
    assert not inferred.built and inferred.n_in is None and inferred.get_weights() == []
    h1 = inferred.fit(X, y, epochs=3, batch_size=8, verbose=0)
    h2 = explicit.fit(X, y, epochs=3, batch_size=8, verbose=0)
    assert inferred.built and inferred.n_in == 2 and inferred.layers[0].n_in == 2
    for a, b in zip(inferred.get_weights(), explicit.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h2.history


@pytest.mark.parametrize("how", ["input", "add", "build", "input_dim", "predict"])
def test_ways_to_give_the_input_width(backend, simd, how):
    X, _ = moons()
    if how == "input":
        model = fnn.Sequential([fnn.Input(shape=(2,)), fnn.Dense(8, "tanh"), fnn.Dense(1, "sigmoid")], seed=0)
    elif how == "add":
        model = fnn.Sequential(seed=0)
        for layer in (fnn.Input(shape=(2,)), fnn.Dense(8, activation="tanh"), fnn.Dense(units=1, activation="sigmoid")):
            model.add(layer)
    elif how == "build":
        model = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(1, "sigmoid")], seed=0)
        model.build(2)
    elif how == "input_dim":
        model = fnn.Sequential([fnn.Dense(8, "tanh", input_dim=2), fnn.Dense(1, "sigmoid")], seed=0)
    else:
        model = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(1, "sigmoid")], seed=0)
        model.predict(X)
    reference = fnn.Sequential([fnn.Dense(2, 8, "tanh"), fnn.Dense(8, 1, "sigmoid")], seed=0)
    assert model.built
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model(X), reference.predict(X))


def test_add_to_a_built_model_keeps_the_weights_it_had(backend, simd):
    model = fnn.Sequential([fnn.Dense(2, 8, "tanh")], seed=0)
    first = model.get_weights()
    model.add(fnn.Dense(1, "sigmoid"))
    reference = fnn.Sequential([fnn.Dense(2, 8, "tanh"), fnn.Dense(8, 1, "sigmoid")], seed=0)
    assert [w.shape for w in model.get_weights()] == [(2, 8), (8,), (8, 1), (1,)]
    for a, b in zip(model.get_weights(), first + reference.get_weights()[2:]):
        np.testing.assert_array_equal(a, b)
    model.compile("binary_crossentropy")
    with pytest.raises(RuntimeError, match="before model.compile"):
        model.add(fnn.Dense(1))


@pytest.mark.parametrize("make, error, match", [
    (lambda: fnn.Dense(), TypeError, "Dense needs its width"),
    (lambda: fnn.Dense(2, 3, 4), TypeError, r"Dense takes \(units\) or \(n_in, n_out\)"),
    (lambda: fnn.Dense(3, "relu", activation="tanh"), TypeError, "activation twice"),
    (lambda: fnn.Dense(3, units=4), TypeError, "width once"),
    (lambda: fnn.Dense(3, n_in=2, input_dim=2), TypeError, "input width once"),
    (lambda: fnn.Dense(0), ValueError, "n_out must be >= 1"),
    (lambda: fnn.Dense(3, "swish"), ValueError, "swish"),
    (lambda: fnn.Input(shape=(2, 3)), ValueError, r"shape must be \(n_in,\)"),
    (lambda: fnn.Sequential([fnn.Dense(3), fnn.Input(shape=(2,))]), ValueError, "an Input can only come first"),
    (lambda: fnn.Sequential([fnn.Input(shape=(2,)), fnn.Dense(3, 4)]), ValueError,
     r"n_in=3 but the Input has shape \(2,\)"),
    (lambda: fnn.Sequential([fnn.Dense(3)]).summary(), ValueError, "not built yet"),
    (lambda: fnn.Sequential([fnn.Dense(3)]).build(), ValueError, "build needs n_in"),
    (lambda: fnn.Sequential([fnn.Dense(2, 3)]).build(4), ValueError, "n_in=4, but the model's input width is 2"),
    (lambda: fnn.Sequential([fnn.Dense(3)]).predict(np.zeros(3)), ValueError, "X must be 2-D"),
])
def test_building_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_positional_forms_of_dense():
    assert fnn.Dense(8, "relu").config() == {"class": "Dense", "n_in": None, "n_out": 8, "activation": "relu", "init": "he_uniform"}
    assert fnn.Dense(2, 1, "sigmoid").config() == {"class": "Dense", "n_in": 2, "n_out": 1, "activation": "sigmoid",
                                                   "init": "glorot_uniform"}
    assert fnn.Dense(4, "relu", "zeros").init == "zeros"
    assert fnn.Dense(units=5).units == 5


# ---------------------------------------------------------------- the optimizer

def test_learning_rate_and_its_alias():
    opt = fnn.SGD(learning_rate=0.5)
    assert opt.lr == opt.learning_rate == 0.5
    opt.lr = 0.25
    assert opt.learning_rate == 0.25
    assert fnn.SGD(lr=0.3).learning_rate == 0.3
    assert fnn.Adam(beta_1=0.8, epsilon=1e-7).config() == {"name": "adam", "learning_rate": 0.001, "beta1": 0.8,
                                                          "beta2": 0.999, "eps": 1e-7}
    assert fnn.optimizers.from_config({"name": "adam", "lr": 0.02}).learning_rate == 0.02  # files before the rename
    with pytest.raises(TypeError, match="learning rate once"):
        fnn.SGD(learning_rate=0.1, lr=0.2)
    with pytest.raises(ValueError, match="learning_rate must lie in"):
        opt.learning_rate = -1.0


@pytest.mark.parametrize("make", [lambda: fnn.SGD(learning_rate=0.5), lambda: fnn.Adam(learning_rate=0.05)],
                         ids=["sgd", "adam"])
def test_a_learning_rate_changed_by_a_callback_takes_effect_at_the_next_epoch(backend, simd, make):
    """The defect of issue 19: the lr set after epoch 0 was ignored for the rest of fit."""
    X, y = moons()
    model = explicit_model(optimizer=make())
    weights = [np.concatenate([w.ravel() for w in model.get_weights()])]

    def slow_down(epoch, logs):
        weights.append(np.concatenate([w.ravel() for w in model.get_weights()]))
        if epoch == 0:
            model.optimizer.learning_rate = 1e-30

    model.fit(X, y, epochs=5, batch_size=8, verbose=0, callbacks=[slow_down])
    assert np.abs(weights[1] - weights[0]).max() > 1e-3  # epoch 0 trained ...
    assert np.abs(weights[-1] - weights[1]).max() < 1e-20  # ... epochs 1-4 barely moved


# ---------------------------------------------------------------- fit's arguments

def test_validation_split_holds_out_the_last_rows(backend, simd):
    X, y = moons()
    split = keras_model().fit(X, y, epochs=3, batch_size=8, verbose=0, validation_split=0.25)
    given = keras_model().fit(X[:45], y[:45], epochs=3, batch_size=8, verbose=0, validation_data=(X[45:], y[45:]))
    assert split.history == given.history
    assert set(split.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(validation_split=1.0), ValueError, r"validation_split must lie in \[0.0, 1.0\)"),
    (dict(validation_split=0.99), ValueError, "each needs at least one"),
    (dict(validation_split=0.2, validation_data=(np.zeros((2, 2)), np.zeros(2))), ValueError, "not both"),
    (dict(initial_epoch=3, epochs=3), ValueError, "initial_epoch=3 must be less than epochs=3"),
    (dict(initial_epoch=-1, epochs=3), ValueError, "initial_epoch must be >= 0"),
    (dict(sample_weight=-np.ones(60)), ValueError, "sample_weight must be >= 0"),
    (dict(sample_weight=np.ones(59)), ValueError, r"one weight per row of X, shape \(60,\)"),
    (dict(sample_weight=np.zeros(60)), ValueError, "0 for every row"),
    (dict(sample_weight=np.full(60, np.nan)), ValueError, "NaN"),
    (dict(class_weight=[1, 2]), TypeError, "class_weight must be a dict"),
    (dict(class_weight={2: 1.0}), ValueError, r"keys must be the model's classes, ints in \[0, 2\), got 2"),
    (dict(class_weight={0: -1.0}), ValueError, r"class_weight\[0\] must lie in"),
    (dict(class_weight={0: 0.0, 1: 0.0}), ValueError, "every row with weight 0"),
])
def test_bad_fit_arguments_train_nothing(backend, kwargs, error, match):
    X, y = moons()
    model = keras_model()
    model.build(2)
    before = model.get_weights()
    kwargs.setdefault("epochs", 2)
    with pytest.raises(error, match=match):
        model.fit(X, y, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_class_weight_is_a_sample_weight_per_class(backend, simd):
    X, y = moons()
    by_class = keras_model().fit(X, y, epochs=3, batch_size=8, verbose=0, class_weight={1: 3.0})
    by_row = keras_model().fit(X, y, epochs=3, batch_size=8, verbose=0, sample_weight=np.where(y == 1, 3.0, 1.0))
    assert by_class.history == by_row.history
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        model = fnn.Sequential([fnn.Dense(1)])
        model.compile("mse")
        model.fit(X, y, class_weight={0: 1.0}, verbose=0)


def test_a_weight_of_two_counts_a_row_twice(backend, simd, assert_close):
    """Full batch, the loss a weighted mean: weight 2 on a row is that row twice."""
    X, y = moons(20)
    weights = np.ones(20)
    weights[:5] = 2.0
    weighted = explicit_model(optimizer=fnn.SGD(learning_rate=0.5))
    weighted.fit(X, y, epochs=4, batch_size=None, verbose=0, sample_weight=weights)
    doubled = explicit_model(optimizer=fnn.SGD(learning_rate=0.5))
    doubled.fit(np.vstack([X, X[:5]]), np.concatenate([y, y[:5]]), epochs=4, batch_size=None, verbose=0)
    for a, b in zip(weighted.get_weights(), doubled.get_weights()):
        assert_close(a, b, weighted.dtype, scale=1.0)


def test_initial_epoch_continues_a_fit(backend, simd):
    """5 epochs, then fit(epochs=10, initial_epoch=5): the same weights as 10 at once, History
    numbered from 5."""
    X, y = moons()
    whole = keras_model()
    all_ten = whole.fit(X, y, epochs=10, batch_size=8, verbose=0)
    resumed = keras_model()
    first = resumed.fit(X, y, epochs=5, batch_size=8, verbose=0)
    second = resumed.fit(X, y, epochs=10, batch_size=8, verbose=0, initial_epoch=5)
    assert second.epoch == list(range(5, 10)) and first.epoch == list(range(5))
    assert first.history["loss"] + second.history["loss"] == all_ten.history["loss"]
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert whole.optimizer.iterations == resumed.optimizer.iterations == 80


# ---------------------------------------------------------------- one batch, evaluate

def test_train_on_batch_is_one_full_batch_step(backend, simd):
    X, y = moons(16)
    stepped, fitted = explicit_model(), explicit_model()
    results = [stepped.train_on_batch(X, y) for _ in range(3)]
    history = fitted.fit(X, y, epochs=3, batch_size=None, shuffle=False, verbose=0)
    for a, b in zip(stepped.get_weights(), fitted.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [r[0] for r in results] == history.history["loss"]
    assert [r[1] for r in results] == history.history["accuracy"]
    assert stepped.optimizer.iterations == 3
    logs = stepped.test_on_batch(X, y, return_dict=True)
    assert logs == stepped.evaluate(X, y, batch_size=16)
    assert stepped.evaluate(X, y, return_dict=False) == [logs["loss"], logs["accuracy"]]


def test_a_regression_model_returns_a_scalar_loss(backend, simd):
    X, y = moons(16)
    model = fnn.Sequential([fnn.Dense(4, "tanh"), fnn.Dense(1)], seed=0, dtype="float64")
    model.compile("mse", fnn.SGD(learning_rate=0.1))
    loss = model.train_on_batch(X, y)
    assert isinstance(loss, float)
    assert model.evaluate(X, y, return_dict=False) == model.test_on_batch(X, y) == model.evaluate(X, y)["loss"]


@pytest.mark.parametrize("loss, names, reported", [
    ("binary_crossentropy", ["accuracy"], ["accuracy"]),
    ("binary_crossentropy", ["acc", "binary_accuracy"], ["accuracy", "acc", "binary_accuracy"]),
    ("sparse_categorical_crossentropy", ["sparse_categorical_accuracy"], ["accuracy", "sparse_categorical_accuracy"]),
    ("mse", [], []),
])
def test_compiled_accuracy_names(backend, loss, names, reported):
    X, y = moons(16)
    out = 2 if loss.startswith("sparse") else 1
    model = fnn.Sequential([fnn.Dense(3, "tanh"),
                            fnn.Dense(out, "softmax" if out == 2 else "sigmoid" if loss != "mse" else None)], seed=0)
    model.compile(loss, metrics=names)
    assert list(model.fit(X, y, epochs=1, verbose=0).history) == ["loss"] + reported


@pytest.mark.parametrize("loss, names, match", [
    ("binary_crossentropy", ["sparse_categorical_accuracy"], "takes class labels"),
    ("sparse_categorical_crossentropy", ["mae"], "takes targets shaped like the outputs"),
    ("mse", ["accuracy"], "has no accuracy"),
    ("binary_crossentropy", ["f1"], "unknown metric 'f1'"),
    ("binary_crossentropy", "accuracy", "must be a list"),
])
def test_bad_metrics(loss, names, match):
    out = "softmax" if loss.startswith("sparse") else "sigmoid" if loss != "mse" else None
    model = fnn.Sequential([fnn.Dense(2, 2 if loss.startswith("sparse") else 1, out)])
    with pytest.raises((ValueError, TypeError), match=match):
        model.compile(loss, metrics=names)


# ---------------------------------------------------------------- learning-rate callbacks

def test_learning_rate_scheduler_sets_each_epochs_rate(backend, simd):
    X, y = moons()
    model = explicit_model(optimizer=fnn.SGD(learning_rate=0.1))
    seen = []
    model.fit(X, y, epochs=4, batch_size=8, verbose=0, callbacks=[
        fnn.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)),
        lambda epoch, logs: seen.append(model.optimizer.learning_rate)])
    assert seen == [0.1, 0.05, 0.1 / 3, 0.025]
    model.fit(X, y, epochs=1, verbose=0, callbacks=[fnn.callbacks.LearningRateScheduler(lambda epoch: 0.2)])
    assert model.optimizer.learning_rate == 0.2  # Keras' older one-argument form


@pytest.mark.parametrize("rate", [float("nan"), -0.1, 0.0, "fast"])
def test_a_schedule_that_returns_no_learning_rate_stops_fit(backend, rate):
    X, y = moons()
    model = explicit_model()
    model.build(2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"LearningRateScheduler: schedule at epoch 0 returned"):
        model.fit(X, y, epochs=3, verbose=0, callbacks=[fnn.callbacks.LearningRateScheduler(lambda e, lr: rate)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_reduce_lr_on_plateau(backend, simd):
    """A monitored value that stops improving: the rate is cut by factor after patience epochs
    without improvement, counted as Keras counts them around a cooldown, and never below min_lr;
    a scheduled learning rate cannot be cut (TypeError, as in Keras)."""
    X, y = moons()
    model = explicit_model(optimizer=fnn.SGD(learning_rate=0.1))
    values = iter([1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    rates = []

    def fake_monitor(epoch, logs):  # runs before the plateau callback: it sees this value
        logs["val_loss"] = next(values)

    plateau = fnn.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    model.fit(X, y, epochs=9, batch_size=8, verbose=0, callbacks=[
        fake_monitor, plateau, lambda epoch, logs: rates.append(model.optimizer.learning_rate)])
    # Keras' counting: the cooldown epoch resets the wait, then counts (epoch 4); min_lr caps epoch 7's cut
    assert rates == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02]
    scheduled = explicit_model(optimizer=fnn.SGD(learning_rate=fnn.schedules.ExponentialDecay(0.1, 10, 0.5)))
    with pytest.raises(TypeError, match="cannot be set to a number"):
        scheduled.fit(X, y, epochs=3, verbose=0, callbacks=[
            lambda e, logs: logs.update(val_loss=1.0),
            fnn.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0)])


def test_the_keras_example_runs_and_resumes_where_its_checkpoint_left_off(tmp_path):
    """examples/keras_tabular.py: a Keras script but for its imports. Its last part loads the best
    checkpoint and trains on: those epochs repeat the first fit's, metric for metric."""
    import pathlib
    import re
    import subprocess
    import sys
    script = pathlib.Path(__file__).resolve().parent.parent / "examples" / "keras_tabular.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = {}
    for line in out.stderr.splitlines():
        match = re.match(r"Epoch (\d+)/(\d+) - [0-9.]+s - (.*)", line)
        if match:
            lines.setdefault(int(match[1]), []).append(match[3])
    resumed = [epoch for epoch, seen in lines.items() if len(seen) == 2]
    assert len(resumed) == 3 and all(lines[e][0] == lines[e][1] for e in resumed), lines
    assert "best checkpoint, test:" in out.stdout and (tmp_path / "best.keras").exists()


def test_fit_without_targets_says_so(backend):
    X, _ = moons()
    with pytest.raises(ValueError, match="fit: y is None: give the targets"):
        keras_model().fit(X, verbose=0)
