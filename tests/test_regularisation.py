"""Regularisation and the optimizer step, on both backends (and the compiled one's SIMD paths on
and off): the optimizer step kernel and the learning-rate schedules against float64 references
written here from fastnn._contract.Update's formulas and Keras' schedules; the twins agreeing on
whole fits with dropout, schedules, clipping, RMSprop and kernel regularizers; chunked fits equal to
epoch-by-epoch and resumed ones; dropout's semantics (masks from the contract's splitmix64 stream,
none in predict and evaluate); gradcheck through dropout and penalties; the compiled metrics; and
which of the compiled step's paths (lanes or layers) a tiny network takes."""
import math
import subprocess
import sys
import types

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _contract as C
from fastnn import trainer
from fastnn._fallback import trainer as fallback_trainer
from fastnn.schedules import CosineDecay, ExponentialDecay, PiecewiseConstantDecay

F64 = np.dtype(np.float64)
SIZES = np.array([3, 4, 2], np.int64)  # two layers: W0 [0, 12), b0 [12, 16), W1 [16, 24), b1 [24, 26)
N_PARAMS = C.layout(SIZES)[1]


# ----------------------------------------------------------------------------- float64 references

def segments(sizes):
    """[(start, stop)] of each layer's W and b in the flat buffer (the contract's layout)."""
    slices, _ = C.layout(sizes)
    return [part for s in slices for part in ((s.w_at, s.b_at), (s.b_at, s.end))]


def reference_clip(g, sizes, clipvalue=0.0, clipnorm=0.0, global_clipnorm=0.0):
    """Update's step 2 in float64: clipvalue per element, clipnorm per W and per b, global_clipnorm over all."""
    g = np.array(g, np.float64)
    if clipvalue:
        return np.minimum(np.maximum(g, -clipvalue), clipvalue)
    parts = segments(sizes) if clipnorm else [(0, g.size)] if global_clipnorm else []
    limit = clipnorm or global_clipnorm
    for start, stop in parts:
        norm = math.sqrt(float(np.sum(g[start:stop] ** 2)))
        if norm > limit:
            g[start:stop] *= limit / norm
    return g


class ReferenceOptimizer:
    """Update's step 3 in float64, with its own state: written from the contract's docstring."""

    def __init__(self, settings, n):
        self.s = dict(settings)
        self.state = {name: np.zeros(n) for name in ("velocity", "m", "v")}

    def step(self, params, grads, t, lr):
        s, st, p, g = self.s, self.state, np.array(params, np.float64), np.array(grads, np.float64)
        kind = s["optimizer"]
        if kind == C.SGD:
            return p - lr * g
        if kind in (C.MOMENTUM, C.NESTEROV):
            mu = s["momentum"]
            st["velocity"] = mu * st["velocity"] - lr * g
            return p + (mu * st["velocity"] - lr * g if kind == C.NESTEROV else st["velocity"])
        if kind == C.RMSPROP:
            rho, eps, mu = s.get("rho", 0.9), s.get("eps", 1e-8), s.get("momentum", 0.0)
            st["v"] = rho * st["v"] + (1 - rho) * g * g
            increment = lr * g / np.sqrt(st["v"] + eps)
            if mu > 0:
                st["velocity"] = mu * st["velocity"] + increment
                return p - st["velocity"]
            return p - increment
        b1, b2, eps = s.get("beta1", 0.9), s.get("beta2", 0.999), s.get("eps", 1e-8)  # ADAM, ADAMW
        if kind == C.ADAMW:
            p = p - lr * s["weight_decay"] * p
        st["m"] = b1 * st["m"] + (1 - b1) * g
        st["v"] = b2 * st["v"] + (1 - b2) * g * g
        return p - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * st["m"] / (np.sqrt(st["v"]) + eps)


def make_update(settings, dtype, n=N_PARAMS, **extra):
    """An Update with zeroed state arrays of `dtype` for every state the optimizer may use."""
    state = {name: np.zeros(n, dtype) for name in ("velocity", "m", "v")}
    return C.Update(**settings, **extra, **state)


# Keras' schedules at `it` = optimizer.iterations (the steps taken before this one), written from its source.

def keras_exponential(it, initial, decay_steps, rate, staircase=False):
    p = it / decay_steps
    return initial * rate ** (math.floor(p) if staircase else p)


def keras_piecewise(it, boundaries, values):
    for boundary, value in zip(boundaries, values):
        if it <= boundary:
            return value
    return values[-1]


def keras_cosine(it, initial, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(step, peak):
        return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha)
    if warmup_target is None:
        return decay(min(it, decay_steps), initial)
    s = min(it, decay_steps + warmup_steps)
    if s < warmup_steps:
        return initial + (warmup_target - initial) * s / warmup_steps
    return decay(s - warmup_steps, warmup_target)


def schedule_update(code, args):
    """An Update whose rate is schedule `code` with numbers `args` (fastnn._contract.SCHEDULES)."""
    return C.Update(optimizer=C.SGD, lr=0.0, schedule=code, schedule_args=np.array(args, np.float64))


# ----------------------------------------------------------------------------- models and data

def binary_data(n=48, n_in=4, seed=0):
    """X (n, n_in) standard normal and 0/1 targets of a non-linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    return X, (X[:, 0] * X[:, 1] + 0.5 * X[:, -1] > 0).astype(float)


def dropout_model(seed=3, optimizer=None):
    """4 -> Dropout(0.25) -> 16 tanh -> Dropout(0.5) -> 8 tanh -> 1 sigmoid, binary cross-entropy."""
    return compiled_model([fnn.Input(shape=(4,)), fnn.Dropout(0.25), fnn.Dense(16, "tanh"), fnn.Dropout(0.5),
                           fnn.Dense(8, "tanh"), fnn.Dense(1, "sigmoid")], seed,
                          optimizer or fnn.SGD(learning_rate=0.2, momentum=0.5))


def compiled_model(layers, seed, optimizer, loss="binary_crossentropy", metrics=None):
    """A float64 Sequential of `layers`, compiled."""
    model = fnn.Sequential(layers, seed=seed, dtype="float64")
    model.compile(loss, optimizer, metrics=metrics)
    return model


def plain_model(seed, optimizer, regularizer=None):
    """4 -> 16 tanh (kernel_regularizer) -> 8 tanh -> 1 sigmoid, binary cross-entropy: no dropout."""
    return compiled_model([fnn.Input(shape=(4,)), fnn.Dense(16, "tanh", kernel_regularizer=regularizer),
                           fnn.Dense(8, "tanh"), fnn.Dense(1, "sigmoid")], seed, optimizer)


# Fits that both twins must agree on. Hidden layers of 16 float64 keep them off the lanes.
TWIN_CASES = {
    "dropout": lambda: dropout_model(),
    "scheduled": lambda: plain_model(5, fnn.AdamW(learning_rate=CosineDecay(0.0, decay_steps=20, alpha=0.1,
                                                                            warmup_target=0.02, warmup_steps=6),
                                                  weight_decay=0.05)),
    "clipvalue": lambda: plain_model(6, fnn.SGD(learning_rate=0.5, momentum=0.5, clipvalue=0.01)),
    "clipnorm": lambda: plain_model(6, fnn.SGD(learning_rate=0.5, momentum=0.5, nesterov=True, clipnorm=0.03)),
    "global_clipnorm": lambda: plain_model(6, fnn.Adam(learning_rate=0.05, global_clipnorm=0.05)),
    "rmsprop": lambda: plain_model(7, fnn.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.5)),
    "l1_l2": lambda: plain_model(8, fnn.SGD(learning_rate=0.3), fnn.regularizers.l1_l2(l1=1e-3, l2=1e-2)),
}


def fit_case(make, epochs=5, **options):
    """(model, History) of make()'s fit on binary_data in shuffled batches of 8."""
    X, y = binary_data()
    model = make()
    history = model.fit(X, y, epochs=epochs, batch_size=8, verbose=0, **options)
    return model, history


def assert_same_fit(a, history_a, b, history_b):
    """Bit for bit: weights, optimizer state and step count, History."""
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.optimizer.iterations == b.optimizer.iterations
    assert sorted(a.optimizer.state) == sorted(b.optimizer.state)
    for name in a.optimizer.state:
        np.testing.assert_array_equal(a.optimizer.state[name], b.optimizer.state[name])
    assert history_a.epoch == history_b.epoch
    assert history_a.history == history_b.history


def lanes_expected(backend, simd):
    """Whether a lanes-eligible run takes the lanes here: the compiled backend, SIMD on and on this CPU."""
    return bool(simd and getattr(backend, "_simd_available", lambda: False)())


def fit_path(model, X, y, batch=4):
    """The path of the training step fit takes: its Trainer built as Sequential._trainer builds it."""
    data = trainer.Data.for_model(model, X, y)
    return trainer.Trainer(model.network, model.loss_code, data, batch=batch, update=model.optimizer.update(),
                           metrics=model._metric_codes, top_k=model._top_k, **model.step_options()).path


@pytest.fixture(params=[True, False], ids=["simd", "portable"])
def compiled_simd(request, both_backends):
    """For the twin comparisons: the compiled backend's SIMD paths on and off (as `simd` does for `backend`)."""
    compiled = both_backends["cython"]
    previous = compiled._set_simd(request.param)
    yield request.param
    compiled._set_simd(previous)


# ----------------------------------------------------------------------------- 1. the optimizer step kernel

OPTIMIZERS = {
    "sgd": dict(optimizer=C.SGD, lr=0.1),
    "momentum": dict(optimizer=C.MOMENTUM, lr=0.1, momentum=0.8),
    "nesterov": dict(optimizer=C.NESTEROV, lr=0.1, momentum=0.8),
    "adam": dict(optimizer=C.ADAM, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6),
    "adamw": dict(optimizer=C.ADAMW, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.3),
    "rmsprop": dict(optimizer=C.RMSPROP, lr=0.02, rho=0.8, eps=1e-5),
    "rmsprop_momentum": dict(optimizer=C.RMSPROP, lr=0.02, rho=0.8, eps=1e-5, momentum=0.6),
}


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "scheduled"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_step_follows_the_contract_over_several_steps(backend, simd, dtype, name, scheduled,
                                                                assert_close):
    """Five steps of optimizer_step, with new gradients each step and the state carried, equal a
    float64 reference of Update's formulas (non-default hyper-parameters, so a default used in
    place of the setting shows): the parameters and every state array the optimizer updates.
    Scheduled: the rate (AdamW's decay included) is ExponentialDecay's at iterations t - 1."""
    settings = OPTIMIZERS[name]
    rng = np.random.default_rng(1)
    params = rng.normal(size=N_PARAMS).astype(dtype)
    initial = params.copy()
    decay = (settings["lr"], 2.0, 0.5, 0.0)
    if scheduled:
        update = make_update({**settings, "lr": 0.0}, dtype, schedule=C.EXPONENTIAL, schedule_args=np.array(decay))
    else:
        update = make_update(settings, dtype)
    reference = ReferenceOptimizer(settings, N_PARAMS)
    expected = params.astype(np.float64)
    state = C.STATE[settings["optimizer"]] + (("velocity",) if name == "rmsprop_momentum" else ())
    for t in range(1, 6):
        grads = rng.normal(size=N_PARAMS).astype(dtype)
        expected = reference.step(expected, grads, t, keras_exponential(t - 1, *decay) if scheduled else settings["lr"])
        backend.optimizer_step(update, params, grads, t, SIZES)
        assert_close(params, expected, dtype, scale=np.abs(expected).max())
        for array in state:
            assert_close(getattr(update, array), reference.state[array], dtype,
                         scale=np.abs(reference.state[array]).max())
    assert np.abs(params - initial).max() > 0.01  # the steps were not vanishingly small


def test_optimizer_step_without_momentum_leaves_rmsprop_velocity_alone(backend, simd):
    """RMSprop without momentum has no velocity state (contract.STATE, Update.velocity: "RMSPROP with
    momentum > 0"): a velocity array passed along anyway is left as it is, by both twins alike."""
    update = make_update(OPTIMIZERS["rmsprop"], np.float64)
    backend.optimizer_step(update, np.ones(N_PARAMS), np.full(N_PARAMS, 0.5), 1, SIZES)
    assert not update.velocity.any() and not update.m.any()


def test_optimizer_step_takes_the_scheduled_rate_of_its_step(backend, simd, dtype, assert_close):
    """With a schedule, step t moves SGD's parameters by the schedule's rate at iterations t - 1."""
    args = [0.4, 3.0, 0.5, 0.0]  # ExponentialDecay(0.4, 3, 0.5)
    update = make_update(dict(optimizer=C.SGD, lr=0.0), dtype, schedule=C.EXPONENTIAL,
                         schedule_args=np.array(args))
    params = np.zeros(N_PARAMS, dtype)
    grads = np.ones(N_PARAMS, dtype)
    expected = 0.0
    for t in (1, 2, 5, 9):
        expected -= keras_exponential(t - 1, *args)
        backend.optimizer_step(update, params, grads.copy(), t, SIZES)
        assert_close(params, np.full(N_PARAMS, expected), dtype, scale=abs(expected))


def clipping_gradient(dtype):
    """W0 and W1 large (norms ~3), b0 and b1 small (norms ~0.02): some segments above a limit of 1, some below."""
    rng = np.random.default_rng(2)
    g = rng.normal(size=N_PARAMS)
    g[12:16] *= 0.01
    g[24:26] *= 0.01
    return g.astype(dtype)


CLIPS = {  # kind -> (a limit the gradient is within, a limit it exceeds)
    "clipvalue": (100.0, 0.3),
    "clipnorm": (100.0, 1.0),
    "global_clipnorm": (100.0, 1.0),
}


@pytest.mark.parametrize("active", [False, True], ids=["below the limit", "above the limit"])
@pytest.mark.parametrize("kind", CLIPS)
def test_clipping(backend, simd, dtype, kind, active, assert_close):
    """The gradient is clipped in place before the step (SGD, lr 1: params -= clipped g):
    clipvalue per element; clipnorm each layer's W and b separately (segments below the limit
    untouched, those above scaled to norm = limit); global_clipnorm all of g at once. Under the
    limit, the gradient is left exactly as it was."""
    limit = CLIPS[kind][active]
    grads = clipping_gradient(dtype)
    original = grads.copy()
    params = np.linspace(-1, 1, N_PARAMS).astype(dtype)
    expected_g = reference_clip(original, SIZES, **{kind: limit})
    update = make_update(dict(optimizer=C.SGD, lr=1.0), dtype, **{kind: limit})
    expected_p = params.astype(np.float64) - expected_g
    backend.optimizer_step(update, params, grads, 1, SIZES)
    assert_close(grads, expected_g, dtype, scale=np.abs(expected_g).max())
    assert_close(params, expected_p, dtype, scale=np.abs(expected_p).max())
    if not active:
        np.testing.assert_array_equal(grads, original)
        return
    assert not np.array_equal(grads, original)
    if kind == "clipvalue":
        assert np.abs(grads).max() <= dtype.type(limit) and (np.abs(grads) == dtype.type(limit)).any()
    elif kind == "clipnorm":
        for start, stop in segments(SIZES):
            norm = np.linalg.norm(original[start:stop].astype(np.float64))
            if norm > limit:
                assert_close(np.linalg.norm(grads[start:stop].astype(np.float64)), limit, dtype)
            else:  # b0 and b1: below the limit, not scaled along with the W's
                np.testing.assert_array_equal(grads[start:stop], original[start:stop])
    else:
        assert_close(np.linalg.norm(grads.astype(np.float64)), limit, dtype)
        assert np.linalg.norm(original[12:16].astype(np.float64)) < limit  # b0 is scaled anyway: global
        assert not np.array_equal(grads[12:16], original[12:16])


def test_clipnorm_and_global_clipnorm_differ_on_a_two_layer_gradient(backend, simd):
    """The same limit clips per tensor and globally to different gradients (so neither is the other)."""
    per_tensor, overall = clipping_gradient(np.float64), clipping_gradient(np.float64)
    backend.optimizer_step(make_update(dict(optimizer=C.SGD, lr=1.0), F64, clipnorm=1.0),
                           np.zeros(N_PARAMS), per_tensor, 1, SIZES)
    backend.optimizer_step(make_update(dict(optimizer=C.SGD, lr=1.0), F64, global_clipnorm=1.0),
                           np.zeros(N_PARAMS), overall, 1, SIZES)
    assert np.linalg.norm(per_tensor) > 1.4 and abs(np.linalg.norm(overall) - 1.0) < 1e-12


# ----------------------------------------------------------------------------- 1. schedules in the kernel

@pytest.mark.parametrize("staircase", [False, True], ids=["smooth", "staircase"])
def test_scheduled_lr_exponential_decay(backend, simd, staircase, assert_close):
    """initial * rate ** (it / decay_steps), the exponent floored with staircase; step k is it = k - 1."""
    args = (0.1, 10.0, 0.5, float(staircase))
    update = schedule_update(C.EXPONENTIAL, args)
    for step in (1, 2, 6, 10, 11, 12, 16, 21, 101):
        assert_close(backend.scheduled_lr(update, step), keras_exponential(step - 1, 0.1, 10, 0.5, staircase), F64)
    assert_close(backend.scheduled_lr(update, 11), 0.05, F64)  # it = 10: one full decay either way
    assert_close(backend.scheduled_lr(update, 16), 0.05 if staircase else 0.1 * 0.5 ** 1.5, F64)


def test_scheduled_lr_piecewise_constant_decay(backend, simd):
    """values[0] while it <= boundaries[0], values[i] while b[i-1] < it <= b[i], values[-1] after:
    at, just before and just after each boundary (step k is it = k - 1)."""
    update = schedule_update(C.PIECEWISE, [10.0, 20.0, 1.0, 0.5, 0.1])
    expected = {1: 1.0, 10: 1.0, 11: 1.0, 12: 0.5, 20: 0.5, 21: 0.5, 22: 0.1, 1000: 0.1}
    for step, value in expected.items():
        assert backend.scheduled_lr(update, step) == value == keras_piecewise(step - 1, [10, 20], [1.0, 0.5, 0.1])


@pytest.mark.parametrize("warmup", [False, True], ids=["no warm-up", "warm-up"])
def test_scheduled_lr_cosine_decay(backend, simd, warmup, assert_close):
    """Keras' CosineDecay: with warm-up from initial to target over warmup_steps, then half a cosine
    down to alpha * target over decay_steps, where it stays. Checked at the first step, mid
    warm-up, the end of warm-up, mid decay and long after the decay, against numbers worked out by hand."""
    if warmup:
        update = schedule_update(C.COSINE, [0.0, 100.0, 0.1, 0.01, 10.0])
        by_hand = {1: 0.0, 6: 0.005, 11: 0.01, 61: 0.01 * (0.9 * 0.5 + 0.1), 111: 0.001, 5000: 0.001}
    else:
        update = schedule_update(C.COSINE, [0.01, 100.0, 0.1, 0.01, 0.0])
        by_hand = {1: 0.01, 51: 0.01 * (0.9 * 0.5 + 0.1), 101: 0.001, 5000: 0.001}
    for step, value in by_hand.items():
        assert_close(backend.scheduled_lr(update, step), value, F64, scale=0.01)
    keras = dict(warmup_target=0.01, warmup_steps=10) if warmup else {}
    for step in range(1, 130, 7):
        assert_close(backend.scheduled_lr(update, step),
                     keras_cosine(step - 1, 0.0 if warmup else 0.01, 100, 0.1, **keras), F64, scale=0.01)


def test_scheduled_lr_refuses_step_zero(backend, simd):
    with pytest.raises(ValueError, match="step must be >= 1"):
        backend.scheduled_lr(schedule_update(C.PIECEWISE, [1.0, 0.1, 0.2]), 0)


BAD_SCHEDULE_ARGS = {  # (schedule code, schedule_args): what train_epochs' checks refuse (contract._check_update)
    "no numbers": (C.EXPONENTIAL, None),
    "too few numbers": (C.COSINE, [0.1]),
    "unknown code": (7, [0.1, 10.0, 0.0, 0.1, 0.0]),  # as many numbers as COSINE takes
}

ISOLATED_CALLS = """
import importlib, numpy as np
from fastnn import _contract as C
kernels = importlib.import_module({module!r})
args = None if {args!r} is None else np.array({args!r})
for call in ("scheduled_lr", "optimizer_step"):
    update = C.Update(optimizer=C.SGD, lr=0.0, schedule={code!r}, schedule_args=args)
    params = np.zeros(5)
    try:
        if call == "scheduled_lr":
            result = kernels.scheduled_lr(update, 3)
        else:
            kernels.optimizer_step(update, params, np.ones(5), 3, np.array([2, 1, 1]))
            result = params.tolist()
        print(call, "returned", result, flush=True)
    except Exception as exc:
        print(call, "raised", type(exc).__name__, exc, flush=True)
"""


@pytest.mark.parametrize("case", BAD_SCHEDULE_ARGS)
def test_kernels_refuse_schedule_args_that_do_not_fit(backend, case, tmp_path):
    """scheduled_lr and optimizer_step read Update.schedule_args as the schedule's numbers: numbers
    that do not fit the schedule (none, too few, an unknown schedule) are refused with the contract's
    ValueError, as train_epochs refuses them, not read past the array's end. Run in a fresh
    interpreter, where a crash fails this test instead of ending the test run."""
    code, args = BAD_SCHEDULE_ARGS[case]
    source = ISOLATED_CALLS.format(module=backend.__name__, code=code, args=args)
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # outside the checkout: the installed fastnn, not the source folder
    assert done.returncode == 0, f"the interpreter died (return code {done.returncode}): {done.stdout}{done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    for line in lines:
        assert " raised ValueError " in line and "schedule" in line.split(" raised ", 1)[1], line


# ----------------------------------------------------------------------------- 1. the public schedules

PUBLIC_SCHEDULES = {
    "exponential": (lambda: ExponentialDecay(0.2, decay_steps=7, decay_rate=0.3),
                    lambda it: keras_exponential(it, 0.2, 7, 0.3)),
    "staircase": (lambda: ExponentialDecay(0.2, decay_steps=7, decay_rate=0.3, staircase=True),
                  lambda it: keras_exponential(it, 0.2, 7, 0.3, True)),
    "piecewise": (lambda: PiecewiseConstantDecay([5, 12, 30], [0.3, 0.2, 0.1, 0.05]),
                  lambda it: keras_piecewise(it, [5, 12, 30], [0.3, 0.2, 0.1, 0.05])),
    "cosine": (lambda: CosineDecay(0.1, decay_steps=40, alpha=0.2),
               lambda it: keras_cosine(it, 0.1, 40, 0.2)),
    "cosine_warmup": (lambda: CosineDecay(0.001, decay_steps=40, alpha=0.0, warmup_target=0.1, warmup_steps=8),
                      lambda it: keras_cosine(it, 0.001, 40, 0.0, 0.1, 8)),
    "cosine_ignored_warmup_steps": (lambda: CosineDecay(0.1, decay_steps=40, warmup_steps=8),  # Keras: no target, no warm-up
                                    lambda it: keras_cosine(it, 0.1, 40)),
}


@pytest.mark.parametrize("name", PUBLIC_SCHEDULES)
def test_public_schedules_equal_keras_formulas(backend, simd, name, assert_close):
    """schedule(iterations) of fastnn.schedules' objects is Keras' formula at those iterations."""
    make, formula = PUBLIC_SCHEDULES[name]
    schedule = make()
    for it in list(range(0, 60)) + [500, 10 ** 6]:
        assert_close(schedule(it), formula(it), F64, scale=0.3)
    with pytest.raises(ValueError, match="iterations"):
        schedule(-1)


def test_optimizer_learning_rate_follows_its_schedule_through_fit(backend, simd):
    """After a fit, optimizer.learning_rate is the schedule at optimizer.iterations (the next step's rate)."""
    schedule = ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5)
    model, _ = fit_case(lambda: plain_model(0, fnn.SGD(learning_rate=schedule)), epochs=2)
    assert model.optimizer.iterations == 12
    assert model.optimizer.learning_rate == schedule(12) == pytest.approx(0.1 * 0.5 ** 4)


BAD_SCHEDULES = {
    "exponential zero rate": (lambda: ExponentialDecay(0.0, 10, 0.5), ValueError, "initial_learning_rate"),
    "exponential negative rate": (lambda: ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_learning_rate"),
    "exponential nan rate": (lambda: ExponentialDecay(float("nan"), 10, 0.5), ValueError, "initial_learning_rate"),
    "exponential decay_steps 0": (lambda: ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps"),
    "exponential decay_steps float": (lambda: ExponentialDecay(0.1, 2.5, 0.5), TypeError, "decay_steps"),
    "exponential decay_rate 0": (lambda: ExponentialDecay(0.1, 10, 0.0), ValueError, "decay_rate"),
    "exponential decay_rate negative": (lambda: ExponentialDecay(0.1, 10, -0.5), ValueError, "decay_rate"),
    "exponential staircase": (lambda: ExponentialDecay(0.1, 10, 0.5, staircase="yes"), TypeError, "staircase"),
    "piecewise too few values": (lambda: PiecewiseConstantDecay([10, 20], [1.0, 0.5]), ValueError, "values"),
    "piecewise too many values": (lambda: PiecewiseConstantDecay([10], [1.0, 0.5, 0.1]), ValueError, "values"),
    "piecewise decreasing": (lambda: PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]), ValueError, "boundaries"),
    "piecewise repeated": (lambda: PiecewiseConstantDecay([10, 10], [1.0, 0.5, 0.1]), ValueError, "boundaries"),
    "piecewise zero value": (lambda: PiecewiseConstantDecay([10], [1.0, 0.0]), ValueError, r"values\[1\]"),
    "piecewise negative value": (lambda: PiecewiseConstantDecay([10], [-1.0, 0.5]), ValueError, r"values\[0\]"),
    "cosine zero rate": (lambda: CosineDecay(0.0, 100), ValueError, "initial_learning_rate"),
    "cosine negative rate": (lambda: CosineDecay(-0.1, 100, warmup_target=0.1, warmup_steps=10), ValueError,
                             "initial_learning_rate"),
    "cosine decay_steps 0": (lambda: CosineDecay(0.1, 0), ValueError, "decay_steps"),
    "cosine alpha below 0": (lambda: CosineDecay(0.1, 100, alpha=-0.1), ValueError, "alpha"),
    "cosine alpha above 1": (lambda: CosineDecay(0.1, 100, alpha=1.5), ValueError, "alpha"),
    "cosine zero target": (lambda: CosineDecay(0.0, 100, warmup_target=0.0, warmup_steps=10), ValueError,
                           "warmup_target"),
    "cosine negative warmup": (lambda: CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=-1), ValueError,
                               "warmup_steps"),
}


@pytest.mark.parametrize("case", BAD_SCHEDULES)
def test_schedule_constructors_refuse_bad_values(case):
    """Every schedule's numbers are checked when it is made; the error names the argument."""
    make, error, name = BAD_SCHEDULES[case]
    with pytest.raises(error, match=name):
        make()


def test_schedule_edge_values_are_accepted():
    """The ends of the allowed ranges: alpha 0 and 1, initial 0 with a warm-up target, one boundary."""
    assert CosineDecay(0.1, 10, alpha=1.0)(5) == pytest.approx(0.1)
    assert CosineDecay(0.1, 10, alpha=0.0)(10) == 0.0
    assert CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=4)(0) == 0.0
    assert PiecewiseConstantDecay([0], [0.2, 0.1])(0) == 0.2


# ----------------------------------------------------------------------------- 2. the twins agree on whole fits

@pytest.mark.parametrize("case", TWIN_CASES)
def test_twins_agree_on_a_fit(both_backends, compiled_simd, case, assert_close):
    """The same fit (float64, shuffled mini-batches) on the compiled and the NumPy backend: weights
    and History agree to float64 rounding (1e-12, relative to the weights' magnitude)."""
    with fnn.use_backend("cython"):
        compiled, compiled_history = fit_case(TWIN_CASES[case], validation_split=0.25)
    with fnn.use_backend("python"):
        numpy_, numpy_history = fit_case(TWIN_CASES[case], validation_split=0.25)
    assert compiled.optimizer.iterations == numpy_.optimizer.iterations == 5 * 5  # 36 rows: 5 batches of <= 8
    for a, b in zip(compiled.get_weights(), numpy_.get_weights()):
        assert_close(a, b, F64, scale=np.abs(b).max())
    assert compiled_history.epoch == numpy_history.epoch == list(range(5))
    assert set(compiled_history.history) == set(numpy_history.history) == {"loss", "accuracy", "val_loss",
                                                                            "val_accuracy"}
    for key, values in numpy_history.history.items():
        assert_close(compiled_history.history[key], values, F64, scale=max(values))


@pytest.mark.parametrize("case", TWIN_CASES)
def test_rerun_with_the_same_seed_is_bit_identical(backend, simd, case):
    """Two fits of the same model with the same seed on one backend: every bit the same."""
    first, first_history = fit_case(TWIN_CASES[case])
    second, second_history = fit_case(TWIN_CASES[case])
    assert_same_fit(first, first_history, second, second_history)


# The twin fits without their schedule, clipping or penalty (dropout's effect: test_twins_draw_the_same_masks).
BARE_CASES = {
    "scheduled": lambda: plain_model(5, fnn.AdamW(learning_rate=0.02, weight_decay=0.05)),
    "clipvalue": lambda: plain_model(6, fnn.SGD(learning_rate=0.5, momentum=0.5)),
    "clipnorm": lambda: plain_model(6, fnn.SGD(learning_rate=0.5, momentum=0.5, nesterov=True)),
    "global_clipnorm": lambda: plain_model(6, fnn.Adam(learning_rate=0.05)),
    "l1_l2": lambda: plain_model(8, fnn.SGD(learning_rate=0.3)),
}


@pytest.mark.parametrize("case", BARE_CASES)
def test_twin_fits_are_not_vacuous(backend, simd, case):
    """The schedule, each clipping and the penalty of the twin fits change them: without it the same
    fit (same seed, same shuffles) ends on other weights."""
    def weights(make):
        return np.concatenate([w.ravel() for w in fit_case(make, epochs=2)[0].get_weights()])
    assert np.abs(weights(BARE_CASES[case]) - weights(TWIN_CASES[case])).max() > 1e-4


# ----------------------------------------------------------------------------- 3. chunked runs and resumed fits

def chunked_model():
    """The dropout network with an exponentially decaying rate and clipnorm."""
    return dropout_model(seed=11, optimizer=fnn.SGD(learning_rate=ExponentialDecay(0.3, 4, 0.7), momentum=0.5,
                                                     clipnorm=0.05))


def test_chunked_fit_equals_epoch_by_epoch(backend, simd, monkeypatch):
    """fit without callbacks hands several epochs to one kernel call; with a (no-op) callback every
    epoch is its own call. With dropout (masks keyed by the step), a schedule (evaluated at the
    step) and clipping, both give the same bits: weights, optimizer state, iterations, History."""
    import fastnn.model
    monkeypatch.setattr(fastnn.model, "_CHUNK_SECONDS", 10.0)  # after the first epoch, the rest in one call
    calls = []
    epochs = trainer.Trainer.epochs

    def recording(self, count, order=None, step=0):
        calls.append(count)
        return epochs(self, count, order, step)

    monkeypatch.setattr(trainer.Trainer, "epochs", recording)
    chunked, chunked_history = fit_case(chunked_model, epochs=6)
    assert max(calls) > 1, calls
    calls.clear()
    single, single_history = fit_case(chunked_model, epochs=6, callbacks=[lambda epoch, logs: None])
    assert calls == [1] * 6
    assert_same_fit(chunked, chunked_history, single, single_history)


def test_resumed_fit_equals_one_fit(backend, simd):
    """fit(epochs=3) then fit(epochs=6, initial_epoch=3) is fit(epochs=6): the same shuffles, dropout
    masks and scheduled rates, so the same weights, iterations and losses, bit for bit."""
    X, y = binary_data()
    whole = chunked_model()
    whole_history = whole.fit(X, y, epochs=6, batch_size=8, verbose=0)
    resumed = chunked_model()
    first = resumed.fit(X, y, epochs=3, batch_size=8, verbose=0)
    second = resumed.fit(X, y, epochs=6, batch_size=8, verbose=0, initial_epoch=3)
    assert first.epoch == [0, 1, 2] and second.epoch == [3, 4, 5]
    assert resumed.optimizer.iterations == whole.optimizer.iterations == 36
    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first.history["loss"] + second.history["loss"] == whole_history.history["loss"]


# ----------------------------------------------------------------------------- 4. dropout

def keep_mask(seed, step, layer, size, rate):
    """The contract's mask, element by element in pure Python: 1 / (1 - rate) where
    keep_bits(mask_base, e) >= keep_threshold(rate), else 0."""
    base, threshold = C.mask_base(seed, step, layer), C.keep_threshold(rate)
    kept = [C.keep_bits(base, e) >= threshold for e in range(size)]
    return np.where(kept, 1.0 / (1.0 - rate), 0.0)


def test_keep_fraction_is_one_minus_the_rate():
    """Over 100k elements, the fraction dropped is the rate within 0.01, for several rates, steps and
    layers; the NumPy twin's masks are the contract's keep_bits element by element; each step,
    layer and seed is a stream of its own."""
    for rate, step, layer in ((0.3, 1, 0), (0.3, 7, 2), (0.5, 3, 1), (0.1, 1000, 0)):
        run = types.SimpleNamespace(dropout=np.array([rate] * 3), dropout_seed=12345)
        mask = fallback_trainer._dropout_mask(run, step, layer, (1000, 100), np.dtype(np.float64))
        dropped = np.mean(mask == 0)
        assert abs(dropped - rate) < 0.01, (rate, step, layer, dropped)
        np.testing.assert_array_equal(mask.ravel()[:50], keep_mask(12345, step, layer, 50, rate))
    first = keep_mask(1, 1, 0, 2000, 0.5)
    for other in ((1, 2, 0), (1, 1, 1), (2, 1, 0)):
        assert 0.4 < np.mean(first == keep_mask(*other, 2000, 0.5)) < 0.6  # as unrelated as two coin tosses


def test_keep_threshold():
    assert C.keep_threshold(0.0) == 0 and C.keep_threshold(0.5) == 2 ** 31
    assert C.keep_threshold(0.3) == int(0.3 * 2.0 ** 32)
    assert C.lowbias32(0) == 0 and C.lowbias32(1) != 1  # a bijection of uint32 with 0 fixed


def dropout_regression(seed=1):
    """5 -> Dropout(0.25) -> 6 tanh -> Dropout(0.5) -> 2 linear, MSE, with random weights and biases."""
    model = compiled_model([fnn.Input(shape=(5,)), fnn.Dropout(0.25), fnn.Dense(6, "tanh"), fnn.Dropout(0.5),
                            fnn.Dense(2)], seed, fnn.SGD(learning_rate=1e-3), loss="mse")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model, rng.normal(size=(8, 5)), rng.normal(size=(8, 2))


def test_train_on_batch_gradient_uses_the_contracts_masks(backend, simd, assert_close):
    """train_on_batch's loss and gradient equal numpy's for the masks the contract defines (step 1,
    layer 0 on the data, layer 1 on the hidden output, the backward pass through the same masks)."""
    model, X, Y = dropout_regression()
    W0, b0, W1, b1 = model.get_weights()
    loss = model.train_on_batch(X, Y)
    seed = model.step_options()["dropout_seed"]
    m0 = keep_mask(seed, 1, 0, X.size, 0.25).reshape(X.shape)
    X0 = X * m0
    A1 = np.tanh(X0 @ W0 + b0)
    m1 = keep_mask(seed, 1, 1, A1.size, 0.5).reshape(A1.shape)
    A1d = A1 * m1
    out = A1d @ W1 + b1
    assert_close(loss, np.mean((out - Y) ** 2), F64)
    d_out = 2 * (out - Y) / out.size
    dZ1 = (d_out @ W1.T) * m1 * (1 - A1 ** 2)
    network = model.network
    for got, expected in ((network.dW[1], A1d.T @ d_out), (network.db[1], d_out.sum(0)),
                          (network.dW[0], X0.T @ dZ1), (network.db[0], dZ1.sum(0))):
        assert_close(got, expected, F64, scale=np.abs(expected).max())
    assert 0 < np.count_nonzero(m0 == 0) < m0.size and 0 < np.count_nonzero(m1 == 0) < m1.size


def test_twins_draw_the_same_masks(both_backends, compiled_simd, assert_close):
    """One batch of SGD (lr small) on each backend from the same weights and seed: the gradients
    (which go through the masks) agree to 1e-12, and differ from the gradient without dropout."""
    grads = {}
    for name in ("cython", "python"):
        with fnn.use_backend(name):
            model, X, Y = dropout_regression()
            model.train_on_batch(X, Y)
            grads[name] = model.network.grads.copy()
            plain = compiled_model([fnn.Dense(5, 6, "tanh"), fnn.Dense(6, 2)], 1, "sgd", loss="mse")
            plain.set_weights(dropout_regression()[0].get_weights())
            trainer.gradient(plain.network, plain.loss_code, trainer.Data.for_model(plain, X, Y))
            grads[name + " without dropout"] = plain.network.grads.copy()
    assert_close(grads["cython"], grads["python"], F64, scale=np.abs(grads["python"]).max())
    assert np.abs(grads["python"] - grads["python without dropout"]).max() > 1e-3


def test_predict_and_evaluate_use_no_dropout(backend, simd, assert_close):
    """After training with dropout, predict and evaluate see every element as it is: they equal
    those of a copy of the model built without the Dropout layers, with the same weights."""
    X, y = binary_data()
    model = dropout_model()
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    copy = compiled_model([fnn.Dense(4, 16, "tanh"), fnn.Dense(16, 8, "tanh"), fnn.Dense(8, 1, "sigmoid")], 0, "sgd")
    copy.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(X), copy.predict(X))
    np.testing.assert_array_equal(model.predict(X), model.predict(X))
    got, expected = model.evaluate(X, y), copy.evaluate(X, y)
    assert got == expected
    P = copy.predict(X)[:, 0]
    assert_close(got["loss"], -np.mean(y * np.log(P) + (1 - y) * np.log(1 - P)), F64, scale=1.0)
    assert got["accuracy"] == np.mean((P > 0.5) == (y > 0.5))
    assert model.test_on_batch(X, y, return_dict=True) == copy.test_on_batch(X, y, return_dict=True)


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), 1.5])
def test_dropout_refuses_a_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        fnn.Dropout(rate)


def test_dropout_rate_must_be_a_number():
    with pytest.raises(TypeError, match="rate"):
        fnn.Dropout("0.5")


def test_dropout_as_the_last_layer_is_refused_at_compile():
    """A Dropout acts on the next Dense's input: one with no Dense after it is refused by compile."""
    model = fnn.Sequential([fnn.Dense(2, 3, "tanh"), fnn.Dense(3, 1, "sigmoid"), fnn.Dropout(0.5)])
    with pytest.raises(ValueError, match="Dropout"):
        model.compile("binary_crossentropy")


def test_dropouts_in_a_row_combine():
    """Two Dropouts before one Dense drop 1 - (1 - r1)(1 - r2) of its input; a rate 0 drops nothing."""
    model = fnn.Sequential([fnn.Dropout(0.5), fnn.Dropout(0.5), fnn.Dense(2, 3, "tanh"), fnn.Dropout(0.0),
                            fnn.Dense(3, 1, "sigmoid")])
    model.compile("binary_crossentropy")
    np.testing.assert_array_equal(model.step_options()["dropout"], [0.75, 0.0])
    model = fnn.Sequential([fnn.Dense(2, 3, "tanh"), fnn.Dropout(0.0), fnn.Dense(3, 1, "sigmoid")])
    model.compile("binary_crossentropy")
    assert model.step_options()["dropout"] is None


# ----------------------------------------------------------------------------- 5. gradcheck and penalties

def test_gradcheck_through_dropout_and_regularizers(backend, simd):
    """gradcheck holds the dropout masks fixed (those of step 1) and includes the kernel penalties:
    it passes on a float64 model with both, whose gradient the masks really change."""
    regularizers = fnn.regularizers
    model = compiled_model([fnn.Input(shape=(3,)), fnn.Dropout(0.3),
                            fnn.Dense(5, "tanh", kernel_regularizer=regularizers.l1_l2(0.01, 0.02)),
                            fnn.Dropout(0.4), fnn.Dense(4, "tanh", kernel_regularizer=regularizers.l2(0.03)),
                            fnn.Dense(3, "softmax", kernel_regularizer=regularizers.l1(0.05))], 2, "sgd",
                           loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    before = model.get_weights()
    result = fnn.gradcheck(model, X, y)
    assert result.passed, str(result)
    assert len(result.errors) == 6
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    data = trainer.Data.for_model(model, X, y)
    options = model.step_options()
    trainer.gradient(model.network, model.loss_code, data, **options)
    with_masks = model.network.grads.copy()
    trainer.gradient(model.network, model.loss_code, data, penalties=options["penalties"])
    assert np.abs(with_masks - model.network.grads).max() > 1e-3


def regularized_regression(seed=4):
    """3 -> 5 tanh (l1 0.01) -> 2 linear (l1 0.02, l2 0.03), MSE, and the same network unpenalised."""
    r = fnn.regularizers
    model = compiled_model([fnn.Dense(3, 5, "tanh", kernel_regularizer=r.l1(0.01)),
                            fnn.Dense(5, 2, kernel_regularizer=r.l1_l2(l1=0.02, l2=0.03))], seed,
                           fnn.SGD(learning_rate=0.1), loss="mse")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    plain = compiled_model([fnn.Dense(3, 5, "tanh"), fnn.Dense(5, 2)], seed, "sgd", loss="mse")
    plain.set_weights(model.get_weights())
    return model, plain, rng.normal(size=(7, 3)), rng.normal(size=(7, 2))


def test_regularized_train_on_batch_loss_is_data_loss_plus_penalties(backend, simd, assert_close):
    """train_on_batch reports data loss + l1 sum|W| + l2 sum(W²) per layer, computed before the step
    and not divided by the batch's 7 rows (Keras' meaning); biases are not penalised."""
    model, _, X, Y = regularized_regression()
    W0, b0, W1, b1 = model.get_weights()
    data_loss = np.mean((model.predict(X) - Y) ** 2)
    penalty = 0.01 * np.abs(W0).sum() + 0.02 * np.abs(W1).sum() + 0.03 * np.square(W1).sum()
    got = model.train_on_batch(X, Y, return_dict=True)["loss"]
    assert_close(got, data_loss + penalty, F64, scale=data_loss + penalty)
    assert penalty > 0.1 * data_loss  # the penalty is a sizeable part of what is checked


def test_regularized_gradient_adds_the_penalty_gradient_to_w_only(backend, simd, assert_close):
    """The gradient of the penalised loss is the data gradient plus l1 sign(W) + 2 l2 W on each W; b's is the data's."""
    model, plain, X, Y = regularized_regression()
    W0, _, W1, _ = model.get_weights()
    data = trainer.Data.for_model(model, X, Y)
    trainer.gradient(model.network, model.loss_code, data, **model.step_options())
    trainer.gradient(plain.network, plain.loss_code, data)
    got, base = model.network, plain.network
    for l, extra in enumerate((0.01 * np.sign(W0), 0.02 * np.sign(W1) + 2 * 0.03 * W1)):
        expected = base.dW[l] + extra
        assert_close(got.dW[l], expected, F64, scale=np.abs(expected).max())
        np.testing.assert_array_equal(got.db[l], base.db[l])


# ----------------------------------------------------------------------------- 6. metrics

def test_regression_metrics_equal_numpy(backend, simd, assert_close):
    """compile(metrics=["mae", "mse", "binary_accuracy"]) on MSE with a sigmoid output: evaluate's
    values (in batches of 16) equal numpy's from predict; binary accuracy per element at 0.5."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 3)), rng.uniform(size=(40, 2))
    model = compiled_model([fnn.Dense(3, 6, "tanh"), fnn.Dense(6, 2, "sigmoid")], 3, fnn.SGD(0.1), loss="mse",
                           metrics=["mae", "mse", "binary_accuracy"])
    model.set_weights([2 * rng.normal(size=w.shape) for w in model.get_weights()])
    assert model.metrics_names == ["loss", "mae", "mse", "binary_accuracy"]
    P = model.predict(X)
    got = model.evaluate(X, Y, batch_size=16)
    assert list(got) == model.metrics_names
    assert_close(got["loss"], np.mean((P - Y) ** 2), F64, scale=1.0)
    assert_close(got["mse"], np.mean((P - Y) ** 2), F64, scale=1.0)
    assert_close(got["mae"], np.mean(np.abs(P - Y)), F64, scale=1.0)
    accuracy = np.mean((P > 0.5) == (Y > 0.5))
    assert 0.2 < accuracy < 0.8 and got["binary_accuracy"] == accuracy


def test_fit_metrics_are_computed_before_the_step(backend, simd, assert_close):
    """One full-batch epoch: History's loss and mae are those of the weights before the update (as Keras)."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 3)), rng.uniform(size=(40, 2))
    model = compiled_model([fnn.Dense(3, 6, "tanh"), fnn.Dense(6, 2, "sigmoid")], 3, fnn.SGD(1.0), loss="mse",
                           metrics=["mae"])
    P = model.predict(X)
    history = model.fit(X, Y, epochs=1, batch_size=None, verbose=0)
    assert_close(history.history["mae"][0], np.mean(np.abs(P - Y)), F64, scale=1.0)
    assert_close(history.history["loss"][0], np.mean((P - Y) ** 2), F64, scale=1.0)
    assert not np.array_equal(model.predict(X), P)


def test_history_has_the_metrics_and_their_validation_twins(backend, simd, assert_close):
    """With validation_split, History has loss and every metric, and a val_ twin of each; the last
    epoch's val_ values are evaluate's on the held-out last rows with the final weights."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 3)), rng.uniform(size=(40, 2))
    model = compiled_model([fnn.Dense(3, 6, "tanh"), fnn.Dense(6, 2, "sigmoid")], 3, fnn.SGD(0.1), loss="mse",
                           metrics=["mae", "mse", "binary_accuracy"])
    history = model.fit(X, Y, epochs=3, batch_size=8, verbose=0, validation_split=0.25)
    keys = ["loss", "mae", "mse", "binary_accuracy"]
    assert set(history.history) == set(keys) | {"val_" + k for k in keys}
    assert all(len(values) == 3 for values in history.history.values())
    held_out = model.evaluate(X[30:], Y[30:])
    for key in keys:
        assert_close(history.history["val_" + key][-1], held_out[key], F64, scale=1.0)


def top_k(P, labels, k):
    """Keras' top-k: the true class has fewer than k classes with a strictly higher probability."""
    return np.mean(np.sum(P > P[np.arange(len(labels)), labels][:, None], axis=1) < k)


CLASSIFIERS = {  # name -> (loss, classes, metrics, {key: k of a top-k, or "accuracy" / "mae"})
    "sparse top2": ("sparse_categorical_crossentropy", 5,
                    ["accuracy", fnn.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")],
                    {"accuracy": 1, "top2": 2}),
    "sparse top5": ("sparse_categorical_crossentropy", 8, ["accuracy", "sparse_top_k_categorical_accuracy"],
                    {"accuracy": 1, "sparse_top_k_categorical_accuracy": 5}),
    "categorical top3": ("categorical_crossentropy", 5,
                         ["accuracy", fnn.metrics.TopKCategoricalAccuracy(k=3, name="top3"), "mae"],
                         {"accuracy": 1, "top3": 3, "mae": "mae"}),
}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classification_metrics_equal_numpy(backend, simd, name, assert_close):
    """On a softmax model, evaluate's accuracy, top-k accuracies (fewer than k classes strictly more
    probable than the true one) and mae (of the probabilities) equal numpy's from predict; History
    has the same keys and their val_ twins."""
    loss, classes, metrics, expected_keys = CLASSIFIERS[name]
    rng = np.random.default_rng(5)
    X, labels = rng.normal(size=(60, 4)), rng.integers(0, classes, 60)
    y = labels if loss.startswith("sparse") else fnn.data.one_hot(labels, classes)
    model = compiled_model([fnn.Dense(4, 8, "tanh"), fnn.Dense(8, classes, "softmax")], 5, fnn.SGD(0.1), loss=loss,
                           metrics=metrics)
    model.set_weights([1.5 * rng.normal(size=w.shape) for w in model.get_weights()])
    P = model.predict(X)
    got = model.evaluate(X, y, batch_size=25)
    assert list(got) == ["loss"] + list(expected_keys)
    assert_close(got["loss"], -np.mean(np.log(P[np.arange(60), labels])), F64, scale=got["loss"])
    for key, k in expected_keys.items():
        if k == "mae":
            assert_close(got[key], np.mean(np.abs(P - fnn.data.one_hot(labels, classes))), F64, scale=1.0)
        else:
            expected = top_k(P, labels, k)
            assert 0 < expected < 1, (key, expected)  # neither all nor none: the check can fail
            assert_close(got[key], expected, F64)
    history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_split=0.2)
    assert set(history.history) == {"loss", *expected_keys} | {"val_" + k for k in ["loss", *expected_keys]}


def test_one_k_per_model():
    """Top-k accuracies with two different k in one model are refused; the same k twice is fine."""
    model = fnn.Sequential([fnn.Dense(4, 6, "softmax")])
    with pytest.raises(ValueError, match="one k"):
        model.compile("sparse_categorical_crossentropy", metrics=[
            "accuracy", "sparse_top_k_categorical_accuracy",
            fnn.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    model.compile("sparse_categorical_crossentropy", metrics=[
        "sparse_top_k_categorical_accuracy", fnn.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")])
    assert model.metrics_names == ["loss", "accuracy", "sparse_top_k_categorical_accuracy", "top5"]


# ----------------------------------------------------------------------------- 7. the lanes

def tiny_model(variant):
    """2 -> 4 sigmoid -> 1 sigmoid, binary cross-entropy, with one of the extras the lanes may or may not take."""
    layers = [fnn.Dense(2, 4, "sigmoid"), fnn.Dense(4, 1, "sigmoid")]
    optimizer, metrics = fnn.SGD(learning_rate=0.5), None
    if variant == "schedule":
        optimizer = fnn.SGD(learning_rate=CosineDecay(0.1, 20, warmup_target=0.5, warmup_steps=4))
    elif variant in ("clipvalue", "clipnorm", "global_clipnorm"):
        optimizer = fnn.Adam(learning_rate=0.05, **{variant: 0.05})
    elif variant == "accuracy":
        metrics = ["accuracy"]  # the loss's own count, which the lanes keep
    elif variant == "mae":
        metrics = ["mae"]
    elif variant == "dropout":
        layers.insert(1, fnn.Dropout(0.2))
    elif variant == "input dropout":
        layers.insert(0, fnn.Dropout(0.2))
    return compiled_model(layers, 0, optimizer, metrics=metrics)


@pytest.mark.parametrize("variant", ["plain", "schedule", "clipvalue", "clipnorm", "global_clipnorm", "accuracy",
                                     "dropout", "input dropout", "mae"])
def test_which_path_a_tiny_network_trains_on(backend, simd, variant):
    """On the compiled backend with SIMD on, the 2-4-1 network trains on the lanes, and a schedule or
    clipping (in the optimizer step, after the lanes) keeps it there; dropout or a metric beyond the
    loss's count moves it to the layer-by-layer path. Elsewhere it is always the layers."""
    X, y = fnn.data.xor()
    lanes = lanes_expected(backend, simd) and variant not in ("dropout", "input dropout", "mae")
    assert fit_path(tiny_model(variant), X, y) == ("lanes" if lanes else "layers")


@pytest.mark.parametrize("clip", [dict(clipvalue=0.02), dict(clipnorm=0.05), dict(global_clipnorm=0.1)],
                         ids=["clipvalue", "clipnorm", "global_clipnorm"])
def test_lanes_apply_the_schedule_and_clipping(both_backends, compiled_simd, clip, assert_close):
    """A tiny network with a warm-up cosine schedule, clipping (clipnorm: each W and b of the lanes'
    gradient) and a kernel penalty trains on the lanes (SIMD on) and agrees with the NumPy twin to
    rounding; without those extras it ends elsewhere."""
    X, y = binary_data(n=40, n_in=2, seed=4)

    def make(extras=True):
        schedule = CosineDecay(0.05, 30, alpha=0.1, warmup_target=0.8, warmup_steps=5)
        return compiled_model([fnn.Dense(2, 4, "tanh", kernel_regularizer="l2" if extras else None),
                               fnn.Dense(4, 1, "sigmoid")], 9,
                              fnn.SGD(learning_rate=schedule if extras else 0.3, momentum=0.5,
                                      **(clip if extras else {})))

    results = {}
    for name in ("cython", "python"):
        with fnn.use_backend(name):
            model = make()
            results[name] = (model.fit(X, y, epochs=4, batch_size=8, verbose=0).history["loss"],
                             np.concatenate([w.ravel() for w in model.get_weights()]), fit_path(model, X, y))
    assert results["cython"][2] == ("lanes" if lanes_expected(both_backends["cython"], compiled_simd) else "layers")
    assert_close(results["cython"][1], results["python"][1], F64, scale=np.abs(results["python"][1]).max())
    assert_close(results["cython"][0], results["python"][0], F64, scale=max(results["python"][0]))
    with fnn.use_backend("python"):
        bare = make(extras=False)
        bare.fit(X, y, epochs=4, batch_size=8, verbose=0)
    assert np.abs(np.concatenate([w.ravel() for w in bare.get_weights()]) - results["python"][1]).max() > 1e-3


# ----------------------------------------------------------------------------- subnormal state

@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam", "rmsprop"])
def test_optimizer_state_is_flushed_of_subnormals(backend, simd, dtype, optimizer):
    """A unit whose gradient is 0 lets its state decay geometrically; values that would be
    subnormal are 0 instead (both twins), normal ones are left as the formulas give them, NaN stays."""
    tiny = np.finfo(dtype).tiny
    state = np.array([tiny * 0.5, -tiny * 0.9, tiny * 1.5, 1.0, 0.0], dtype)  # two subnormal after the step
    kind = {"momentum": C.MOMENTUM, "nesterov": C.NESTEROV, "adam": C.ADAM, "rmsprop": C.RMSPROP}[optimizer]
    arrays = {"m": state.copy(), "v": np.abs(state)} if kind == C.ADAM else (
        {"v": np.abs(state), "velocity": state.copy()} if kind == C.RMSPROP else {"velocity": state.copy()})
    update = C.Update(optimizer=kind, lr=0.1, momentum=0.9, beta1=0.9, beta2=0.999, rho=0.9, **arrays)
    params, grads = np.ones(5, dtype), np.zeros(5, dtype)
    backend.optimizer_step(update, params, grads, 1, np.array([2, 1, 1]))
    for name, array in arrays.items():
        assert not np.any((array != 0) & (np.abs(array) < tiny)), (name, array)
        assert array[3] != 0  # a normal value decays as the formula says
    with_nan = C.Update(optimizer=C.MOMENTUM, lr=0.1, momentum=0.9, velocity=np.array([np.nan, 0, 0, 0, 0], dtype))
    backend.optimizer_step(with_nan, np.ones(5, dtype), np.zeros(5, dtype), 1, np.array([2, 1, 1]))
    assert np.isnan(with_nan.velocity[0])
