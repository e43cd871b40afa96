"""Losses by name: which output activation each is computed with, and which kernels compute it.

Losses are computed from logits where the pair allows it (sigmoid + binary cross-entropy,
softmax + categorical cross-entropy): the kernel takes the output layer's pre-activation Z and
returns the loss and dL/dZ = (p - y)/n in one pass, which is both stable and cheaper than
going through the probabilities. Poisson regression likewise takes the log-rate Z of an exp
output. MSE works on any output activation's result A.

Every loss kernel takes optional per-row weights and then returns the weighted mean
(sum of w_i * loss_i over sum of w_i), as scikit-learn weights its losses.
"""
from . import activations

BINARY_CROSSENTROPY = 0
CATEGORICAL_CROSSENTROPY = 1
SPARSE_CATEGORICAL_CROSSENTROPY = 2
MSE = 3
POISSON = 4

CODES = {"binary_crossentropy": BINARY_CROSSENTROPY,
         "categorical_crossentropy": CATEGORICAL_CROSSENTROPY,
         "sparse_categorical_crossentropy": SPARSE_CATEGORICAL_CROSSENTROPY,
         "mse": MSE,
         "poisson": POISSON}

# Output activation each loss is fused with (computed from logits); None: any activation.
FUSED_ACTIVATION = {BINARY_CROSSENTROPY: activations.SIGMOID,
                    CATEGORICAL_CROSSENTROPY: activations.SOFTMAX,
                    SPARSE_CATEGORICAL_CROSSENTROPY: activations.SOFTMAX,
                    MSE: None,
                    POISSON: activations.EXP}

# Backend kernel names: (loss and gradient, count of correct predictions or None).
KERNELS = {BINARY_CROSSENTROPY: ("sigmoid_bce", "binary_correct"),
           CATEGORICAL_CROSSENTROPY: ("softmax_cce", "categorical_correct"),
           SPARSE_CATEGORICAL_CROSSENTROPY: ("softmax_sparse_cce", "sparse_correct"),
           MSE: ("mse", None),
           POISSON: ("poisson_nll", None)}


def code(name) -> int:
    """The code of a loss name; ValueError lists the valid names."""
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(f"loss must be one of {sorted(CODES)}, got {name!r}")
    return CODES[name]
