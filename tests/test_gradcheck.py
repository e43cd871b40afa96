"""fnn.gradcheck: the backward kernels agree with finite differences for every activation × loss on
both backends, and a deliberately wrong backward kernel is caught."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import data

ACTIVATIONS = ["linear", "sigmoid", "relu", "tanh", "leaky_relu", "softmax", "exp"]
# The output activation each loss is computed with; mse takes any (here: the hidden one again).
LOSSES = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
          "sparse_categorical_crossentropy": "softmax", "mse": None, "poisson": "exp"}


def random_model(activation, loss, dtype, loss_targets, seed=0):
    """3 -> 4 -> 4 -> 3 with every weight and bias random: two hidden layers, so the gradient also
    flows through a hidden layer's input gradient. Random biases keep relu's kink (z = 0 exactly,
    as a fresh layer gives for a row of zeros) away from the finite differences."""
    out = LOSSES[loss] or activation
    model = fnn.Sequential([fnn.Dense(3, 4, activation), fnn.Dense(4, 4, activation), fnn.Dense(4, 3, out)],
                           seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    model.compile(loss=loss, optimizer="sgd")
    X = rng.normal(size=(6, 3))
    return model, X, loss_targets(loss, rng, 6, 3)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_passes(backend, dtype, activation, loss, loss_targets):
    model, X, y = random_model(activation, loss, dtype, loss_targets)
    before = model.get_weights()
    result = fnn.gradcheck(model, X, y)
    assert result.passed, str(result)
    assert list(result.errors) == [f"layers[{l}].{p}" for l in range(3) for p in ("W", "b")]
    assert max(result.errors.values()) <= result.tolerance
    for w0, w1 in zip(before, model.get_weights()):  # the check leaves the model as it was
        np.testing.assert_array_equal(w0, w1)


def test_gradcheck_on_the_lesson_network(backend):
    X, y = data.xor()
    model = fnn.Sequential([fnn.Dense(2, 2, "sigmoid"), fnn.Dense(2, 1, "sigmoid")], seed=0, dtype="float64")
    model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=0.5))
    result = fnn.gradcheck(model, X, y)
    assert result.passed and "PASS" in str(result)


def wrong_gradient(backend, monkeypatch, target, spoil):
    """A test double of the training kernel whose gradient passes get one parameter array wrong:
    after the real pass, spoil(target) when the pass wrote the buffer target lies in."""
    real = backend.train_epochs

    def wrong_train_epochs(run, order, step, epoch_loss, epoch_correct, epoch_metrics):
        result = real(run, order, step, epoch_loss, epoch_correct, epoch_metrics)
        if run.update is None and np.shares_memory(run.grads, target):
            spoil(target)
        return result

    monkeypatch.setattr(backend, "train_epochs", wrong_train_epochs)


def test_gradcheck_checks_the_lanes_of_a_tiny_network(backend, simd):
    """On the compiled backend with the SIMD paths on, the 2-2-1 network's gradient comes from the
    lanes, the path its fit takes; otherwise from the layer-by-layer path. It passes both ways."""
    X, y = data.xor()
    model = fnn.Sequential([fnn.Dense(2, 2, "sigmoid"), fnn.Dense(2, 1, "sigmoid")], seed=0, dtype="float64")
    model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=0.5))
    result = fnn.gradcheck(model, X, y)
    lanes = simd and getattr(backend, "_simd_available", lambda: False)()
    assert result.path == ("lanes" if lanes else "layers")
    assert result.passed and result.path in str(result)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_gradcheck_catches_a_wrong_backward_kernel(backend, monkeypatch, layer, loss_targets):
    """A test double of dense_backward that gets dW of one layer 1 % wrong: gradcheck fails, and
    names that layer's W (and only it: the wrong dW does not flow into other gradients)."""
    model, X, y = random_model("tanh", "categorical_crossentropy", "float64", loss_targets=loss_targets)
    wrong_gradient(backend, monkeypatch, model.network.dW[layer], lambda dW: dW.__imul__(1.01))
    result = fnn.gradcheck(model, X, y)
    assert not result.passed
    assert "FAIL" in str(result) and "WRONG" in str(result)
    failing = [name for name, error in result.errors.items() if error > result.tolerance]
    assert failing == [f"layers[{layer}].W"]
    assert result.errors[f"layers[{layer}].W"] == pytest.approx(0.01 / 1.01, rel=1e-3)


def test_gradcheck_catches_a_wrong_bias_gradient(backend, monkeypatch, loss_targets):
    """A sign error in db of the output layer."""
    model, X, y = random_model("sigmoid", "mse", "float32", loss_targets=loss_targets)
    wrong_gradient(backend, monkeypatch, model.network.db[-1], lambda db: db.__imul__(-1))
    result = fnn.gradcheck(model, X, y)
    assert not result.passed
    assert result.errors["layers[2].b"] > 0.5


def test_gradcheck_eps_and_tolerance(backend, loss_targets):
    model, X, y = random_model("tanh", "mse", "float64", loss_targets=loss_targets)
    assert fnn.gradcheck(model, X, y, eps=1e-5).passed
    # A huge step makes the finite differences themselves wrong: the check must notice.
    assert not fnn.gradcheck(model, X, y, eps=0.5).passed
    result = fnn.gradcheck(model, X, y, tolerance=0.0)
    assert result.tolerance == 0.0 and not result.passed


def test_gradcheck_arguments(loss_targets):
    model, X, y = random_model("tanh", "mse", "float64", loss_targets=loss_targets)
    with pytest.raises(ValueError, match="eps"):
        fnn.gradcheck(model, X, y, eps=0.0)
    with pytest.raises(TypeError, match="model"):
        fnn.gradcheck("model", X, y)
    with pytest.raises(ValueError, match="X"):
        fnn.gradcheck(model, X[:, :2], y)
    with model.network.lock:  # as while a fit runs in another thread
        with pytest.raises(RuntimeError, match="being fitted in another thread"):
            fnn.gradcheck(model, X, y)
    uncompiled = fnn.Sequential([fnn.Dense(3, 1)])
    with pytest.raises(RuntimeError, match="compile"):
        fnn.gradcheck(uncompiled, X, y[:, :1])
