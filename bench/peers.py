"""The same work done by other tools, written the way a user of each would write it, and the
plain-C floor for XOR (bench/xor_floor.c, compiled here when a C compiler is at hand).

Each peer mirrors the scripts that measured the figures quoted in DESIGN.md (../shared/peers):
XOR 2-H-1 (sigmoid hidden and output, binary cross-entropy from logits, full-batch gradient
descent, lr 0.5), and the synthetic MLPs (ReLU hidden, softmax cross-entropy, SGD with PyTorch's
momentum 0.9, lr 0.05, float32, batches in order). Imports of the optional peers happen inside the
functions, so a missing peer only skips its benchmark.
"""
import contextlib
import ctypes
import os
import platform
import shutil
import subprocess
import tempfile

import numpy as np

LR_XOR = 0.5
LR_MLP, MOMENTUM = 0.05, 0.9


def xor_init(h, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (2, h)), np.zeros(h), rng.normal(0, 1, (h, 1)), np.zeros(1)


# ---------------------------------------------------------------- XOR

def numpy_xor(X, Y, epochs, h=2):
    """NumPy by hand: the forward and backward of the lesson, written out."""
    W1, b1, W2, b2 = xor_init(h)
    n = len(X)
    for _ in range(epochs):
        a1 = 1 / (1 + np.exp(-(X @ W1 + b1)))
        p = 1 / (1 + np.exp(-(a1 @ W2 + b2)))
        dz2 = (p - Y) / n
        dW2 = a1.T @ dz2
        db2 = dz2.sum(0)
        dz1 = (dz2 @ W2.T) * a1 * (1 - a1)
        dW1 = X.T @ dz1
        db1 = dz1.sum(0)
        W1 -= LR_XOR * dW1; b1 -= LR_XOR * db1; W2 -= LR_XOR * dW2; b2 -= LR_XOR * db2
    return 1 / (1 + np.exp(-(1 / (1 + np.exp(-(X @ W1 + b1))) @ W2 + b2)))


def torch_xor(X, Y, epochs, h=2):
    import torch
    torch.manual_seed(0)
    xt, yt = torch.tensor(X), torch.tensor(Y)
    m = torch.nn.Sequential(torch.nn.Linear(2, h), torch.nn.Sigmoid(), torch.nn.Linear(h, 1)).double()
    opt = torch.optim.SGD(m.parameters(), lr=LR_XOR)
    lossf = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        opt.zero_grad()
        lossf(m(xt), yt).backward()
        opt.step()
    with torch.no_grad():
        return torch.sigmoid(m(xt)).numpy()


def jax_xor(X, Y, epochs, h=2):
    """The whole run under jit: lax.fori_loop over epochs of jax.grad. Returns a callable that runs
    it (compiled on first call), so compilation stays out of the measurement."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    x, y = jnp.asarray(X), jnp.asarray(Y)

    def loss(p):
        W1, b1, W2, b2 = p
        z = jax.nn.sigmoid(x @ W1 + b1) @ W2 + b2
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))

    grad = jax.grad(loss)

    @jax.jit
    def run(p):
        return jax.lax.fori_loop(0, epochs, lambda i, p: jax.tree.map(lambda a, g: a - LR_XOR * g, p, grad(p)), p)

    def predict(p):
        W1, b1, W2, b2 = (np.asarray(a) for a in p)
        return 1 / (1 + np.exp(-(1 / (1 + np.exp(-(X @ W1 + b1))) @ W2 + b2)))

    p0 = tuple(jnp.asarray(a) for a in xor_init(h))
    jax.block_until_ready(run(p0))  # compile
    return lambda: predict(jax.block_until_ready(run(p0)))


def numba_xor(X, Y, epochs, h=2):
    """An @njit loop over epochs and samples (no fastmath). Returns a compiled callable."""
    from numba import njit

    @njit(cache=False, fastmath=False)
    def run(W1, b1, W2, b2, X, Y, epochs, lr):
        n = X.shape[0]
        a = np.empty(h)
        p = np.empty(n)
        for _ in range(epochs):
            gW1 = np.zeros((2, h)); gb1 = np.zeros(h); gW2 = np.zeros(h); gb2 = 0.0
            for i in range(n):
                z = b2[0]
                for j in range(h):
                    a[j] = 1.0 / (1.0 + np.exp(-(X[i, 0] * W1[0, j] + X[i, 1] * W1[1, j] + b1[j])))
                    z += a[j] * W2[j, 0]
                p[i] = 1.0 / (1.0 + np.exp(-z))
                d2 = (p[i] - Y[i, 0]) / n
                gb2 += d2
                for j in range(h):
                    gW2[j] += a[j] * d2
                    d1 = d2 * W2[j, 0] * a[j] * (1 - a[j])
                    gb1[j] += d1; gW1[0, j] += X[i, 0] * d1; gW1[1, j] += X[i, 1] * d1
            for j in range(h):
                W2[j, 0] -= lr * gW2[j]; b1[j] -= lr * gb1[j]
                W1[0, j] -= lr * gW1[0, j]; W1[1, j] -= lr * gW1[1, j]
            b2[0] -= lr * gb2
        return p.reshape(-1, 1)

    run(*xor_init(h), X, Y, 2, LR_XOR)  # compile
    return lambda: run(*xor_init(h), X, Y, epochs, LR_XOR)


def c_floor_xor(X, Y, epochs, h=2):
    """The plain-C floor: bench/xor_floor.c compiled for this H with the C compiler found ($CC, else
    cc), -O3, and -march=x86-64-v3 where the CPU has AVX2 and FMA (the instructions fastnn's own
    vector paths use; not -march=native), loaded through ctypes. X and Y are its constants (XOR's
    four rows). Returns a callable like numba_xor's, or None without a C compiler (or on a
    platform other than Linux/macOS)."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None or platform.system() not in ("Linux", "Darwin"):
        return None
    flags = ["-O3", f"-DH={h}", "-shared", "-fPIC"]
    try:
        import fastnn._kernels as kernels
        if kernels._simd_available():
            flags.append("-march=x86-64-v3")
    except ImportError:
        pass
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xor_floor.c")
    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as folder:  # (a loaded library may be unlinked)
        library = os.path.join(folder, f"xor_floor_{h}.so")
        built = subprocess.run([compiler, *flags, "-o", library, source, "-lm"], capture_output=True, text=True)
        if built.returncode != 0:
            return None
        run = ctypes.CDLL(library).xor_floor
    array = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
    run.argtypes = [ctypes.c_int, ctypes.c_double, array, array, array, array, array]
    run.restype = None

    def train():
        p = np.empty(4)
        run(epochs, LR_XOR, *(np.ascontiguousarray(a) for a in xor_init(h)), p)
        return p.reshape(-1, 1)
    return train


# ---------------------------------------------------------------- MLPs

def he_params(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return ([(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])],
            [np.zeros(b, np.float32) for b in sizes[1:]])


def numpy_mlp_train(X, y, sizes, batch):
    """One epoch of minibatch SGD with momentum, by hand in NumPy (as peers/mlp.py)."""
    Ws, bs = he_params(sizes)
    vW = [np.zeros_like(w) for w in Ws]
    vb = [np.zeros_like(b) for b in bs]
    for s in range(0, len(X), batch):
        xb, yb = X[s:s + batch], y[s:s + batch]
        m = len(xb)
        acts = [xb]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
        z = acts[-1] - acts[-1].max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        d = p
        d[np.arange(m), yb] -= 1
        d /= m
        for i in range(len(Ws) - 1, -1, -1):
            gW = acts[i].T @ d
            gb = d.sum(0)
            if i:
                d = (d @ Ws[i].T) * (acts[i] > 0)
            vW[i] *= MOMENTUM; vW[i] += gW; Ws[i] -= LR_MLP * vW[i]
            vb[i] *= MOMENTUM; vb[i] += gb; bs[i] -= LR_MLP * vb[i]
    return Ws, bs


def numpy_mlp_predict(X, params):
    Ws, bs = params
    a = X
    for i, (W, b) in enumerate(zip(Ws, bs)):
        a = a @ W + b
        if i < len(Ws) - 1:
            np.maximum(a, 0, out=a)
    return a.argmax(1)


def torch_mlp(sizes):
    import torch
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_precision(autocast: bool):
    """PyTorch's bfloat16 mixed precision on the CPU (one autocast line), or nothing."""
    import torch
    return torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()


def torch_mlp_train(X, y, sizes, batch, autocast=False):
    import torch
    m = torch_mlp(sizes)
    opt = torch.optim.SGD(m.parameters(), lr=LR_MLP, momentum=MOMENTUM)
    lossf = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for s in range(0, len(X), batch):
        opt.zero_grad()
        with _torch_precision(autocast):
            loss = lossf(m(Xt[s:s + batch]), yt[s:s + batch])
        loss.backward()
        opt.step()
    return m


def torch_mlp_predict(X, m, autocast=False):
    import torch
    with torch.no_grad(), _torch_precision(autocast):
        return m(torch.from_numpy(X)).argmax(1).numpy()


def jax_mlp(X, y, sizes, batch):
    """A whole epoch under one jitted lax.scan (the best JAX does), data already on the device.
    Returns (train_epoch, predict): train_epoch() runs one epoch from the initial weights."""
    import jax
    import jax.numpy as jnp
    nb = len(X) // batch
    Ws, bs = he_params(sizes)
    params0 = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(Ws, bs)]

    def forward(ps, x):
        for W, b in ps[:-1]:
            x = jax.nn.relu(x @ W + b)
        return x @ ps[-1][0] + ps[-1][1]

    def loss(ps, xb, yb):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(forward(ps, xb)), yb[:, None], 1))

    def step(carry, xy):
        ps, vs = carry
        g = jax.grad(loss)(ps, *xy)
        vs = jax.tree.map(lambda v, g: MOMENTUM * v + g, vs, g)
        ps = jax.tree.map(lambda p, v: p - LR_MLP * v, ps, vs)
        return (ps, vs), None

    xs = jnp.asarray(X[:nb * batch].reshape(nb, batch, sizes[0]))
    ys = jnp.asarray(y[:nb * batch].astype(np.int32).reshape(nb, batch))
    epoch = jax.jit(lambda c, xs, ys: jax.lax.scan(step, c, (xs, ys))[0])
    start = (params0, jax.tree.map(jnp.zeros_like, params0))
    jax.block_until_ready(epoch(start, xs, ys))  # compile
    fwd = jax.jit(lambda ps, x: jnp.argmax(forward(ps, x), 1))
    Xi = jnp.asarray(X)

    def train_epoch():
        return jax.block_until_ready(epoch(start, xs, ys))[0]

    def predict(ps):
        return np.asarray(jax.block_until_ready(fwd(ps, Xi)))

    predict(params0)  # compile
    return train_epoch, predict, nb * batch
