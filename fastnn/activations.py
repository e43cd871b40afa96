"""Activation functions by name, for the model layer: the contract's codes (fastnn._contract) and
each activation's default initialisation. The kernels are fastnn/_compiled/activations.pxi and
fastnn/_fallback/activations.py."""
from ._contract import ACTIVATIONS as CODES
from ._contract import EXP, LEAKY_RELU, LEAKY_SLOPE, LINEAR, RELU, SIGMOID, SOFTMAX, TANH  # noqa: F401

NAMES = {code: name for name, code in CODES.items()}

# Initialisation that keeps activations' variance steady: He for the rectifiers, Glorot otherwise.
DEFAULT_INIT = {"linear": "glorot_uniform", "sigmoid": "glorot_uniform", "tanh": "glorot_uniform",
                "softmax": "glorot_uniform", "exp": "glorot_uniform", "relu": "he_uniform",
                "leaky_relu": "he_uniform"}


def code(name) -> int:
    """The kernel code of an activation name (None means linear); ValueError lists the valid names."""
    if name is None:
        return LINEAR
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(f"activation must be one of {sorted(CODES)} or None, got {name!r}")
    return CODES[name]
