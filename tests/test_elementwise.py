"""The vector passes of elementwise.h against the compiled twin's own loops (the portable path,
FASTNN_SIMD=0), at every vector width the CPU has: the losses (exp on whole vectors) equal them to
rounding, the optimizer steps, derivatives and bias sums bit for bit. Rows of every length around
the vector widths (4 and 8 float64 lanes, 8 and 16 float32 lanes), extreme and non-finite values.
The suite's `simd` fixture already holds both paths to the NumPy twin."""
import numpy as np
import pytest

from fastnn import _contract as C

# lengths on both sides of 4, 8, 16 and 32 lanes
LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 31, 33, 64, 65, 100]


@pytest.fixture(params=["avx2", "avx512"])
def vector(request, compiled):
    """run(f): f() with the vector paths at this width, then with the portable loops; the pair of results."""
    if not compiled._simd_available():
        pytest.skip("this CPU has no AVX2 + FMA: only the portable loops exist")
    if request.param == "avx512" and not compiled._wide_available():
        pytest.skip("this CPU has no AVX-512 F and DQ")
    simd, wide = compiled._set_simd(True), compiled._set_wide(request.param == "avx512")

    def run(f):
        compiled._set_simd(True)
        compiled._set_wide(request.param == "avx512")
        assert compiled._simd_level() == request.param
        on = f()
        compiled._set_simd(False)
        off = f()
        return on, off

    yield run
    compiled._set_simd(simd)
    compiled._set_wide(wide)


def _logits(rng, m, n, dtype):
    """Logits with a row of ±1000 (every exp but one underflows), a row whose exps fall in the
    subnormal range, and ordinary rows."""
    Z = (5 * rng.standard_normal((m, n))).astype(dtype)
    Z[0] = rng.choice([-1000.0, 1000.0], n)
    if m > 1 and n > 1:
        lowest = -720.0 if dtype == np.float64 else -95.0  # exp of it is subnormal
        Z[1] = np.linspace(0, lowest, n)
    return Z


def _same_nan(on, off):
    np.testing.assert_array_equal(np.isnan(on), np.isnan(off))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n", LENGTHS)
def test_softmax_losses_equal_the_portable_loops(compiled, vector, dtype, n, weighted, assert_close):
    rng = np.random.default_rng(n)
    m = 13
    Z = _logits(rng, m, n, dtype)
    labels = rng.integers(0, n, m).astype(np.int64)
    Y = rng.uniform(size=(m, n)).astype(dtype)
    w = rng.uniform(0.5, 2.0, m).astype(dtype) if weighted else None

    def sparse():
        dZ = np.full_like(Z, np.nan)
        return compiled.softmax_sparse_cce(Z, labels, dZ, w), dZ

    def dense():
        dZ = np.full_like(Z, np.nan)
        return compiled.softmax_cce(Z, Y, dZ, w), dZ

    def dense_in_place():  # dZ is Z: the exps are recomputed, not kept
        dZ = Z.copy()
        return compiled.softmax_cce(dZ, Y, dZ, w), dZ

    # the gradient (p sum(y) - y) w / sum(w) cancels where p sum(y) is near y: held to its terms
    weights = np.ones(m) if w is None else w.astype(np.float64)
    scale = (Y.sum(axis=1, keepdims=True, dtype=np.float64) + 1) * weights[:, None] / weights.sum()
    for f in (sparse, dense, dense_in_place):
        (loss_on, d_on), (loss_off, d_off) = vector(f)
        assert_close(loss_on, loss_off, dtype)
        assert_close(d_on, d_off, dtype, scale=scale)
        assert np.isfinite(d_on).all()


@pytest.mark.parametrize("n", LENGTHS)
def test_sigmoid_bce_equals_the_portable_loop(compiled, vector, dtype, n, assert_close):
    rng = np.random.default_rng(n)
    for m in (1, 3, 13):
        Z = _logits(rng, m, n, dtype)
        Y = rng.uniform(size=(m, n)).astype(dtype)

        def bce():
            dZ = np.full_like(Z, np.nan)
            return compiled.sigmoid_bce(Z, Y, dZ), dZ

        (loss_on, d_on), (loss_off, d_off) = vector(bce)
        assert_close(loss_on, loss_off, dtype)
        assert_close(d_on, d_off, dtype, scale=1 / Z.size)


def test_bce_flushes_its_running_product(compiled, vector, assert_close):
    """Enough elements near 0 for each lane's product of (1 + exp(-|z|)) to pass 1e100 and be flushed."""
    Z = np.zeros((4, 1000))
    Y = np.full_like(Z, 0.5)
    (loss_on, _), (loss_off, _) = vector(lambda: (compiled.sigmoid_bce(Z, Y, np.empty_like(Z)), None))
    assert_close(loss_on, loss_off, np.float64)
    assert_close(loss_on, np.log(2.0), np.float64)


def test_losses_propagate_nan_as_the_portable_loops(compiled, vector, dtype):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5, 11)).astype(dtype)
    Z[2, 7] = np.nan
    Z[3, 0] = np.inf  # inf - inf: NaN, as there
    labels = np.arange(5, dtype=np.int64)
    Y = rng.uniform(size=Z.shape).astype(dtype)
    for f in (lambda dZ: compiled.softmax_sparse_cce(Z, labels, dZ), lambda dZ: compiled.softmax_cce(Z, Y, dZ),
              lambda dZ: compiled.sigmoid_bce(Z, Y, dZ)):
        def run():
            dZ = np.zeros_like(Z)
            return f(dZ), dZ

        (loss_on, d_on), (loss_off, d_off) = vector(run)
        assert np.isnan(loss_on) and np.isnan(loss_off)
        _same_nan(d_on, d_off)


OPTIMIZERS = {
    "adam": dict(optimizer=C.ADAM, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6),
    "adamw": dict(optimizer=C.ADAMW, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.3),
    "momentum": dict(optimizer=C.MOMENTUM, lr=0.1, momentum=0.8),
    "nesterov": dict(optimizer=C.NESTEROV, lr=0.1, momentum=0.8),
    "rmsprop": dict(optimizer=C.RMSPROP, lr=0.02, rho=0.8, eps=1e-5),
    "rmsprop_momentum": dict(optimizer=C.RMSPROP, lr=0.02, rho=0.8, eps=1e-5, momentum=0.6),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("n_out", [1, 2, 3, 5, 7, 30])
def test_optimizer_steps_are_the_portable_loops_bit_for_bit(compiled, vector, dtype, name, n_out):
    """Three steps over a network of n_out + 1 + n_out parameters (lengths around every vector
    width): the state includes values that become subnormal (flushed to 0), gradients include
    NaN and inf."""
    sizes = np.array([n_out, n_out])
    n = n_out * n_out + n_out
    rng = np.random.default_rng(n_out)
    tiny = np.finfo(dtype).tiny
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    grads[1][:: 3] = tiny  # the squares underflow
    if n > 4:
        grads[2][1], grads[2][4] = np.nan, np.inf

    def run():
        start = np.random.default_rng(7)
        state = {k: start.standard_normal(n).astype(dtype) * tiny * 4 for k in ("velocity", "m", "v")}
        state["v"] = np.abs(state["v"])
        update = C.Update(**OPTIMIZERS[name], **state)
        params = np.linspace(-1, 1, n).astype(dtype)
        for t, g in enumerate(grads, 1):
            compiled.optimizer_step(update, params, g.copy(), t, sizes)
        return params, update.velocity, update.m, update.v

    on, off = vector(run)
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


ELEMENTWISE = ["sigmoid", "tanh", "relu", "leaky_relu", "exp", "linear"]


@pytest.mark.parametrize("activation", ELEMENTWISE)
@pytest.mark.parametrize("n", LENGTHS)
def test_derivatives_and_bias_sums_are_the_portable_loops_bit_for_bit(compiled, vector, dtype, activation, n):
    """dense_backward's dZ = dA f'(Z) and db = its column sums, row by row as the loops add them."""
    code = C.ACTIVATIONS[activation]
    rng = np.random.default_rng(n)
    m, n_in = 11, 3
    X = rng.standard_normal((m, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n)).astype(dtype)
    A = rng.uniform(-1, 1, (m, n)).astype(dtype)
    A[0, 0] = 0.0
    dA = rng.standard_normal((m, n)).astype(dtype)
    dA[-1, -1] = np.nan

    def backward(in_place):
        d = dA.copy()
        dZ = d if in_place else np.zeros_like(d)
        dW, db = np.zeros_like(W), np.zeros(n, dtype)
        compiled.dense_backward(X, W, A, d, code, dZ, dW, db)
        out = np.zeros_like(d)
        compiled.activation_grad(A, dA, code, out)
        return dZ, db, out

    for in_place in (False, True):
        on, off = vector(lambda: backward(in_place))
        for a, b in zip(on, off):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "linear"])
@pytest.mark.parametrize("n", LENGTHS)
def test_bias_and_activation_pass_equals_the_portable_loop(compiled, vector, dtype, activation, n, assert_close):
    """The forward pass's f(Z + b) (dense_forward through a product of one input, exact) and f(Z)
    alone: bit for bit but for the exp of sigmoid and softmax and tanh's expm1."""
    code = C.ACTIVATIONS[activation]
    rng = np.random.default_rng(n)
    m = 9
    X = np.ones((m, 1), dtype)
    W = (3 * rng.standard_normal((1, n))).astype(dtype)
    W[0, 0] = np.nan
    b = rng.standard_normal(n).astype(dtype)
    Z = (30 * rng.standard_normal((m, n))).astype(dtype)

    def forward():
        out = np.zeros((m, n), dtype)
        compiled.dense_forward(X, W, b, code, out)
        alone = np.zeros_like(Z)
        compiled.activate(Z, code, alone)
        in_place = Z.copy()
        compiled.activate(in_place, code, in_place)
        return out, alone, in_place

    on, off = vector(forward)
    for a, c in zip(on, off):
        _same_nan(a, c)
        if activation in ("sigmoid", "tanh", "softmax"):
            assert_close(np.nan_to_num(a), np.nan_to_num(c), dtype)
        else:
            np.testing.assert_array_equal(a, c)


@pytest.fixture
def page_end():
    """at_page_end(values): a writable copy of `values` whose last byte is the last of a page, and
    the page after it unreadable (PROT_NONE): a vector pass that reads or writes past the end of
    its row crashes instead of passing. Linux only."""
    import ctypes
    import mmap
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("mprotect through ctypes: Linux only")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page, held = mmap.PAGESIZE, []

    def at_page_end(values):
        values = np.ascontiguousarray(values)
        pages = -(-values.nbytes // page) + 1
        buf = mmap.mmap(-1, pages * page)
        guard = ctypes.addressof(ctypes.c_char.from_buffer(buf)) + (pages - 1) * page
        assert libc.mprotect(guard, page, 0) == 0, ctypes.get_errno()  # 0: PROT_NONE
        out = np.frombuffer(buf, values.dtype, count=values.size, offset=(pages - 1) * page - values.nbytes)
        out = out.reshape(values.shape)
        out[...] = values
        held.append((buf, guard))
        return out

    yield at_page_end
    for buf, guard in held:  # readable again before the mapping goes
        libc.mprotect(guard, page, mmap.PROT_READ | mmap.PROT_WRITE)


@pytest.mark.parametrize("n", [1, 3, 7, 10, 15, 17])
def test_partial_vectors_stay_inside_their_rows(compiled, vector, dtype, n, page_end, assert_close):
    """The last, partial vector of a row is loaded and stored with masks: operands that end at
    the end of a page, the next page unreadable, give the portable loops' results (a read or
    write past them would crash)."""
    rng = np.random.default_rng(n)
    m = 5
    Z = (3 * rng.standard_normal((m, n))).astype(dtype)
    A = rng.uniform(-1, 1, (m, n)).astype(dtype)
    dA = rng.standard_normal((m, n)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    labels = rng.integers(0, n, m).astype(np.int64)
    X = np.ones((m, 1), dtype)
    W = page_end(rng.standard_normal((1, n)).astype(dtype))

    def passes():
        out = {}
        for name, code in (("relu", C.ACTIVATIONS["relu"]), ("softmax", C.ACTIVATIONS["softmax"])):
            z = page_end(Z)
            compiled.activate(z, code, z)
            forward = page_end(np.zeros((m, n), dtype))
            compiled.dense_forward(X, W, page_end(b), code, forward)
            out[name] = z.copy(), forward.copy()
        grad = page_end(np.zeros((m, n), dtype))
        compiled.activation_grad(page_end(A), page_end(dA), C.ACTIVATIONS["tanh"], grad)
        dZ = page_end(np.zeros((m, n), dtype))
        loss = compiled.softmax_sparse_cce(page_end(Z), labels, dZ)
        return out, grad.copy(), loss, dZ.copy()

    (out_on, grad_on, loss_on, dz_on), (out_off, grad_off, loss_off, dz_off) = vector(passes)
    for a, c in zip(out_on["relu"], out_off["relu"]):
        np.testing.assert_array_equal(a, c)
    for a, c in zip(out_on["softmax"], out_off["softmax"]):
        assert_close(a, c, dtype)
    np.testing.assert_array_equal(grad_on, grad_off)
    assert_close(loss_on, loss_off, dtype)
    assert_close(dz_on, dz_off, dtype, scale=1 / m)


def test_weight_penalties_are_the_portable_loops_bit_for_bit(compiled, vector, dtype, assert_close):
    """The weight penalties on vectors (scikit-learn's alpha, Keras' l2 kernel regularizer): their
    gradient G + c W is the loop's bit for bit, their loss (a sum of squares in double) equals it
    to rounding. Fits whose other passes are the same on both paths (layers too narrow for the
    micro-kernels, weighted rows or a metric so that the lanes stay out, identity activations and
    squared error, no exp) end with the same weights."""
    import warnings

    import fastnn as fnn
    from fastnn.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 7)).astype(dtype)
    y = (X @ rng.standard_normal(7)).astype(dtype)
    sample_weight = rng.uniform(0.5, 2.0, 40)

    def fits():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs only
            regressor = MLPRegressor(hidden_layer_sizes=(7, 3), activation="identity", alpha=0.3, solver="sgd",
                                     learning_rate_init=0.01, max_iter=4, random_state=0, dtype=str(np.dtype(dtype)))
            regressor.fit(X, y, sample_weight=sample_weight)
        model = fnn.Sequential([fnn.Dense(7, 7, kernel_regularizer=fnn.regularizers.l2(0.05)),
                                fnn.Dense(7, 1, kernel_regularizer=fnn.regularizers.l2(0.02))],
                               seed=0, dtype=str(np.dtype(dtype)))
        model.compile("mse", fnn.SGD(learning_rate=0.01), metrics=["mae"])
        history = model.fit(X, y.reshape(-1, 1), epochs=3, batch_size=8, verbose=0)
        return regressor.coefs_ + model.get_weights(), regressor.loss_curve_ + history.history["loss"]

    (weights_on, losses_on), (weights_off, losses_off) = vector(fits)
    assert len(weights_on) == len(weights_off) == 7  # three weight matrices, then two (W, b) pairs
    for a, b in zip(weights_on, weights_off):
        np.testing.assert_array_equal(a, b)
    assert len(losses_on) == len(losses_off) == 7  # four epochs, then three
    assert_close(np.array(losses_on), np.array(losses_off), dtype)
