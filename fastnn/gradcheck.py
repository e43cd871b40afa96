"""gradcheck: trust the math by checking backpropagation against finite differences.

Backpropagation computes ∂L/∂w for every parameter in one backward pass. The definition of a
derivative gives the same numbers much more slowly: nudge one parameter by ±h, recompute the loss,
and take (L(w + h) − L(w − h)) / 2h. If the two disagree, the backward kernels are wrong.

    result = fnn.gradcheck(model, X[:8], y[:8])
    print(result)            # worst relative error of every parameter array, and PASS or FAIL
    assert result.passed
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import layers, trainer
from .backend import ops
from .model import Sequential
from .validation import check_real

# Pass if every array's relative error is at most this; float32 gradients carry float32 rounding.
# Finite differences in float64 are good to ~1e-9 relative, so a float64 backward pass that is right
# lands far below 1e-6, while a wrong formula is off by a sizeable fraction of the gradient.
TOLERANCE = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-6}
# A bfloat16 model's products round every operand to 8 significant bits (a relative 2⁻⁹), the
# activations and dZ as well as W, which a smooth reference cannot follow: its gradient is compared
# with that of the network whose weights are rounded, to a tolerance of a few roundings.
BFLOAT16_TOLERANCE = 3e-2
# The default step h = cbrt(float64 eps) · max(1, |w|), where a central difference's truncation
# error (∝ h²) and rounding error (∝ eps / h) meet.
_STEP = np.finfo(np.float64).eps ** (1 / 3)
# Below this size a parameter array's gradient is compared absolutely: its relative error would be
# the finite differences' own rounding noise (~1e-10) divided by almost nothing.
_FLOOR = 1e-4


@dataclass
class GradcheckResult:
    """errors: worst relative error per parameter array, e.g. {"layers[0].W": 3e-10, ...};
    passed: every error is at most `tolerance`; path: the specialisation of the training step
    whose gradient was checked ("layers", or "lanes" for a tiny network on the compiled backend)."""
    errors: dict
    tolerance: float
    passed: bool
    path: str = "layers"

    def __str__(self) -> str:
        lines = [f"  {name:12s} {error:.2e}  {'ok' if error <= self.tolerance else 'WRONG'}"
                 for name, error in self.errors.items()]
        verdict = "PASS" if self.passed else "FAIL"
        return "\n".join([f"gradcheck: {verdict} (worst relative error per parameter, tolerance "
                          f"{self.tolerance:g}; the training step's {self.path} path)"] + lines)


def _float64_twin(model: Sequential) -> Sequential:
    """The same network in float64 with the same weights (a bfloat16 model's W rounded to bfloat16,
    as its products take them), for the finite differences."""
    twin = Sequential([layers.from_config(layer.config()) for layer in model.dense_layers], seed=0, dtype="float64")
    weights = model.get_weights()
    if model.precision == "bfloat16":
        for i in range(0, len(weights), 2):
            flat = weights[i].reshape(-1)
            ops().round_bfloat16(flat, flat)
    twin.set_weights(weights)
    twin.compile(loss=model.loss, optimizer="sgd")
    return twin


def gradcheck(model: Sequential, X, y, eps: Optional[float] = None,
              tolerance: Optional[float] = None) -> GradcheckResult:
    """Compare the backward kernels' gradient of the loss on (X, y), taken as one batch, with
    central finite differences computed in float64, for every parameter of `model`.

    model: a compiled Sequential (its loss is the one differentiated; it is not changed).
    X: (n_samples, n_in); y: as model.fit takes it. Keep both small: the check runs two passes
    of the training step per parameter.
    eps: the finite-difference step; default cbrt(float64 eps) · max(1, |w|) per parameter.
    tolerance: pass threshold on the relative error; default 1e-6 for float64 models, 1e-3 for float32,
    BFLOAT16_TOLERANCE for precision="bfloat16", whose gradient is compared with the exact gradient
    of the network with its weights rounded to bfloat16 (its activations and dZ are rounded too,
    which the tolerance allows for).

    The analytic gradient is the training step's own (one full-batch pass that updates nothing),
    in the model's dtype on the active backend, so the check covers the path fit takes, the lanes
    included. The relative error of a parameter array is max|analytic − numeric| /
    max(max|analytic|, max|numeric|, 1e-4): measured against the array's largest gradient, so a
    near-zero entry cannot blow it up.
    relu and leaky_relu have a kink at z = 0: a z within h of it (for instance z = b = 0 exactly, from
    a row whose inputs are all 0 and a bias still at its initial 0) gives a disagreement that is
    not a bug. Random inputs and trained or randomised biases avoid it.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastnn.Sequential, got {type(model).__name__}")
    if model.loss is None:
        raise RuntimeError("call model.compile(loss, optimizer) before gradcheck(model, ...)")
    if eps is not None:
        eps = check_real("eps", eps, low=0.0, low_open=True)
    default = BFLOAT16_TOLERANCE if model.precision == "bfloat16" else TOLERANCE[model.dtype]
    tolerance = default if tolerance is None else check_real("tolerance", tolerance, low=0.0)

    data = trainer.Data.for_model(model, X, y)
    # Dropout's masks are those of step 1 in every pass, so the loss differentiated is one function.
    options = model.step_options()
    # The gradient pass writes the model's gradient buffer, which a fit in another thread is using.
    network = model.network
    with network.fitting("gradcheck"):
        step = trainer.Trainer(network, model.loss_code, data, batch=data.n, **options)
        step.loss_and_count()
        analytic = network.grads.copy()

    # The twin sees exactly the model's numbers (float32 values are exact in float64); its loss
    # comes from the same training step, on a gradient buffer of its own.
    twin = _float64_twin(model)
    data64 = trainer.Data(data.X.astype(np.float64), data.y if data.y.dtype == np.int64 else data.y.astype(np.float64))
    params = twin.network.params  # flat; the twin's layers read their W and b from it
    scratch = np.empty_like(params)
    numeric = np.empty(params.size)
    for i in range(params.size):
        w = params[i]
        h = eps if eps is not None else _STEP * max(1.0, abs(w))
        params[i] = w + h
        up = trainer.gradient(twin.network, twin.loss_code, data64, grads=scratch, **options)[0]
        params[i] = w - h
        down = trainer.gradient(twin.network, twin.loss_code, data64, grads=scratch, **options)[0]
        params[i] = w
        numeric[i] = (up - down) / (2 * h)

    errors = {}
    for l, (w_at, b_at, end) in enumerate(network.slices):  # where each layer's W and b lie in the flat buffer
        for name, start, stop in (("W", w_at, b_at), ("b", b_at, end)):
            a = analytic[start:stop].astype(np.float64)
            n = numeric[start:stop]
            scale = max(np.abs(a).max(), np.abs(n).max(), _FLOOR)
            errors[f"layers[{l}].{name}"] = float(np.abs(a - n).max() / scale)
    passed = all(error <= tolerance for error in errors.values())
    return GradcheckResult(errors=errors, tolerance=tolerance, passed=passed, path=step.path)
