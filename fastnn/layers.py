"""The layers of a Sequential: Dense (A = f(X @ W + b)); Dropout, which zeroes a random part of
what the next Dense receives while training; and Input, which only names the width of the data.

A layer holds its configuration; its parameters W (n_in, n_out) and b (n_out,) are views into
the owning Sequential's one flat parameter buffer, so the optimizer updates the whole network
in a single kernel call. They exist once the model is built: as soon as it knows the width of its
input (from the first Dense's n_in, an Input, `model.build(n_in)` or the first `fit`).
"""
from typing import Optional, Sequence, Union

import numpy as np

from . import activations, regularizers
from .validation import as_weights, check_positive_int, check_real

INITS = ("auto", "glorot_uniform", "he_uniform", "zeros")
MAX_WIDTH = 2 ** 31 - 1


def _width(name: str, value) -> int:
    value = check_positive_int(name, value)
    if value > MAX_WIDTH:  # BLAS takes its sizes as C ints
        raise ValueError(f"{name} must be at most {MAX_WIDTH}, got {value}")
    return value


class Input:
    """The width of the model's input, as Keras writes it: Sequential([Input(shape=(20,)), Dense(8), ...]).
    shape: (n_in,), one sample's shape (a Dense network's samples are vectors)."""

    def __init__(self, shape: Union[int, Sequence[int]]):
        shape = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else tuple(shape)
        if len(shape) != 1:
            raise ValueError(f"shape must be (n_in,): a Dense network takes vectors, got {shape}")
        self.n_in = _width("shape[0]", shape[0])

    def config(self) -> dict:
        return {"shape": [self.n_in]}

    def __repr__(self) -> str:
        return f"Input(shape=({self.n_in},))"


class Dropout:
    """Inverted dropout on the input of the Dense layer after it: while training, each element
    is kept with probability 1 - rate and divided by 1 - rate, or set to 0 (a new mask every
    batch, drawn in the training step from the model's seed); predict and evaluate use every
    element as it is. rate in [0, 1). Dropouts in a row combine: 1 - (1 - r1)(1 - r2)."""

    def __init__(self, rate: float):
        self.rate = check_real("rate", rate, low=0.0, high=1.0, high_open=True)

    def config(self) -> dict:
        return {"class": "Dropout", "rate": self.rate}

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"


class Dense:
    """Fully connected layer: A = activation(X @ W + b), X: (batch, n_in) -> A: (batch, n_out).

    Dense(units, activation=...) as in Keras, n_in taken from the layer before it or, for the first
    layer, from the data (or `input_dim=`); or Dense(n_in, n_out, activation=...) with both widths.
    kernel_regularizer: a penalty on W (fastnn.regularizers: l1, l2, l1_l2), or None.
    """

    def __init__(self, *sizes: Union[int, str], activation: Optional[str] = None, init: str = "auto",
                 units: Optional[int] = None, n_in: Optional[int] = None, n_out: Optional[int] = None,
                 input_dim: Optional[int] = None, kernel_regularizer=None):
        at = next((i for i, s in enumerate(sizes) if s is None or isinstance(s, str)), len(sizes))
        widths, words = list(sizes[:at]), list(sizes[at:])  # Dense(2, 1, "sigmoid"), Dense(8, "relu", "he_uniform")
        if len(widths) > 2 or len(words) > 2 or not all(w is None or isinstance(w, str) for w in words):
            raise TypeError(f"Dense takes (units) or (n_in, n_out), then activation and init, got {sizes!r}")
        if words and words[0] is not None:
            if activation is not None:
                raise TypeError("Dense got the activation twice (positional and activation=)")
            activation = words[0]
        if len(words) == 2:
            init = words[1]
        sizes = widths
        if len(sizes) == 2:
            n_in, n_out = sizes
        elif len(sizes) == 1:
            n_out = sizes[0]
        if units is not None:
            if n_out is not None:
                raise TypeError("give the layer's width once: units= or n_out=")
            n_out = units
        if input_dim is not None:
            if n_in is not None:
                raise TypeError("give the input width once: n_in= or input_dim=")
            n_in = input_dim
        if n_out is None:
            raise TypeError("Dense needs its width: Dense(units) or Dense(n_in, n_out)")
        self.n_in: Optional[int] = None if n_in is None else _width("n_in", n_in)
        self.n_out = _width("n_out", n_out)
        activations.code(activation)  # raises for an unknown name
        self.activation = "linear" if activation is None else activation
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.init = activations.DEFAULT_INIT[self.activation] if init == "auto" else init
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self._W: Optional[np.ndarray] = None
        self._b: Optional[np.ndarray] = None
        self.owner = None  # the Sequential this layer belongs to

    @property
    def units(self) -> int:
        """The layer's width, Keras' name for n_out."""
        return self.n_out

    @property
    def n_params(self) -> int:
        if self.n_in is None:
            raise RuntimeError(f"{self!r} does not know its input width yet: build the model first")
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
            raise RuntimeError("this Dense layer has no parameters yet: they are created when the Sequential "
                               "it is in is built (it knows its input width: model.build(n_in) or the first fit)")

    @staticmethod
    def _assign(name: str, target: np.ndarray, value) -> None:
        np.copyto(target, as_weights(name, value, target.shape, target.dtype))

    @property
    def built(self) -> bool:
        """Whether the layer has its parameters (its model is built)."""
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
        config = {"class": "Dense", "n_in": self.n_in, "n_out": self.n_out, "activation": self.activation,
                  "init": self.init}
        if self.kernel_regularizer is not None:
            config["kernel_regularizer"] = self.kernel_regularizer.config()
        return config

    def __repr__(self) -> str:
        if self.n_in is None:
            return f"Dense({self.n_out}, activation={self.activation!r})"
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r})"


def from_config(config: dict):
    """A Dense or Dropout from its config() (a config without "class" is a Dense's, as files of
    format version 1 hold them)."""
    config = dict(config)
    kind = config.pop("class", "Dense")
    if kind not in ("Dense", "Dropout"):
        raise ValueError(f"unknown layer class {kind!r}")
    return Dense(**config) if kind == "Dense" else Dropout(**config)
