"""Input checks for the public API, in one place.

The compiled kernels trust their inputs, so everything a user passes is checked here first and
converted once per call (never per batch) to a C-contiguous array of the model's dtype.
Messages name the argument and say what was expected.
"""
import math
import numbers
from typing import Optional

import numpy as np

DTYPES = ("float32", "float64")


def check_dtype(dtype) -> np.dtype:
    """float32 or float64 in the machine's byte order (">f8" names float64 but is not what the
    kernels read: refused)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES or not dt.isnative:
        raise ValueError(f"dtype must be one of {list(DTYPES)} (native byte order), got {dtype!r}")
    return np.dtype(dt.name)


PRECISIONS = (None, "bfloat16")


def check_precision(precision, dtype) -> Optional[str]:
    """The precision of a model's matrix products: None (its dtype's) or "bfloat16" (float32
    models only: bfloat16 operands, float32 sums)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be None or 'bfloat16', got {precision!r}")
    if precision == "bfloat16" and np.dtype(dtype) != np.float32:
        raise ValueError(f"precision='bfloat16' needs dtype='float32' (float32 master weights), got dtype={np.dtype(dtype).name!r}")
    return precision


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(name: str, value, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real number within [low, high] (open ends where asked)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {left}{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}{right}, got {value}")
    return value


def _numeric_array(name: str, data) -> np.ndarray:
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as a numeric array: {exc}") from None
    # issubclass on the scalar type is what np.issubdtype does, without its Python-level overhead.
    if not issubclass(arr.dtype.type, (np.number, np.bool_)):
        raise TypeError(f"{name} must hold numbers (int, float or bool), got dtype {arr.dtype}")
    if issubclass(arr.dtype.type, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


_FINITE_CHUNK = 1 << 18  # elements per np.isfinite pass: a 256 KB boolean temporary, not one the size of the data


def _check_finite(name: str, arr: np.ndarray) -> None:
    # np.isfinite over blocks of rows: faster than a float64 sum of float32 data (which converts
    # every element), without a boolean array as large as the data, and without copying arr
    # whatever its memory order (a block of rows is a view). The bad element is looked for only
    # once a block has one, not by negating every block's mask (a second pass over each block).
    if not issubclass(arr.dtype.type, np.floating):
        return
    rows = max(1, _FINITE_CHUNK // max(1, arr[0].size))
    for start in range(0, arr.shape[0], rows):
        finite = np.isfinite(arr[start:start + rows])
        if not finite.all():
            where = np.unravel_index(int(np.argmin(finite)), finite.shape)
            where = (start + int(where[0]),) + tuple(int(i) for i in where[1:])
            raise ValueError(f"{name} contains NaN or inf (first at index {where}: {arr[where]})")


def as_features(name: str, data, dtype: np.dtype, n_features: int) -> np.ndarray:
    """X-like data -> C-contiguous (n_rows, n_features) array of `dtype`."""
    arr = _numeric_array(name, data)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {n_features}), got shape {arr.shape}")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features (shape {arr.shape}) but the model's first "
                         f"layer expects {n_features}")
    return as_finite(name, arr, dtype)


def as_finite(name: str, arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """arr as a C-contiguous array of `dtype`, checked for NaN and inf after the conversion: 1e39
    is finite in float64 but inf in float32."""
    with np.errstate(over="ignore"):  # an overflowing cast is reported below
        converted = np.ascontiguousarray(arr, dtype=dtype)
    try:
        _check_finite(name, converted)
    except ValueError:
        _check_finite(name, arr)  # NaN or inf in the data itself: say so, with the element
        raise ValueError(f"{name} holds values too large for {np.dtype(dtype).name} (they become inf), "
                         f"e.g. {np.max(np.abs(arr[np.isfinite(arr)]))!r}") from None
    return converted


def as_targets(name: str, data, dtype: np.dtype, n_rows: int, n_outputs: int, sparse: bool,
               domain=None, loss: str = "") -> np.ndarray:
    """y-like data -> (n_rows, n_outputs) array of `dtype`, or (n_rows,) int64 labels when `sparse`.

    A 1-D y is accepted for a one-output model (and for sparse labels). domain: (low, high), the
    values the loss `loss` is defined for (fastnn._contract.LOSSES' targets), or None: any.
    """
    arr = _numeric_array(name, data)
    if arr.ndim == 0:
        raise ValueError(f"{name} must hold one row per sample of X ({n_rows}), got a scalar")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows (shape {arr.shape}) but X has {n_rows}")
    if sparse:
        _check_finite(name, arr)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name} must hold one integer class label per row for "
                             f"sparse_categorical_crossentropy, got shape {arr.shape}")
        if issubclass(arr.dtype.type, np.floating) and not np.array_equal(np.floor(arr), arr):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
        if arr.min() < 0 or arr.max() >= n_outputs:  # before the cast, which would wrap a huge label
            bad = int(np.flatnonzero((arr < 0) | (arr >= n_outputs))[0])
            raise ValueError(f"{name} labels must lie in [0, {n_outputs}) for a {n_outputs}-unit output "
                             f"layer; row {bad} has {arr[bad]}")
        # int64 labels are used as given (the kernels only read them)
        return np.ascontiguousarray(arr.astype(np.int64, copy=False))
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        raise ValueError(f"{name} must have shape ({n_rows}, {n_outputs}) to match the output layer, got "
                         f"shape {arr.shape}")
    targets = as_finite(name, arr, dtype)
    if domain is not None:
        low, high = domain
        outside = (targets < low) | (targets > high)
        if outside.any():
            where = tuple(int(i) for i in np.argwhere(outside)[0])
            raise ValueError(f"{name} must lie in [{low}, {high}] for {loss}; {name}[{where}] is {targets[where]}")
    return targets


def as_weights(name: str, value, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A weight array for a parameter of `shape`: real numbers, finite once in `dtype`.
    ValueError for a wrong shape or values that are not finite; TypeError for non-real ones."""
    arr = _numeric_array(name, value)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    try:
        return as_finite(name, arr, dtype)
    except ValueError as exc:
        raise ValueError(f"{name} must hold finite numbers in {np.dtype(dtype).name}: {exc}") from None


def as_sample_weight(name: str, value, dtype: np.dtype, n_rows: int) -> np.ndarray:
    """Row weights (n_rows,) of `dtype`: finite, >= 0, not all 0."""
    arr = _numeric_array(name, value)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n_rows,):
        raise ValueError(f"{name} must hold one weight per row of X, shape ({n_rows},), got shape {arr.shape}")
    weights = as_finite(name, arr, dtype)
    if (weights < 0).any():
        raise ValueError(f"{name} must be >= 0; row {int(np.argmax(weights < 0))} has {weights[weights < 0][0]}")
    if not weights.any():
        raise ValueError(f"{name} is 0 for every row: nothing to learn from")
    return weights


def class_weights(name: str, class_weight, classes: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """Row weights (n,) of `dtype` from {class: weight} and each row's class (n,) in [0, n_classes);
    a class the dict leaves out weighs 1. Keys must be classes, values finite and >= 0."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{name} must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    lookup = np.ones(n_classes, dtype)
    for key, weight in class_weight.items():
        if (isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral)
                or not 0 <= key < n_classes):
            raise ValueError(f"{name} keys must be the model's classes, ints in [0, {n_classes}), got {key!r}")
        lookup[int(key)] = check_real(f"{name}[{key}]", weight, low=0.0)
    return np.ascontiguousarray(lookup[classes.astype(np.int64)])
