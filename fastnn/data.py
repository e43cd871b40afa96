"""Small generated data sets for demos, tests and benchmarks (no downloads).

Each returns (X, y): X (n, n_features) float64, y integer labels (n,) — or, for xor(), the four
points with float targets (4, 1) as the lesson writes them.
"""
import numpy as np


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The XOR truth table: X (4, 2) of 0/1 inputs, y (4, 1) = x0 XOR x1."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    return X, y


def moons(n: int = 1000, noise: float = 0.1, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's make_moons): X (n, 2), y (n,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    n_top = n // 2
    t_top = rng.uniform(0, np.pi, n_top)
    t_bottom = rng.uniform(0, np.pi, n - n_top)
    top = np.column_stack([np.cos(t_top), np.sin(t_top)])
    bottom = np.column_stack([1 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)])
    X = np.vstack([top, bottom]) + rng.normal(0, noise, (n, 2))
    y = np.concatenate([np.zeros(n_top, np.int64), np.ones(n - n_top, np.int64)])
    return X, y


def spirals(n: int = 1000, noise: float = 0.2, turns: float = 1.5, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: X (n, 2), y (n,) in {0, 1}. Not separable by any line."""
    rng = np.random.default_rng(seed)
    half = n // 2
    sizes = (half, n - half)
    parts, labels = [], []
    for label, size in enumerate(sizes):
        t = np.sqrt(rng.uniform(0, 1, size)) * turns * 2 * np.pi
        r = t / (turns * 2 * np.pi) * 5
        angle = t + label * np.pi
        parts.append(np.column_stack([r * np.cos(angle), r * np.sin(angle)]))
        labels.append(np.full(size, label, np.int64))
    X = np.vstack(parts) + rng.normal(0, noise, (n, 2))
    return X, np.concatenate(labels)


def classification(n: int = 1000, n_features: int = 20, n_classes: int = 2, noise: float = 0.1,
                   seed=None, dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """Many-class synthetic data: Gaussian X (n, n_features), labels y (n,) = argmax of a random
    linear map through tanh, plus noise (the benchmark peers' data)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features), dtype=np.dtype(dtype).type)
    T = rng.standard_normal((n_features, n_classes), dtype=np.dtype(dtype).type)
    scores = np.tanh(X @ T) + noise * rng.standard_normal((n, n_classes), dtype=np.dtype(dtype).type)
    return X, np.argmax(scores, axis=1).astype(np.int64)


def one_hot(y, n_classes: int) -> np.ndarray:
    """Integer labels (n,) -> one-hot rows (n, n_classes) float64."""
    y = np.asarray(y, dtype=np.int64)
    out = np.zeros((y.size, n_classes))
    out[np.arange(y.size), y] = 1.0
    return out
