"""Dense: a fully connected layer, A = f(X @ W + b).

A layer holds its configuration; its parameters W (n_in, n_out) and b (n_out,) are views into
the owning Sequential's one flat parameter buffer, so the optimizer updates the whole network
in a single kernel call. They exist once the layer is part of a Sequential.
"""
from typing import Optional

import numpy as np

from . import activations
from .validation import as_weights, check_positive_int

INITS = ("auto", "glorot_uniform", "he_uniform", "zeros")
MAX_WIDTH = 2 ** 31 - 1


class Dense:
    """Fully connected layer: A = activation(X @ W + b), X: (batch, n_in) -> A: (batch, n_out)."""

    def __init__(self, n_in: int, n_out: int, activation: Optional[str] = None, init: str = "auto"):
        self.n_in = check_positive_int("n_in", n_in)
        self.n_out = check_positive_int("n_out", n_out)
        for name, value in (("n_in", self.n_in), ("n_out", self.n_out)):
            if value > MAX_WIDTH:  # BLAS takes its sizes as C ints
                raise ValueError(f"{name} must be at most {MAX_WIDTH}, got {value}")
        activations.code(activation)  # raises for an unknown name
        self.activation = "linear" if activation is None else activation
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.init = activations.DEFAULT_INIT[self.activation] if init == "auto" else init
        self._W: Optional[np.ndarray] = None
        self._b: Optional[np.ndarray] = None

    @property
    def n_params(self) -> int:
        return self.n_in * self.n_out + self.n_out

    @property
    def code(self) -> int:
        """The activation's kernel code."""
        return activations.CODES[self.activation]

    @property
    def W(self) -> np.ndarray:
        """Weights, (n_in, n_out). Assigning copies the values in (the shape must match)."""
        self._require_built()
        return self._W

    @W.setter
    def W(self, value) -> None:
        self._require_built()
        self._assign("W", self._W, value)

    @property
    def b(self) -> np.ndarray:
        """Biases, (n_out,). Assigning copies the values in (the shape must match)."""
        self._require_built()
        return self._b

    @b.setter
    def b(self, value) -> None:
        self._require_built()
        self._assign("b", self._b, value)

    def _require_built(self) -> None:
        if self._W is None:
            raise RuntimeError("this Dense layer has no parameters yet: they are created when it is "
                               "put in a Sequential")

    @staticmethod
    def _assign(name: str, target: np.ndarray, value) -> None:
        np.copyto(target, as_weights(name, value, target.shape, target.dtype))

    @property
    def built(self) -> bool:
        """Whether the layer has its parameters (it belongs to a Sequential)."""
        return self._W is not None

    def bind(self, W: np.ndarray, b: np.ndarray) -> None:
        """Called by Sequential: W (n_in, n_out) and b (n_out,) become the layer's parameters, views
        into the model's flat buffer (fastnn.network.Network)."""
        if W.shape != (self.n_in, self.n_out) or b.shape != (self.n_out,):
            raise ValueError(f"W {W.shape} and b {b.shape} do not fit a Dense({self.n_in}, {self.n_out})")
        self._W, self._b = W, b

    def initialize(self, rng: np.random.Generator) -> None:
        """Glorot uniform: U(±sqrt(6/(n_in+n_out))); He uniform: U(±sqrt(6/n_in)); biases zero."""
        if self.init == "zeros":
            limit = 0.0
        elif self.init == "he_uniform":
            limit = np.sqrt(6.0 / self.n_in)
        else:
            limit = np.sqrt(6.0 / (self.n_in + self.n_out))
        self._W[...] = rng.uniform(-limit, limit, size=self._W.shape)
        self._b[...] = 0.0

    def config(self) -> dict:
        return {"n_in": self.n_in, "n_out": self.n_out, "activation": self.activation, "init": self.init}

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r})"
