"""Kernel level: one dense layer's forward and backward against NumPy at several shapes, and the
sgemm peak itself, so every row can be read as a fraction of what the machine's BLAS can do;
where a training epoch of the medium MLP loses against that peak; and the products of
scikit-learn's MLP shapes by OpenBLAS, fastnn's micro-kernels and blis."""
import contextlib

import numpy as np
import pytest
from scipy.linalg.blas import sgemm

import fastnn as fnn
from fastnn.activations import RELU

from common import interleaved, micro_kernels, record, threads

SHAPES = [(4, 2, 2), (32, 32, 32), (256, 128, 512), (256, 512, 512), (512, 1024, 1024)]  # batch, n_in, n_out
IDS = [f"{b}x{i}x{o}" for b, i, o in SHAPES]
# (shape, impl): fastnn and NumPy at every shape; "fastnn portable" (the AVX2 micro-kernels off)
# where they serve the products, at 32x32x32.
CASES = [(shape, impl) for shape in SHAPES for impl in ("fastnn", "numpy")] + [((32, 32, 32), "fastnn portable")]
CASE_IDS = [f"{IDS[SHAPES.index(shape)]}-{impl.replace(' ', '-')}" for shape, impl in CASES]


def layer(shape, dtype=np.float32):
    batch, n_in, n_out = shape
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    return X, W, b


def flops_forward(shape):
    batch, n_in, n_out = shape
    return 2 * batch * n_in * n_out


def repeat(shape) -> int:
    """Calls per round: about 20 ms of work at 50 GFLOP/s, at least one, at most 2,000 (tiny
    shapes are dominated by the per-call cost, which 2,000 calls measure well)."""
    return max(1, min(2000, int(1e9 / flops_forward(shape))))


def fastnn_rounds(impl: str, reps: int, kernel: str, *args):
    """A round of `reps` calls of the compiled kernel `kernel` on args, with the micro-kernels on
    (impl "fastnn") or off."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    with fnn.use_backend("cython"):
        call = getattr(fnn.backend.ops(), kernel)

    def run():
        with micro_kernels(impl == "fastnn"):
            for _ in range(reps):
                call(*args)
    return run


@pytest.mark.parametrize("shape, impl", CASES, ids=CASE_IDS)
def test_dense_forward(benchmark, rounds, shape, impl):
    benchmark.group = f"kernel dense forward+relu {IDS[SHAPES.index(shape)]}, 1 thread"
    X, W, b = layer(shape)
    out = np.empty((shape[0], shape[2]), np.float32)
    reps = repeat(shape)
    if impl.startswith("fastnn"):
        run = fastnn_rounds(impl, reps, "dense_forward", X, W, b, RELU, out)
    else:
        def run():
            for _ in range(reps):
                np.matmul(X, W, out=out)
                np.add(out, b, out=out)
                np.maximum(out, 0, out=out)
    with threads(1):
        record(benchmark, run, rounds, reps * flops_forward(shape) / 1e9, "GFLOP", impl)
    np.testing.assert_allclose(out, np.maximum(X @ W + b, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, impl", CASES, ids=CASE_IDS)
def test_dense_backward(benchmark, rounds, shape, impl):
    """dZ = dA·relu'(A), db, dW = Xᵀ·dZ, dX = dZ·Wᵀ: two products, 2× the forward's FLOPs."""
    benchmark.group = f"kernel dense backward (relu) {IDS[SHAPES.index(shape)]}, 1 thread"
    X, W, b = layer(shape)
    A = np.maximum(X @ W + b, 0)
    dA = np.random.default_rng(1).standard_normal(A.shape).astype(np.float32)
    dZ, dW, db, dX = np.empty_like(A), np.empty_like(W), np.empty_like(b), np.empty_like(X)
    reps = max(1, repeat(shape) // 2)
    if impl.startswith("fastnn"):
        run = fastnn_rounds(impl, reps, "dense_backward", X, W, A, dA, RELU, dZ, dW, db, dX)
    else:
        def run():
            for _ in range(reps):
                np.multiply(dA, A > 0, out=dZ)
                np.sum(dZ, axis=0, out=db)
                np.matmul(X.T, dZ, out=dW)
                np.matmul(dZ, W.T, out=dX)
    with threads(1):
        record(benchmark, run, rounds, reps * 2 * flops_forward(shape) / 1e9, "GFLOP", impl)
    np.testing.assert_allclose(dW, X.T @ (dA * (A > 0)), rtol=1e-3, atol=1e-3)


PEAK_GFLOP = 2 * 1024 ** 3 / 1e9


def sgemm_1024():
    """One 1024³ float32 product through SciPy's BLAS (the one fastnn calls), PEAK_GFLOP of work."""
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32))
    c = np.asfortranarray(np.empty((1024, 1024), np.float32))
    return lambda: sgemm(1.0, a, a, c=c, overwrite_c=True)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_sgemm_peak(benchmark, rounds, n_threads):
    """The ceiling: the 1024³ sgemm, ten times a round."""
    benchmark.group = f"sgemm peak 1024³, {n_threads} thread{'s' * (n_threads > 1)}"
    product, reps = sgemm_1024(), 10
    with threads(n_threads):
        record(benchmark, lambda: [product() for _ in range(reps)], rounds, reps * PEAK_GFLOP, "GFLOP", "sgemm")


def row_major_sgemm(a, b, c, trans_a=False, trans_b=False):
    """c = op(a) @ op(b) for C-contiguous float32 arrays through SciPy's sgemm (the BLAS fastnn
    calls), without copies: a row-major matrix is its transpose in column-major, so c.T = op(b).T @ op(a).T."""
    sgemm(1.0, b.T, a.T, c=c.T, trans_a=trans_b, trans_b=trans_a, overwrite_c=True)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_mlp_gap_to_peak(benchmark, rounds, quick, n_threads):
    """Where the missing percent go. In turn in every round, on n_threads: fastnn training one
    epoch of the 128-512-512-10 net (batch 256); the same epoch's eight matrix products per batch
    alone, through sgemm at their shapes (forward X·W for each layer, Aᵀ·dZ for each layer, dZ·Wᵀ
    for the two upper ones); and the 1024³ sgemm. Throughput in GFLOP/s of the training work (the
    products' FLOPs), so the note reads as fractions: fastnn against the products alone is the time
    outside them, the products against the peak what their shapes cost."""
    from bench_mlp import fastnn_model
    from common import case_data, interleaved
    benchmark.group = (f"mlp medium train, {n_threads} thread{'s' * (n_threads > 1)}: "
                       "the gap to the sgemm peak, interleaved")
    X, y, sizes, batch = case_data("medium", quick)
    n = min(len(X), (8 if quick else 40) * batch)
    X, y = X[:n], y[:n]
    model = fastnn_model(sizes)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    rng = np.random.default_rng(1)
    W = [rng.standard_normal((a, b)).astype(np.float32) for a, b in pairs]
    A = [None] + [np.empty((batch, s), np.float32) for s in sizes[1:]]  # A[0]: the batch's rows of X
    dA = [rng.standard_normal((batch, s)).astype(np.float32) for s in sizes]  # dA[0] is never written
    dW = [np.empty_like(w) for w in W]
    flops = sum(2 * n * a * b for a, b in pairs) * 2 + sum(2 * n * a * b for a, b in pairs[1:])

    def products():
        for start in range(0, n, batch):
            A[0] = X[start:start + batch]  # a view, as fastnn reads rows taken in order
            for l, w in enumerate(W):
                row_major_sgemm(A[l], w, A[l + 1])
            for l in reversed(range(len(W))):
                row_major_sgemm(A[l], dA[l + 1], dW[l], trans_a=True)
                if l:
                    row_major_sgemm(dA[l + 1], W[l], dA[l], trans_b=True)

    runs = {"fastnn fit": (lambda: model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0),
                           flops / 1e9),
            "its products alone": (products, flops / 1e9),
            "sgemm 1024³": (sgemm_1024(), PEAK_GFLOP)}
    with threads(n_threads):
        _, ratio = interleaved(benchmark, runs, rounds, "GFLOP",
                               pairs=[("its products alone", "fastnn fit"), ("sgemm 1024³", "its products alone"),
                                      ("sgemm 1024³", "fastnn fit")])
    assert all(r > 0 for r in ratio.values())
    # the products are the ones the layers compute: one of them checked against NumPy
    row_major_sgemm(A[1], dA[2], dW[1], trans_a=True)
    np.testing.assert_allclose(dW[1], A[1].T @ dA[2], rtol=1e-3, atol=1e-2)
    assert np.isfinite(model.evaluate(X, y)["loss"])


# Issue 20: the products of scikit-learn's MLP training on digits (batches of 200 rows and the last
# one of 147, 64 inputs, 64 hidden units, 10 classes; L-BFGS's full batch of 1,347 rows) and of a
# 256-wide layer, in float64 (scikit-learn's default) and float32: OpenBLAS through the call fastnn
# makes (scipy.linalg.cython_blas), fastnn's micro-kernels at both widths, and explosion's `blis`
# package where installed. Each entry runs its products in a loop without Python between them,
# except blis's, called from Python (blis.py.gemm), one call per product, on operands laid out so
# that it multiplies without transposing (its float64 gemm sizes the output as if never transposed).
SK_SHAPES = [(200, 64, 64), (147, 64, 64), (200, 64, 10), (200, 256, 256), (1347, 64, 64), (1347, 64, 10)]
PRODUCTS = ["X·W", "Xᵀ·dZ", "dZ·Wᵀ"]


def product_operands(shape, product, dtype):
    """(A, B, C, the expected C, blis's A and B) of product 0, 1 or 2 for rows, n_in, n_out = shape."""
    m, k, n = shape
    rng = np.random.default_rng(0)
    X, W, dZ = (rng.standard_normal(s).astype(dtype) for s in [(m, k), (k, n), (m, n)])
    if product == 0:
        return X, W, np.empty((m, n), dtype), X @ W, X, W
    if product == 1:
        return X, dZ, np.empty((k, n), dtype), X.T @ dZ, np.ascontiguousarray(X.T), dZ
    return dZ, W, np.empty((m, k), dtype), dZ @ W.T, dZ, np.ascontiguousarray(W.T)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("product", range(3), ids=["XW", "XtdZ", "dZWt"])
@pytest.mark.parametrize("shape", SK_SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SK_SHAPES])
def test_sklearn_shape_products(benchmark, rounds, shape, product, dtype):
    """One product at a shape of scikit-learn's digits training, every implementation in turn in
    each round, in GFLOP/s."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    kernels = fnn.backend._MODULES["cython"]
    m, k, n = shape
    benchmark.group = f"kernel {dtype} {PRODUCTS[product]} at {m}x{k}x{n} (scikit-learn's shapes), 1 thread, interleaved"
    A, B, C, expected, A_blis, B_blis = product_operands(shape, product, dtype)
    gflop = 2 * m * k * n / 1e9
    reps = max(1, int(0.005 * 40 / gflop))  # about 5 ms at 40 GFLOP/s
    blas = "OpenBLAS (fastnn's GEMM call)"
    runs = {blas: (lambda: kernels._product_rounds(product, True, A, B, C, reps), reps * gflop)}
    if product != 2 and m > 200:  # a tall product: also as fastnn calls it, by blocks of rows ("tall")
        runs["OpenBLAS in row blocks (fastnn's path)"] = (
            lambda: kernels._product_rounds(product, True, A, B, C, reps, blocks=True), reps * gflop)
    widths = {}
    if kernels._simd_available() and kernels._simd_level() != "portable":
        widths["fastnn micro-kernels AVX2"] = False
        if kernels._wide_available():
            widths["fastnn micro-kernels AVX-512"] = True
    for name in widths:
        runs[name] = (lambda: kernels._product_rounds(product, False, A, B, C, reps), reps * gflop)
    try:
        from blis.py import gemm as blis_gemm
    except ImportError:  # not installed: the other rows
        blis_gemm = None
    if blis_gemm is not None:
        def blis_run():
            for _ in range(reps):
                blis_gemm(A_blis, B_blis, out=C, beta=0.0)
        runs["blis (blis.py.gemm)"] = (blis_run, reps * gflop)

    def around(name):
        return micro_kernels(True, wide=widths[name]) if name in widths else contextlib.nullcontext()

    with threads(1):
        interleaved(benchmark, runs, rounds, "GFLOP", pairs=[(blas, name) for name in runs if name != blas],
                    around=around)
        for name, (run, _) in runs.items():  # each computes the product
            C[...] = np.nan
            with around(name):
                run()
            np.testing.assert_allclose(C, expected, rtol=1e-3, atol=1e-3, err_msg=name)


# Issue 20, part 3: the elementwise passes of digits training (elementwise.h) on whole vectors
# against the compiled twin's portable loops, at the shapes of one batch (200 rows, 64 hidden
# units, 10 classes; the 64-64-10 network's 4,810 parameters): each kernel called `reps` times
# from Python per round, the AVX2, AVX-512 and portable entries in turn in every round.
ELEMENTWISE_CASES = ["softmax_sparse_cce 200x10", "softmax_cce 200x10", "sigmoid_bce 200x10",
                     "adam step 4810", "relu grad + bias sum 200x64", "bias + relu 200x64", "bias + linear 200x10",
                     "sigmoid 200x64", "tanh 200x64", "softmax 200x10"]


def elementwise_call(kernels, case, dtype):
    """(a function of no arguments running the case once, calls per round)."""
    from fastnn import _contract as C
    rng = np.random.default_rng(0)
    Z10 = (3 * rng.standard_normal((200, 10))).astype(dtype)
    labels = rng.integers(0, 10, 200).astype(np.int64)
    Y10 = np.eye(10, dtype=dtype)[labels]
    d10 = np.empty_like(Z10)
    if case.startswith("softmax_sparse_cce"):
        return lambda: kernels.softmax_sparse_cce(Z10, labels, d10), 200
    if case.startswith("softmax_cce"):
        return lambda: kernels.softmax_cce(Z10, Y10, d10), 200
    if case.startswith("sigmoid_bce"):
        return lambda: kernels.sigmoid_bce(Z10, Y10, d10), 200
    if case.startswith("adam"):
        sizes = np.array([64, 64, 10])
        n = 64 * 64 + 64 + 64 * 10 + 10
        params, grads = rng.standard_normal(n).astype(dtype), (1e-3 * rng.standard_normal(n)).astype(dtype)
        update = C.Update(optimizer=C.ADAM, lr=1e-3, m=np.zeros(n, dtype), v=np.zeros(n, dtype))
        return lambda: kernels.optimizer_step(update, params, grads, 1, sizes), 200
    X = rng.standard_normal((200, 1)).astype(dtype)
    W = rng.standard_normal((1, 64)).astype(dtype)
    A = np.maximum(rng.standard_normal((200, 64)), 0).astype(dtype)
    dA, b = rng.standard_normal((200, 64)).astype(dtype), rng.standard_normal(64).astype(dtype)
    dZ, dW, db, out = np.empty_like(dA), np.empty_like(W), np.empty_like(b), np.empty_like(dA)
    if case.startswith("relu grad"):  # dense_backward with a one-input product: the derivative and db pass
        return lambda: kernels.dense_backward(X, W, A, dA, C.RELU, dZ, dW, db), 200
    if case.startswith("bias + relu"):  # dense_forward with a one-input product: the bias + ReLU pass
        return lambda: kernels.dense_forward(X, W, b, C.RELU, out), 200
    if case.startswith("bias + linear"):  # the output layer's bias in training (its softmax is the loss's):
        # dense_forward of zero inputs, so that no product (whose path SIMD also switches) is timed
        X0, W0, b10 = np.empty((200, 0), dtype), np.empty((0, 10), dtype), b[:10].copy()
        return lambda: kernels.dense_forward(X0, W0, b10, C.LINEAR, d10), 200
    if case.startswith("softmax 200x10"):  # the output activation of predict_proba
        return lambda: kernels.activate(Z10, C.SOFTMAX, d10), 200
    return lambda: kernels.activate(dA, C.TANH if case.startswith("tanh") else C.SIGMOID, out), 200


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ELEMENTWISE_CASES)
def test_elementwise_passes(benchmark, rounds, case, dtype):
    """One elementwise pass at digits' shapes: the vector versions' throughput over the portable loops'."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    kernels = fnn.backend._MODULES["cython"]
    if not kernels._simd_available():
        pytest.skip("no AVX2 + FMA: only the portable loops")
    benchmark.group = f"kernel {dtype} {case} (digits' shapes), 1 thread, interleaved"
    call, reps = elementwise_call(kernels, case, dtype)

    def run():
        for _ in range(reps):
            call()

    levels = {"vector AVX2": (True, False), "portable loops": (False, False)}
    if kernels._wide_available():
        levels["vector AVX-512"] = (True, True)
    runs = {name: (run, reps) for name in levels}

    def around(name):
        return micro_kernels(*levels[name])

    with threads(1):
        interleaved(benchmark, runs, rounds * 3, "call",
                    pairs=[(name, "portable loops") for name in levels if name != "portable loops"], around=around)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_digits_elementwise(benchmark, rounds, solver, dtype):
    """scikit-learn's digits fit by fastnn.sklearn's MLPClassifier(hidden_layer_sizes=(64,)) with the
    vector passes and with the portable loops, in turn in every round, per epoch (L-BFGS iteration):
    what elementwise.h gains in a whole fit (the products are OpenBLAS's on both paths)."""
    pytest.importorskip("sklearn")
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    kernels = fnn.backend._MODULES["cython"]
    if not kernels._simd_available():
        pytest.skip("no AVX2 + FMA: only the portable loops")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from fastnn.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, random_state=0)
    unit = "epoch" if solver == "adam" else "iteration"
    benchmark.group = f"digits {solver} {dtype}: elementwise passes on vectors or not, 1 thread, interleaved"
    levels = {"vector": True, "portable loops": False}

    def fit():
        return MLPClassifier(hidden_layer_sizes=(64,), random_state=0, solver=solver, dtype=dtype).fit(X_train, y_train)

    with threads(1):
        units = {}
        for name, on in levels.items():  # untimed: the epochs each path takes (rounding may change L-BFGS's)
            with micro_kernels(on):
                units[name] = fit().n_iter_
        interleaved(benchmark, {name: (fit, units[name]) for name in levels}, rounds * 2, unit,
                    around=lambda name: micro_kernels(levels[name]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_digits_fused_relu(benchmark, rounds, solver, dtype):
    """The same digits fit with a ReLU layer's derivative in the epilogue of the product above it
    (dZ·Wᵀ streaming a transposed W: the 64->10 layer at AVX-512's width) and as a pass of its own,
    in turn in every round, per epoch (L-BFGS iteration). Both give the same bits
    (tests/test_kernels.py)."""
    pytest.importorskip("sklearn")
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    kernels = fnn.backend._MODULES["cython"]
    if not kernels._simd_available():
        pytest.skip("no AVX2 + FMA: no micro-kernels to fuse into")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from fastnn.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, random_state=0)
    unit = "epoch" if solver == "adam" else "iteration"
    benchmark.group = f"digits {solver} {dtype}: ReLU's derivative fused into dZ·Wᵀ or apart, 1 thread, interleaved"

    @contextlib.contextmanager
    def fused(on):
        previous = kernels._set_fused(on)
        try:
            yield
        finally:
            kernels._set_fused(previous)

    def fit():
        return MLPClassifier(hidden_layer_sizes=(64,), random_state=0, solver=solver, dtype=dtype).fit(X_train, y_train)

    levels = {"fused": True, "apart": False}
    with threads(1):
        units = fit().n_iter_  # the same bits both ways, so the same epochs
        fitted, _ = interleaved(benchmark, {name: (fit, units) for name in levels}, rounds * 2, unit,
                                around=lambda name: fused(levels[name]))
    np.testing.assert_array_equal(fitted["fused"].coefs_[0], fitted["apart"].coefs_[0])


def test_shuffle_orders(benchmark, rounds):
    """The row orders of ten epochs of scikit-learn's digits split (1,347 rows), as fastnn.sklearn
    draws them: the compiled kernel, its NumPy twin (a RandomState put in the state), and
    scikit-learn's way (arange, RandomState.shuffle, a gather, per epoch), in turn in every round;
    all three give the same orders."""
    if "cython" not in fnn.available_backends():
        pytest.skip("compiled backend not built")
    benchmark.group = "epoch orders: 10 shuffles of 1,347 rows, interleaved"
    kernels = {"compiled": fnn.backend._MODULES["cython"], "NumPy twin": fnn.backend._MODULES["python"]}
    _, key, pos, *_ = np.random.RandomState(0).get_state()
    rows = np.arange(1347, dtype=np.int64)
    orders = {name: np.empty((10, rows.size), np.int64) for name in [*kernels, "scikit-learn's way"]}

    def twin(name):
        return lambda: kernels[name].shuffle_orders(key.copy(), pos, rows, orders[name])

    def sklearn_way():
        generator, current = np.random.RandomState(), rows
        generator.set_state(("MT19937", key, pos))
        for e in range(10):
            permutation = np.arange(rows.size)
            generator.shuffle(permutation)
            current = current[permutation]
            orders["scikit-learn's way"][e] = current

    runs = {name: (twin(name), 10) for name in kernels}
    runs["scikit-learn's way"] = (sklearn_way, 10)
    with threads(1):
        interleaved(benchmark, runs, rounds * 3, "epoch")
    for name in kernels:
        np.testing.assert_array_equal(orders[name], orders["scikit-learn's way"])
