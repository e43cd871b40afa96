"""The model layer: Sequential / Dense / compile / fit / predict / evaluate, on both backends."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import data, trainer
from fastnn._contract import LOSSES

ACTIVATIONS = ["linear", "sigmoid", "relu", "tanh", "leaky_relu", "softmax"]


def make_model(sizes, hidden="tanh", out="sigmoid", seed=0, dtype="float64", loss="binary_crossentropy",
               optimizer=None):
    layers = [fnn.Dense(a, b, activation=hidden) for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(fnn.Dense(sizes[-2], sizes[-1], activation=out))
    model = fnn.Sequential(layers, seed=seed, dtype=dtype)
    model.compile(loss=loss, optimizer=optimizer or fnn.SGD(lr=0.1))
    return model


OUTPUT_FOR_LOSS = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
                   "sparse_categorical_crossentropy": "softmax", "mse": "linear", "poisson": "exp"}


# ---------------------------------------------------------------- construction

def test_dense_shapes_and_init(backend):
    model = fnn.Sequential([fnn.Dense(3, 5, activation="relu"), fnn.Dense(5, 2, activation="tanh")], seed=1)
    first, second = model.layers
    assert first.W.shape == (3, 5) and first.b.shape == (5,)
    assert second.W.shape == (5, 2) and second.b.shape == (2,)
    assert first.W.dtype == np.float32  # the default dtype
    # He uniform for relu, Glorot uniform for tanh; biases start at zero.
    assert np.abs(first.W).max() <= np.sqrt(6 / 3) and np.abs(first.W).std() > 0
    assert np.abs(second.W).max() <= np.sqrt(6 / 7)
    assert not first.b.any() and not second.b.any()
    assert model.count_params() == 3 * 5 + 5 + 5 * 2 + 2


def test_activation_none_is_linear():
    assert fnn.Dense(2, 3).activation == "linear"


def test_sizes_must_agree():
    with pytest.raises(ValueError, match="n_out=3.*n_in=4"):
        fnn.Sequential([fnn.Dense(2, 3), fnn.Dense(4, 1)])


def test_unbuilt_layer_has_no_weights():
    with pytest.raises(RuntimeError, match="Sequential"):
        fnn.Dense(2, 3).W


def test_layer_cannot_join_two_models():
    layer = fnn.Dense(2, 3)
    fnn.Sequential([layer])
    with pytest.raises(ValueError, match="already belongs"):
        fnn.Sequential([layer])


def test_compile_checks_output_activation():
    model = fnn.Sequential([fnn.Dense(2, 3, activation="relu")])
    with pytest.raises(ValueError, match="sigmoid"):
        model.compile("binary_crossentropy", "sgd")
    with pytest.raises(ValueError, match="softmax"):
        model.compile("categorical_crossentropy", "sgd")


def test_fit_before_compile():
    model = fnn.Sequential([fnn.Dense(2, 1)])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit([[0, 0]], [0], verbose=0)


def test_summary(capsys):
    model = make_model([4, 8, 3], out="softmax", loss="categorical_crossentropy")
    model.summary()
    text = capsys.readouterr().out
    assert "dense_0 (4->8)" in text and "dense_1 (8->3)" in text
    assert f"total params: {4 * 8 + 8 + 8 * 3 + 3}" in text


# ---------------------------------------------------------------- shapes and outputs

@pytest.mark.parametrize("loss", sorted(OUTPUT_FOR_LOSS))
def test_fit_predict_evaluate_shapes(backend, loss, loss_targets):
    rng = np.random.default_rng(0)
    n_out = 1 if loss == "binary_crossentropy" else 3
    X = rng.normal(size=(37, 4))
    y = loss_targets(loss, rng, 37, n_out)
    model = make_model([4, 6, n_out], out=OUTPUT_FOR_LOSS[loss], loss=loss)
    history = model.fit(X, y, epochs=3, batch_size=8, verbose=0,
                        validation_data=(X[:10], y[:10]))
    classification = loss not in ("mse", "poisson")
    expected = {"loss", "val_loss"}
    if classification:
        expected |= {"accuracy", "val_accuracy"}
    assert set(history.history) == expected
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    P = model.predict(X)
    assert P.shape == (37, n_out) and P.dtype == np.float64
    if OUTPUT_FOR_LOSS[loss] == "softmax":
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    if OUTPUT_FOR_LOSS[loss] in ("softmax", "sigmoid"):
        assert (P >= 0).all() and (P <= 1).all()
    if loss == "poisson":
        assert (P > 0).all()  # rates
    result = model.evaluate(X, y)
    assert set(result) == ({"loss", "accuracy"} if classification else {"loss"})


def test_predict_chunks_agree(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    model = make_model([3, 5, 2], out="softmax", loss="categorical_crossentropy")
    full = model.predict(X)
    for rows in (1, 7, 50, 500):
        np.testing.assert_allclose(model.predict(X, batch_size=rows), full, rtol=1e-12)


def test_predict_accepts_lists_and_layouts(backend):
    model = make_model([2, 3, 1], dtype="float32")
    X = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(6, 2))
    expected = model.predict(np.ascontiguousarray(X, dtype=np.float32))
    np.testing.assert_array_equal(model.predict(X), expected)
    np.testing.assert_array_equal(model.predict(X.tolist()), expected)
    np.testing.assert_array_equal(model.predict(X[::1, ::-1][:, ::-1]), expected)
    assert model.predict(X).dtype == np.float32


def test_evaluate_matches_predictions(backend):
    """evaluate's loss and accuracy are those of predict's probabilities."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    y = (rng.random((40, 1)) > 0.5).astype(float)
    model = make_model([3, 4, 1])
    p = model.predict(X)
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    result = model.evaluate(X, y)
    assert result["loss"] == pytest.approx(bce, rel=1e-10)
    assert result["accuracy"] == pytest.approx(np.mean((p > 0.5) == (y > 0.5)))


# ---------------------------------------------------------------- training

def test_full_batch_equals_one_batch_of_everything(backend):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3))
    y = (rng.random((20, 1)) > 0.5).astype(float)
    a, b = make_model([3, 4, 1]), make_model([3, 4, 1])
    a.fit(X, y, epochs=5, batch_size=None, verbose=0)
    b.fit(X, y, epochs=5, batch_size=20, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_same_seed_same_run(backend):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 3))
    y = rng.integers(0, 3, 30)
    runs = []
    for _ in range(2):
        model = make_model([3, 8, 3], hidden="relu", out="softmax", loss="sparse_categorical_crossentropy",
                           seed=7, optimizer=fnn.Adam(lr=0.01))
        history = model.fit(X, y, epochs=4, batch_size=7, verbose=0)
        runs.append((model.get_weights(), history.history["loss"]))
    for wa, wb in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(wa, wb)
    assert runs[0][1] == runs[1][1]
    other = make_model([3, 8, 3], hidden="relu", out="softmax", loss="sparse_categorical_crossentropy", seed=8)
    assert not np.array_equal(other.get_weights()[0], runs[0][0][0])


def test_one_sgd_step_is_w_minus_lr_grad(backend):
    """After one full-batch SGD step, w_new = w - lr * dL/dw, with dL/dw from finite differences."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 2))
    y = (rng.random((6, 1)) > 0.5).astype(float)
    model = make_model([2, 3, 1], optimizer=fnn.SGD(lr=0.3))
    before = model.get_weights()
    grads = numeric_gradient(model, X, y)
    model.fit(X, y, epochs=1, batch_size=None, verbose=0)
    for w0, g, w1 in zip(before, grads, model.get_weights()):
        np.testing.assert_allclose(w1, w0 - 0.3 * g, rtol=1e-6, atol=1e-9)


def numeric_gradient(model, X, y, eps=1e-6):
    """Central finite differences of evaluate's loss with respect to every weight."""
    grads = []
    weights = model.get_weights()
    for i, w in enumerate(weights):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            for sign in (+1, -1):
                trial = [v.copy() for v in weights]
                trial[i][idx] += sign * eps
                model.set_weights(trial)
                g[idx] += sign * model.evaluate(X, y)["loss"] / (2 * eps)
        grads.append(g)
    model.set_weights(weights)
    return grads


def model_gradient(model, X, y):
    """The gradient fit computes for one full batch (one pass of the training step)."""
    network = model.network
    trainer.gradient(network, model.loss_code, trainer.Data.for_model(model, X, y))
    return [a.copy() for pair in zip(network.dW, network.db) for a in pair]


def step_by_step(model, X, y, rows):
    """One batch the way fit's step is defined, kernel by kernel from Python: forward layer by layer,
    the loss and its gradient from the output (logits where the loss takes them), backward into
    model.network.grads. X, y: as trainer.Data holds them. Returns the batch's loss."""
    k = fnn.backend.ops()
    network = model.network
    codes = network.loss_codes(model.loss_code)
    acts = [X]
    for W, b, code in zip(network.W, network.b, codes):
        acts.append(np.empty((rows, W.shape[1]), model.dtype))
        k.dense_forward(acts[-2], W, b, int(code), acts[-1])
    deltas = [np.empty_like(a) for a in acts]
    loss = getattr(k, LOSSES[model.loss_code].kernel)(acts[-1], y, deltas[-1])
    for l in range(network.n_layers - 1, -1, -1):
        k.dense_backward(acts[l], network.W[l], acts[l + 1], deltas[l + 1], int(codes[l]), deltas[l + 1],
                         network.dW[l], network.db[l], deltas[l] if l > 0 else None)
    return loss


@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("loss", sorted(OUTPUT_FOR_LOSS))
def test_model_gradient_matches_finite_differences(backend, hidden, loss, loss_targets):
    rng = np.random.default_rng(6)
    n_out = 3
    X = rng.normal(size=(5, 3))
    y = loss_targets(loss, rng, 5, n_out)
    model = make_model([3, 4, n_out], hidden=hidden, out=OUTPUT_FOR_LOSS[loss], loss=loss, seed=2)
    if hidden in ("relu", "leaky_relu"):  # keep pre-activations away from the kink at 0
        model.layers[0].b = np.full(4, 0.05)
    analytic = model_gradient(model, X, y)
    numeric = numeric_gradient(model, X, y)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("out", ["sigmoid", "tanh", "relu", "softmax"])
def test_mse_with_nonlinear_output_gradient(backend, out):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4, 2))
    y = rng.random((4, 3))
    model = make_model([2, 3, 3], out=out, loss="mse", seed=3)
    model.layers[1].b = np.full(3, 0.1)
    for a, n in zip(model_gradient(model, X, y), numeric_gradient(model, X, y)):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)


def test_training_reduces_loss_on_moons(backend):
    X, labels = data.moons(300, noise=0.1, seed=0)
    model = make_model([2, 16, 2], hidden="tanh", out="softmax", loss="sparse_categorical_crossentropy",
                       dtype="float32", optimizer=fnn.Adam(lr=0.02))
    history = model.fit(X, labels, epochs=40, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(X, labels)["accuracy"] > 0.9


def test_momentum_and_adam_learn(backend):
    X, y = data.xor()
    for optimizer in (fnn.SGD(lr=0.5, momentum=0.9), fnn.Adam(lr=0.05)):
        model = make_model([2, 4, 1], optimizer=optimizer, seed=1)
        model.fit(X, y, epochs=500, batch_size=None, verbose=0)
        np.testing.assert_array_equal(model.predict(X).round(), y)


def test_optimizer_instance_is_the_models(backend):
    """compile uses the optimizer it is given: its iterations count the model's steps, and it
    cannot be compiled into a second model (its state belongs to the first one's parameters)."""
    X, y = data.xor()
    opt = fnn.SGD(lr=0.5, momentum=0.9)
    a, b = make_model([2, 3, 1], seed=0), make_model([2, 3, 1], seed=0)
    a.compile("binary_crossentropy", opt)
    assert a.optimizer is opt
    with pytest.raises(ValueError, match="already compiled into another model"):
        b.compile("binary_crossentropy", opt)
    a.fit(X, y, epochs=5, batch_size=2, verbose=0)
    assert opt.iterations == 10
    a.compile("binary_crossentropy", opt)  # the same model again: allowed, the state starts over
    assert opt.iterations == 0
    a.compile("binary_crossentropy", fnn.SGD(lr=0.5))  # a new optimizer frees the old one
    b.compile("binary_crossentropy", opt)
    assert b.optimizer is opt


# ---------------------------------------------------------------- weights, callbacks

def test_get_set_weights(backend):
    model = make_model([2, 3, 1])
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(2, 3), (3,), (3, 1), (1,)]
    weights[0][...] = 5.0  # a copy: the model is untouched
    assert not np.any(model.layers[0].W == 5.0)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.layers[0].W, 5.0)
    with pytest.raises(ValueError, match="4 arrays"):
        model.set_weights(weights[:3])
    with pytest.raises(ValueError, match=r"weights\[2\].*\(3, 1\)"):
        model.set_weights([weights[0], weights[1], np.zeros((1, 3)), weights[3]])


def test_early_stopping(backend):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 2))
    y = rng.normal(size=(40, 1))  # noise: the validation loss soon stops improving
    model = make_model([2, 32, 1], out="linear", loss="mse", optimizer=fnn.SGD(lr=0.05))
    stopper = fnn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(X[:20], y[:20], epochs=500, batch_size=4, verbose=0,
                        validation_data=(X[20:], y[20:]), callbacks=[stopper])
    assert stopper.stopped_epoch is not None and len(history.epoch) == stopper.stopped_epoch + 1 < 500
    assert model.evaluate(X[20:], y[20:])["loss"] == pytest.approx(min(history.history["val_loss"]), rel=1e-9)


def test_callable_callback_sees_every_epoch_and_can_stop(backend):
    X, y = data.xor()
    model = make_model([2, 2, 1])
    seen = []

    def hook(epoch, logs):
        seen.append((epoch, logs["loss"]))
        if epoch == 4:
            model.stop_training = True

    history = model.fit(X, y, epochs=100, batch_size=None, verbose=0, callbacks=[hook])
    assert [e for e, _ in seen] == [0, 1, 2, 3, 4]
    assert [l for _, l in seen] == history.history["loss"]


def test_verbose_progress(backend, capsys):
    X, y = data.xor()
    make_model([2, 2, 1]).fit(X, y, epochs=3, batch_size=None, verbose=1)
    err = capsys.readouterr().err
    assert "3/3" in err and "loss" in err
    make_model([2, 2, 1]).fit(X, y, epochs=3, batch_size=None, verbose=0)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("optimizer", [dict(name="sgd", lr=0.1), dict(name="sgd", lr=0.1, momentum=0.9),
                                       dict(name="adam", lr=0.01)], ids=["sgd", "momentum", "adam"])
@pytest.mark.parametrize("loss", sorted(OUTPUT_FOR_LOSS))
def test_fit_equals_step_by_step(backend, simd, loss, optimizer, loss_targets, assert_close):
    """fit hands whole runs of epochs to one kernel call; the result equals calling the kernels
    batch by batch from Python (same shuffles from the same seeded generator): exactly where
    train_epochs runs the same layer kernels, to rounding where it runs a tiny network in the
    vector lanes of _compiled/lanes.h (their sums in another order, their own exp)."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(23, 3))
    y = loss_targets(loss, rng, 23, 2 if loss != "binary_crossentropy" else 1)
    n_out = 1 if loss == "binary_crossentropy" else 2
    fused = make_model([3, 5, n_out], out=OUTPUT_FOR_LOSS[loss], loss=loss,
                       optimizer=fnn.optimizers.from_config(optimizer), seed=4)
    history = fused.fit(X, y, epochs=3, batch_size=5, verbose=0)

    stepped = make_model([3, 5, n_out], out=OUTPUT_FOR_LOSS[loss], loss=loss,
                         optimizer=fnn.optimizers.from_config(optimizer), seed=4)
    data = trainer.Data.for_model(stepped, X, y)
    losses = []
    for _ in range(3):
        order = stepped._rng.permutation(23)
        total = 0.0
        for start in range(0, 23, 5):
            idx = order[start:start + 5]
            total += step_by_step(stepped, data.X[idx], data.y[idx], len(idx)) * len(idx)
            stepped.optimizer.step(stepped.network.params, stepped.network.grads)
        losses.append(total / 23)
    in_lanes = trainer.Trainer(fused.network, fused.loss_code, data, batch=5).path == "lanes"
    assert not (in_lanes and not simd)  # so the exact comparison below runs on the compiled backend too
    fused_params, stepped_params = fused.network.params, stepped.network.params
    if in_lanes:
        assert_close(fused_params, stepped_params, fused.dtype, scale=np.abs(stepped_params).max())
        assert_close(history.history["loss"], losses, fused.dtype, scale=max(losses))
    else:
        np.testing.assert_array_equal(fused_params, stepped_params)
        assert history.history["loss"] == losses


def test_history_of_runs_equals_history_of_single_epochs(backend, monkeypatch):
    """Without callbacks fit trains runs of epochs and History turns their arrays into lists when
    read; with a callback every epoch is its own run. Both give the same lists of Python floats."""
    import fastnn.model
    monkeypatch.setattr(fastnn.model, "_CHUNK_SECONDS", 1e-4)  # several runs of a few epochs each
    X, y = data.xor()
    runs = make_model([2, 3, 1], seed=2).fit(X, y, epochs=300, batch_size=2, verbose=0)
    seen = []
    single = make_model([2, 3, 1], seed=2).fit(X, y, epochs=300, batch_size=2, verbose=0,
                                               callbacks=[lambda epoch, logs: seen.append(epoch)])
    assert runs.epoch == single.epoch == seen == list(range(300))
    assert runs.history == single.history
    assert set(runs.history) == {"loss", "accuracy"}
    assert all(type(v) is float for values in runs.history.values() for v in values)


@pytest.mark.parametrize("with_callback", [False, True], ids=["runs", "every epoch"])
def test_divergence_in_the_first_epoch(backend, with_callback):
    """Overflowing logits in epoch 0: the error comes with an empty history, and the weights are
    the initial ones, whether fit trains runs of epochs or one epoch at a time."""
    model = make_model([3, 1], out="sigmoid", dtype="float32", optimizer=fnn.SGD(lr=1.0))
    before = model.get_weights()
    X = np.full((4, 3), 3e38, np.float32)
    callbacks = [lambda epoch, logs: None] if with_callback else None
    with pytest.raises(fnn.TrainingDivergedError, match="diverged at epoch 0") as info:
        model.fit(X, np.ones(4), epochs=5, verbose=0, callbacks=callbacks)
    assert info.value.history.epoch == [] and info.value.history.history == {}
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_divergence_stops_with_clear_error(backend):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(20, 3)) * 100
    y = rng.normal(size=(20, 1)) * 100
    model = make_model([3, 8, 1], hidden="relu", out="linear", loss="mse", optimizer=fnn.SGD(lr=10.0))
    history_seen = []
    with pytest.raises(fnn.TrainingDivergedError, match="diverged at epoch") as info:
        model.fit(X, y, epochs=100, batch_size=4, verbose=0,
                  callbacks=[lambda e, logs: history_seen.append(model.get_weights())])
    assert np.isfinite(model.network.params).all()
    finished = len(info.value.history.epoch)
    assert finished == len(history_seen)
    if finished:  # the weights are those at the end of the last finished epoch
        for a, b in zip(model.get_weights(), history_seen[-1]):
            np.testing.assert_array_equal(a, b)
