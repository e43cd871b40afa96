"""The contract of fastnn's two kernel modules, owned by neither.

fastnn._kernels (compiled) and fastnn._fallback (NumPy) are twins: the same functions with the same
parameters and results. What they must agree on lives here, and both import it:

- the codes: activations, losses, optimizers (the kernels take integers, so a compiled loop can
  switch on them without Python; _kernels.pyx's enums are checked against these at import);
- the one loss table: code -> the kernel that computes the loss and its gradient, the kernel that
  counts correct predictions (None: not a classification loss), and the output activation computed
  inside the loss (from logits);
- the layout of the flat parameter buffer;
- what a bfloat16 product is (`check_bfloat16`);
- `TrainingRun` and `Update`, what `train_epochs` takes, by name;
- the argument checks and their error messages, so the twins raise the same errors.

Adding an activation or a loss: one row in the table here, plus its kernel in each twin
(fastnn/_compiled/*.pxi and fastnn/_fallback/*.py).
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

# ----------------------------------------------------------------------------- activations
# Every derivative is written through the activation's output A = f(Z) (sigmoid: A(1-A), tanh: 1-A²,
# relu: A > 0, exp: A), so the forward pass never needs to keep Z.

LINEAR, SIGMOID, RELU, TANH, LEAKY_RELU, SOFTMAX, EXP = range(7)  # EXP: the log link of a Poisson regression
ACTIVATIONS = {"linear": LINEAR, "sigmoid": SIGMOID, "relu": RELU, "tanh": TANH,
               "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX, "exp": EXP}
LEAKY_SLOPE = 0.01  # PyTorch's default negative slope for LeakyReLU

# ----------------------------------------------------------------------------- losses
# Each loss is a mean over rows, weighted when sample_weight (batch,) is given: sum_i w_i loss_i /
# sum_i w_i, as scikit-learn weights its losses. Binary cross-entropy, MSE and Poisson average over
# the outputs too; categorical cross-entropy sums over a row's classes.

BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY, SPARSE_CATEGORICAL_CROSSENTROPY, MSE, POISSON = range(5)


class Loss(NamedTuple):
    """One row of the loss table."""
    name: str
    kernel: str             # the twins' function: loss and gradient with respect to the output
    counts: Optional[str]   # the twins' function counting correct predictions; None: no accuracy
    fused: Optional[int]    # the output activation the loss is computed from logits with; None: any
    targets: Optional[tuple[float, float]]  # the targets the loss is defined for; None: any (labels: [0, n))


LOSSES = {
    BINARY_CROSSENTROPY: Loss("binary_crossentropy", "sigmoid_bce", "binary_correct", SIGMOID, (0.0, 1.0)),
    CATEGORICAL_CROSSENTROPY: Loss("categorical_crossentropy", "softmax_cce", "categorical_correct", SOFTMAX,
                                   (0.0, 1.0)),
    SPARSE_CATEGORICAL_CROSSENTROPY: Loss("sparse_categorical_crossentropy", "softmax_sparse_cce",
                                          "sparse_correct", SOFTMAX, None),
    MSE: Loss("mse", "mse", None, None, None),
    POISSON: Loss("poisson", "poisson_nll", None, EXP, (0.0, float("inf"))),
}

# ----------------------------------------------------------------------------- optimizers

SGD, MOMENTUM, ADAM, NESTEROV, ADAMW, RMSPROP = range(6)
OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "adam": ADAM, "nesterov": NESTEROV, "adamw": ADAMW,
              "rmsprop": RMSPROP}
# The optimizer state each one updates: Update's arrays by name. RMSPROP's velocity only with momentum > 0.
STATE = {SGD: (), MOMENTUM: ("velocity",), NESTEROV: ("velocity",), ADAM: ("m", "v"), ADAMW: ("m", "v"),
         RMSPROP: ("v",)}

# Learning-rate schedules, evaluated per step inside the run: code -> the meaning of Update.schedule_args.
# `it` is the number of steps taken before this one (0 for the first), Keras' `iterations`.
CONSTANT, EXPONENTIAL, PIECEWISE, COSINE = range(4)
SCHEDULES = {
    CONSTANT: (),                    # lr
    EXPONENTIAL: ("initial", "decay_steps", "decay_rate", "staircase"),
    #   initial * decay_rate ** (it / decay_steps), the exponent floored when staircase (1.0)
    PIECEWISE: ("boundaries...", "values..."),
    #   k boundaries then k + 1 values: values[0] while it <= b[0], values[i] while b[i-1] < it <= b[i], ...
    COSINE: ("initial", "decay_steps", "alpha", "warmup_target", "warmup_steps"),
    #   s = min(it, warmup_steps + decay_steps); below warmup_steps: initial + (warmup_target - initial)
    #   s / warmup_steps; then warmup_target ((1 - alpha) (1 + cos(pi (s - warmup_steps) / decay_steps)) / 2 + alpha)
}

# ----------------------------------------------------------------------------- metrics
# Computed on each training batch's predictions (the output activation applied to logits), before
# the batch's step, as Keras computes a fit's metrics; unweighted (Keras' `metrics`, not
# `weighted_metrics`). train_epochs reports each epoch's sum; the mean divides by the rows, or by
# the elements (rows * outputs) where `per_element`.

(BINARY_ACCURACY, CATEGORICAL_ACCURACY, SPARSE_CATEGORICAL_ACCURACY, TOP_K_CATEGORICAL_ACCURACY,
 SPARSE_TOP_K_CATEGORICAL_ACCURACY, MEAN_ABSOLUTE_ERROR, MEAN_SQUARED_ERROR) = range(7)


class Metric(NamedTuple):
    """One row of the metric table."""
    name: str
    per_element: bool
    sparse: bool  # takes class labels (the sparse loss's targets); else targets shaped like the outputs


METRICS = {
    BINARY_ACCURACY: Metric("binary_accuracy", True, False),             # (p > 0.5) == (y > 0.5)
    CATEGORICAL_ACCURACY: Metric("categorical_accuracy", False, False),  # argmax p == argmax y
    SPARSE_CATEGORICAL_ACCURACY: Metric("sparse_categorical_accuracy", False, True),  # argmax p == label
    # the true class (argmax y, or the label) among the k largest p: fewer than k classes score higher
    TOP_K_CATEGORICAL_ACCURACY: Metric("top_k_categorical_accuracy", False, False),
    SPARSE_TOP_K_CATEGORICAL_ACCURACY: Metric("sparse_top_k_categorical_accuracy", False, True),
    MEAN_ABSOLUTE_ERROR: Metric("mean_absolute_error", True, False),     # |p - y|
    MEAN_SQUARED_ERROR: Metric("mean_squared_error", True, False),       # (p - y)²
}

# ----------------------------------------------------------------------------- the flat parameter buffer


class LayerSlice(NamedTuple):
    """Where one layer's parameters lie in the flat buffer: W is [w_at, b_at) as (n_in, n_out), b is [b_at, end)."""
    w_at: int
    b_at: int
    end: int


def layout(sizes) -> tuple[list[LayerSlice], int]:
    """(each layer's slice, n_params) of the network with layer widths `sizes` (L+1,): W then b per layer."""
    slices, at = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        n_in, n_out = int(n_in), int(n_out)
        slices.append(LayerSlice(at, at + n_in * n_out, at + n_in * n_out + n_out))
        at += n_in * n_out + n_out
    return slices, at


# ----------------------------------------------------------------------------- threads

# The least work (multiply-adds of a forward pass over the rows at hand) that the compiled twin
# shares among threads: below it a job is too short to hand out.
POOL_MIN_WORK = 1 << 21


def pool_threads(threads: int, rows: int, sizes) -> int:
    """How many threads share a pass of `rows` rows through the network of layer widths `sizes`
    when `threads` may: 1 when the pass is below POOL_MIN_WORK."""
    work = rows * sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:]))
    return int(threads) if threads > 1 and work >= POOL_MIN_WORK else 1


# ----------------------------------------------------------------------------- bfloat16 products
# With bfloat16 on, each of a dense layer's three products (X·W forward, Xᵀ·dZ and dZ·Wᵀ backward)
# takes its two operands rounded from float32 to bfloat16 (8 bits of mantissa): to nearest, ties to
# even; a float32 subnormal becomes a zero of its sign (bfloat16 hardware treats them so); a NaN
# stays a NaN. Each product of two bfloat16 is exact in float32, and the sums are in float32, in an
# order each twin chooses (so the twins agree to float32 rounding of the rounded operands). The
# parameters, the bias, the activations, the loss and the optimizer stay float32: only the
# products' operands are rounded, as PyTorch's autocast and Keras' "mixed_bfloat16" do.


def check_bfloat16(bfloat16, dtype) -> None:
    """bfloat16: a bool, True only for float32 (a float64 model keeps its float64 products)."""
    if not isinstance(bfloat16, (bool, np.bool_)):
        raise ValueError(f"bfloat16 must be a bool, got {bfloat16!r}")
    if bfloat16 and np.dtype(dtype) != np.float32:
        raise ValueError(f"bfloat16 products need float32 parameters, got {np.dtype(dtype).name}")


def check_rounding(a, out) -> None:
    """round_bfloat16's checks: a and out (n,) float32, C-contiguous, out writeable."""
    _check_array("a", a, 1, np.float32)
    _check_array("out", out, 1, np.float32)
    same_shape("out", out, a.shape)
    if not (a.flags.c_contiguous and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("a and out must be C-contiguous, and out writeable")


def check_threads(threads) -> None:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= 64:
        raise ValueError(f"threads must be an int from 1 to 64, got {threads!r}")


# ----------------------------------------------------------------------------- epoch orders
# scikit-learn shuffles the rows before every epoch with a legacy RandomState (MT19937):
# shuffle_orders draws the same permutations from the generator's state, so fastnn.sklearn's
# epochs see scikit-learn's row orders.

MT19937_WORDS = 624  # the words of MT19937's state, RandomState.get_state()[1]


def check_shuffles(key, pos, sample_idx, order) -> None:
    """shuffle_orders' checks: key (624,) uint32 and pos an int in [0, 624], an MT19937 state as
    RandomState.get_state() gives it; sample_idx (n,) int64, n < 2^32; order (count, n) int64;
    key and order C-contiguous and writeable, order apart from sample_idx."""
    _check_array("key", key, 1, np.uint32)
    same_shape("key", key, (MT19937_WORDS,))
    if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)) or not 0 <= pos <= MT19937_WORDS:
        raise ValueError(f"pos must be an int from 0 to {MT19937_WORDS}, got {pos!r}")
    _check_array("sample_idx", sample_idx, 1, np.int64)
    _check_array("order", order, 2, np.int64)
    n = sample_idx.shape[0]
    if n >= 1 << 32:
        raise ValueError(f"sample_idx has {n} elements: the shuffles take fewer than 2**32")
    same_shape("order", order, (order.shape[0], n))
    if not (key.flags.c_contiguous and key.flags.writeable and order.flags.c_contiguous and order.flags.writeable):
        raise ValueError("key and order must be C-contiguous and writeable")
    if np.may_share_memory(order, sample_idx) or np.may_share_memory(order, key):
        raise ValueError("order must not overlap sample_idx or key")


def check_network(sizes, codes) -> tuple[list, list]:
    """(sizes, codes) as lists, checked: (L+1,) int64 widths >= 1 and (L,) int64 activation codes."""
    _check_array("sizes", sizes, 1, np.int64)
    _check_array("codes", codes, 1, np.int64)
    sizes, codes = sizes.tolist(), codes.tolist()
    if len(sizes) != len(codes) + 1 or len(codes) < 1 or min(sizes) < 1:
        raise ValueError(f"sizes {sizes} and codes {codes} do not describe a network")
    for c in codes:
        if c not in _ACTIVATION_CODES:
            raise activation_error(c)
    return sizes, codes


def check_predict(sizes, codes, params, X, out, rows: int, threads, bfloat16=False) -> None:
    """network_predict's checks, shared by both twins."""
    sizes, codes = check_network(sizes, codes)
    dtype = params.dtype if isinstance(params, np.ndarray) else None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"params must be a float32 or float64 array, got {getattr(params, 'dtype', params)!r}")
    _check_array("params", params, 1, dtype)
    same_shape("params", params, (layout(sizes)[1],))
    _check_array("X", X, 2, dtype)
    same_shape("X", X, (X.shape[0], sizes[0]))
    _check_array("out", out, 2, dtype)
    same_shape("out", out, (X.shape[0], sizes[-1]))
    if not (X.flags.c_contiguous and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("X and out must be C-contiguous, and out writeable")
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows must be an int >= 1, got {rows!r}")
    check_threads(threads)
    check_bfloat16(bfloat16, dtype)


# ----------------------------------------------------------------------------- train_epochs' arguments

@dataclass(kw_only=True)
class Update:
    """The optimizer step after each batch; its state arrays ((n_params,), the run's dtype) are
    updated in place. At step t (1 for the first update), in this order:

    1. the learning rate: lr, or the schedule `schedule` (a code of SCHEDULES, its numbers in
       schedule_args) at it = t - 1;
    2. gradient clipping, at most one of: clipvalue > 0, each g to [-clipvalue, clipvalue];
       clipnorm > 0, each layer's W and b gradient (separately, Keras' clipnorm) scaled by
       clipnorm / norm where its norm exceeds clipnorm; global_clipnorm > 0, the same over all of g
       at once (norms summed in float64);
    3. the step, g the clipped gradient:
       SGD: param -= lr g. MOMENTUM (Keras' and scikit-learn's form): velocity = momentum velocity - lr g;
       param += velocity. NESTEROV: the same velocity, param += momentum velocity - lr g.
       ADAM (Kingma & Ba's efficient form, as Keras and scikit-learn write it):
       m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g²; param -= lr sqrt(1-beta2^t)/(1-beta1^t) m/(sqrt(v)+eps).
       ADAMW: param -= lr weight_decay param (decoupled weight decay, on every parameter, as Keras
       and PyTorch do), then ADAM.
       RMSPROP (Keras' form): v = rho v + (1-rho) g²; step = lr g / sqrt(v + eps); with momentum > 0,
       velocity = momentum velocity + step, param -= velocity; else param -= step.
    The state's subnormal values (below the dtype's smallest normal number, in magnitude) become 0
    as they are written: the state of a unit that stopped learning decays geometrically, and every
    operation on a subnormal takes a slow path on many CPUs (XLA flushes them on the CPU too).
    """
    optimizer: int
    lr: float
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    rho: float = 0.9
    weight_decay: float = 0.0
    clipvalue: float = 0.0
    clipnorm: float = 0.0
    global_clipnorm: float = 0.0
    schedule: int = CONSTANT
    schedule_args: Optional[np.ndarray] = None  # (k,) float64, SCHEDULES[schedule]; None for CONSTANT
    velocity: Optional[np.ndarray] = None  # MOMENTUM, NESTEROV, RMSPROP with momentum > 0
    m: Optional[np.ndarray] = None         # ADAM, ADAMW
    v: Optional[np.ndarray] = None         # ADAM, ADAMW, RMSPROP


@dataclass(kw_only=True)
class TrainingRun:
    """What train_epochs needs that stays the same from one call to the next of a fit.

    The network: sizes (L+1,) int64 layer widths; codes (L,) int64 activation codes, the output's
    LINEAR when the loss takes logits (LOSSES[loss].fused); params, grads (n_params,) flat buffers,
    W then b per layer (`layout`), of one dtype, float32 or float64.
    The data: X (n, sizes[0]); Y (n, sizes[-1]) targets, or for the sparse loss labels (n,) int64
    class labels (and Y None); sample_weight (n,) row weights, or None.
    loss: a loss code; batch: rows per batch (>= 1; the last batch of an epoch may be shorter).
    update: the optimizer step after each batch, or None to update nothing: the run then leaves
    the gradient of its last batch in grads (a full-batch call is a loss-and-gradient evaluation).

    stop: a (1,) int8 array, or None: another thread sets stop[0] to 1 to end the run after the
    batch it is in (fit_parallel on Ctrl-C). A signal (Ctrl-C in the main thread) does the same.

    metrics: (k,) int64 codes of METRICS, or None; their per-epoch sums go to train_epochs'
    epoch_metrics (epochs, k). top_k: the k of the top-k accuracies.

    dropout: (L,) float64 rates in [0, 1), or None: each batch, every element of layer l's input
    (the data for l = 0, layer l-1's output after it) is kept with probability 1 - rate and then
    multiplied by 1 / (1 - rate) (inverted dropout; the factor in the run's dtype), or set to 0;
    the backward pass goes through the same mask. Whether element e (row-major in the batch) of
    layer l's input is kept at step t (the update the batch precedes, 1-based; for a run without
    updates, step + 1 throughout) is keep_bits(mask_base(dropout_seed, t, l), e) >=
    keep_threshold(rate).

    penalties: (L, 2) float64 (l1, l2) per layer, or None: Keras' kernel regularizers, adding
    l1 sum|W| + l2 sum W² to each batch's loss and l1 sign(W) + 2 l2 W to W's gradient.

    bfloat16: the dense layers' products take bfloat16 operands (see check_bfloat16); float32 only.

    threads: how many threads may share each step (>= 1). The compiled twin shares the steps of
    large networks among that many (its "pool" path, step_path); reruns with the same count give
    the same results bit for bit, other counts the same to rounding. The NumPy twin runs on one.

    count_correct: whether train_epochs counts the correct predictions of a classification loss
    into epoch_correct; False leaves it 0 (scikit-learn's estimators report no accuracy, and the
    arg-max of every row costs a few per cent of a small network's step).

    Two options change the loss of each batch, both documented here once:
    - loss_scale: the batch's loss and its gradient are multiplied by it (to put a loss in another
      library's units: scikit-learn sums its binary loss over the outputs where fastnn averages);
    - l2: the penalty l2/2 * sum(W²) / sum(the batch's row weights) on the weights (not the biases)
      is added to each batch's loss, and its gradient to the weights' (scikit-learn's alpha).
    """
    sizes: np.ndarray
    codes: np.ndarray
    params: np.ndarray
    grads: np.ndarray
    loss: int
    X: np.ndarray
    Y: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    sample_weight: Optional[np.ndarray] = None
    batch: int
    update: Optional[Update] = None
    l2: float = 0.0
    loss_scale: float = 1.0
    stop: Optional[np.ndarray] = None
    metrics: Optional[np.ndarray] = None
    top_k: int = 5
    dropout: Optional[np.ndarray] = None
    dropout_seed: int = 0
    penalties: Optional[np.ndarray] = None
    threads: int = 1
    bfloat16: bool = False
    count_correct: bool = True


_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


def splitmix64(x: int) -> int:
    """One output of Steele, Lea and Flood's SplitMix64 for state x (uint64 arithmetic)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def lowbias32(x: int) -> int:
    """Chris Wellons' 32-bit integer hash "lowbias32" (uint32 arithmetic): two multiplies, so a
    vector unit computes eight at once."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def mask_base(seed: int, step: int, layer: int) -> int:
    """The 64-bit key of the dropout stream of (seed, step, layer), once per batch and layer."""
    return splitmix64((splitmix64((seed + step) & _MASK64) + layer) & _MASK64)


def keep_bits(base: int, e: int) -> int:
    """The 32 bits that decide element e of the stream keyed by base (mask_base):
    lowbias32(lowbias32((e + low half) mod 2**32) ^ high half)."""
    return lowbias32(lowbias32((e + base) & _MASK32) ^ (base >> 32))


def keep_threshold(rate: float) -> int:
    """The uint32 that keep_bits must reach for an element to be kept: rate * 2**32, rounded down."""
    return min(int(rate * 2.0 ** 32), _MASK32)


# ----------------------------------------------------------------------------- checks and their messages

def shape_error(name: str, a, shape) -> ValueError:
    return ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")


def same_shape(name: str, a, shape) -> None:
    if tuple(a.shape) != tuple(shape):
        raise shape_error(name, a, shape)


def activation_error(code) -> ValueError:
    return ValueError(f"unknown activation code {code!r}")


_ACTIVATION_CODES = frozenset(ACTIVATIONS.values())


def check_activation(code) -> None:
    if code not in _ACTIVATION_CODES:
        raise activation_error(code)


def empty_softmax_error(name: str, a) -> ValueError:
    return ValueError(f"{name} has shape {tuple(a.shape)}: softmax needs at least one column")


def empty_argmax_error(name: str, a) -> ValueError:
    return ValueError(f"{name} has shape {tuple(a.shape)}: argmax needs at least one column")


def empty_mean_error() -> ZeroDivisionError:
    """A loss over no elements has no mean: what `float(loss_sum) / 0` raises in the NumPy twin."""
    return ZeroDivisionError("float division by zero")


def metric_error(code, sparse: bool) -> ValueError:
    return ValueError(f"metric code {code!r} is not one of the {'sparse ' if sparse else ''}metrics "
                      f"{sorted(c for c, m in METRICS.items() if m.sparse == sparse)}")


def label_range_error(n_classes: int) -> ValueError:
    return ValueError(f"labels must lie in [0, {n_classes})")


def order_range_error(n: int) -> ValueError:
    return ValueError(f"order must hold row numbers in [0, {n})")


def step_error(step: int) -> ValueError:
    return ValueError(f"step must be >= 1, got {step}")


def _check_array(name: str, a, dims: int, dtype) -> None:
    if not isinstance(a, np.ndarray) or a.ndim != dims or a.dtype != dtype:
        kind = f"{a.dtype}{a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name} must be a {dims}-d {np.dtype(dtype).name} array, got {kind}")


def check_update(update, dtype, n_params: int, step: int) -> None:
    """An Update for a run of `n_params` parameters of `dtype` after `step` steps: codes, state arrays, clipping, schedule."""
    if not isinstance(update, Update):
        raise TypeError(f"update must be a fastnn._contract.Update or None, got {type(update).__name__}")
    if update.optimizer not in OPTIMIZERS.values():
        raise ValueError(f"unknown optimizer code {update.optimizer!r}")
    state = STATE[update.optimizer]
    if update.optimizer == RMSPROP and update.momentum > 0:
        state = state + ("velocity",)
    for name in state:
        _check_array(f"update.{name}", getattr(update, name), 1, dtype)
        same_shape(f"update.{name}", getattr(update, name), (n_params,))
    if update.optimizer in (ADAM, ADAMW) and step + 1 < 1:  # what the first Adam step would raise
        raise step_error(step + 1)
    clips = [name for name in ("clipvalue", "clipnorm", "global_clipnorm") if getattr(update, name) != 0.0]
    if len(clips) > 1:
        raise ValueError(f"update: at most one of clipvalue, clipnorm and global_clipnorm, got {clips}")
    for name in clips:
        if not getattr(update, name) > 0 or not np.isfinite(getattr(update, name)):
            raise ValueError(f"update.{name} must be a finite number > 0 (or 0: off), got {getattr(update, name)}")
    check_schedule(update)


def check_schedule(update) -> None:
    """The schedule of an Update: a known code, and schedule_args that fit it."""
    if update.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule code {update.schedule!r}")
    if update.schedule == CONSTANT:
        if update.schedule_args is not None:
            raise ValueError("update.schedule_args must be None for a constant learning rate")
        return
    _check_array("update.schedule_args", update.schedule_args, 1, np.float64)
    k = update.schedule_args.shape[0]
    fits = k % 2 == 1 if update.schedule == PIECEWISE else k == len(SCHEDULES[update.schedule])
    if not fits:
        raise ValueError(f"update.schedule_args has {k} numbers, which do not fit schedule {update.schedule}")


def check_run(run: TrainingRun, order, step: int, epoch_loss, epoch_correct, epoch_metrics,
              check_values: bool = True) -> int:
    """train_epochs' checks of its arguments, shared by both twins; returns the number of epochs.
    The compiled twin checks the values of labels and order itself (check_values=False), with
    label_range_error and order_range_error: its loops are cheaper than NumPy reductions for a
    small epoch."""
    _check_array("epoch_loss", epoch_loss, 1, np.float64)
    epochs = epoch_loss.shape[0]
    if not isinstance(run, TrainingRun):
        raise TypeError(f"run must be a fastnn._contract.TrainingRun, got {type(run).__name__}")
    sizes, codes = check_network(run.sizes, run.codes)
    if run.loss not in LOSSES:
        raise ValueError(f"unknown loss code {run.loss!r}")
    dtype = run.params.dtype if isinstance(run.params, np.ndarray) else None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"params must be a float32 or float64 array, got {getattr(run.params, 'dtype', run.params)!r}")
    _check_array("X", run.X, 2, dtype)
    n = run.X.shape[0]
    if n < 1 or run.batch < 1:
        raise ValueError(f"need n >= 1 rows and batch >= 1, got n={n}, batch={run.batch}")
    same_shape("X", run.X, (n, sizes[0]))
    sparse = run.loss == SPARSE_CATEGORICAL_CROSSENTROPY
    if sparse:
        if run.Y is not None:
            raise ValueError("Y must be None for the sparse loss, whose targets are labels")
        _check_array("labels", run.labels, 1, np.int64)
        same_shape("labels", run.labels, (n,))
        if check_values and (np.min(run.labels) < 0 or np.max(run.labels) >= sizes[-1]):
            raise label_range_error(sizes[-1])
    else:
        if run.labels is not None:
            raise ValueError("labels must be None: only the sparse loss takes class labels")
        _check_array("Y", run.Y, 2, dtype)
        same_shape("Y", run.Y, (n, sizes[-1]))
    if run.sample_weight is not None:
        _check_array("sample_weight", run.sample_weight, 1, dtype)
        same_shape("sample_weight", run.sample_weight, (n,))
    if order is not None:
        _check_array("order", order, 2, np.int64)
        same_shape("order", order, (epochs, n))
        if check_values and (np.min(order) < 0 or np.max(order) >= n):
            raise order_range_error(n)
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    _check_array("params", run.params, 1, dtype)
    same_shape("params", run.params, (n_params,))
    _check_array("grads", run.grads, 1, dtype)
    same_shape("grads", run.grads, (n_params,))
    if run.update is not None:
        check_update(run.update, dtype, n_params, step)
    if run.stop is not None:
        _check_array("stop", run.stop, 1, np.int8)
        same_shape("stop", run.stop, (1,))
    k = 0
    if run.metrics is not None:
        _check_array("metrics", run.metrics, 1, np.int64)
        k = run.metrics.shape[0]
        for code in run.metrics.tolist():
            if code not in METRICS:
                raise ValueError(f"unknown metric code {code!r}")
            if METRICS[code].sparse != sparse:
                raise ValueError(f"metric {METRICS[code].name} takes {'labels' if METRICS[code].sparse else 'targets Y'}, "
                                 f"which this run does not have")
    if isinstance(run.top_k, bool) or not isinstance(run.top_k, (int, np.integer)) or run.top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {run.top_k!r}")
    L = len(codes)
    if run.dropout is not None:
        _check_array("dropout", run.dropout, 1, np.float64)
        same_shape("dropout", run.dropout, (L,))
        if not np.all((run.dropout >= 0) & (run.dropout < 1)):
            raise ValueError(f"dropout rates must lie in [0, 1), got {run.dropout.tolist()}")
    if (isinstance(run.dropout_seed, bool) or not isinstance(run.dropout_seed, (int, np.integer))
            or not 0 <= run.dropout_seed <= _MASK64):
        raise ValueError(f"dropout_seed must be an int in [0, 2**64), got {run.dropout_seed!r}")
    if run.penalties is not None:
        _check_array("penalties", run.penalties, 2, np.float64)
        same_shape("penalties", run.penalties, (L, 2))
        if not np.all(np.isfinite(run.penalties) & (run.penalties >= 0)):
            raise ValueError(f"penalties must be finite and >= 0, got {run.penalties.tolist()}")
    check_threads(run.threads)
    check_bfloat16(run.bfloat16, dtype)
    if not isinstance(run.count_correct, (bool, np.bool_)):
        raise TypeError(f"count_correct must be True or False, got {run.count_correct!r}")
    _check_array("epoch_correct", epoch_correct, 1, np.int64)
    same_shape("epoch_correct", epoch_correct, (epochs,))
    _check_array("epoch_metrics", epoch_metrics, 2, np.float64)
    same_shape("epoch_metrics", epoch_metrics, (epochs, k))
    return epochs
