"""Losses by name, for the model layer. The table itself (each loss's kernels and the output
activation it is computed from logits with) is fastnn._contract.LOSSES; the kernels are
fastnn/_compiled/losses.pxi and fastnn/_fallback/losses.py.

Losses are computed from logits where the pair allows it (sigmoid + binary cross-entropy,
softmax + categorical cross-entropy, exp + Poisson): the kernel takes the output layer's
pre-activation Z and returns the loss and dL/dZ in one pass, which is both stable and cheaper
than going through the probabilities. MSE works on any output activation's result A.
"""
from ._contract import LOSSES
from ._contract import BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY, MSE, POISSON  # noqa: F401
from ._contract import SPARSE_CATEGORICAL_CROSSENTROPY  # noqa: F401

CODES = {row.name: code for code, row in LOSSES.items()}


def code(name) -> int:
    """The code of a loss name; ValueError lists the valid names."""
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(f"loss must be one of {sorted(CODES)}, got {name!r}")
    return CODES[name]
