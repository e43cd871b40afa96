"""Activation functions by name: the table the model layer and both kernel modules share.

The kernels take an integer code, not a name, so a compiled loop can switch on it without Python.
Every derivative is written through the activation's *output* A = f(Z) (sigmoid: A(1-A),
tanh: 1-A², relu: A > 0, exp: A, ...), so the forward pass never needs to keep Z.
The numbering is mirrored by the `cdef enum` in _kernels.pyx; tests/test_twins.py holds them together.
"""

LINEAR = 0
SIGMOID = 1
RELU = 2
TANH = 3
LEAKY_RELU = 4
SOFTMAX = 5
EXP = 6  # the log link: the output of a Poisson regression

CODES = {"linear": LINEAR, "sigmoid": SIGMOID, "relu": RELU, "tanh": TANH,
         "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX, "exp": EXP}
NAMES = {code: name for name, code in CODES.items()}

# PyTorch's default negative slope for LeakyReLU.
LEAKY_SLOPE = 0.01

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
