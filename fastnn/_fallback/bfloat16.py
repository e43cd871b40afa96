"""float32 rounded to bfloat16 in NumPy, as the contract defines it (fastnn._contract, "bfloat16
products"); the compiled twin's is fastnn/_compiled/bf16.h."""
import numpy as np

from .._contract import check_rounding

_QUIET = np.uint32(0x00400000)  # the quiet bit of a float32 NaN, which bfloat16 keeps


def round_bfloat16(a, out):
    """out = a rounded to bfloat16 (and widened back to float32). a, out: (n,) float32; out may be a."""
    check_rounding(a, out)
    np.copyto(out, rounded(a))


def rounded(a: np.ndarray) -> np.ndarray:
    """A new float32 array: a (float32) rounded to bfloat16 and widened back, to nearest, ties to
    even; subnormals to a zero of their sign; NaN stays NaN (quiet)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    exponent = bits & np.uint32(0x7F800000)
    nan = (exponent == np.uint32(0x7F800000)) & ((bits & np.uint32(0x007FFFFF)) != 0)
    # adding 0x7FFF plus the lowest kept bit carries into the kept bits exactly when the dropped
    # half is above a tie, or a tie with an odd kept part (and rounds the largest finite up to inf)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) & np.uint32(0xFFFF0000)
    rounded = np.where(nan, (bits | _QUIET) & np.uint32(0xFFFF0000), rounded)
    rounded = np.where(exponent == 0, bits & np.uint32(0x80000000), rounded)
    return rounded.view(np.float32)
