# The AVX2 + FMA paths (microkernels.h, lanes.h) are compiled next to the baseline code and used
# only on CPUs that have them; FASTNN_SIMD=0 in the environment turns them off, leaving the
# portable paths, and _set_simd switches them for the tests.

cdef extern from "microkernels.h" nogil:
    bint fastnn_simd_available()

cdef bint _simd = fastnn_simd_available() and os.environ.get("FASTNN_SIMD", "").strip() != "0"


def _simd_available() -> bool:
    """Whether this CPU runs fastnn's AVX2 + FMA micro-kernels and lanes (and this build has them)."""
    return bool(fastnn_simd_available())


def _set_simd(bint on):
    """Use the micro-kernels and lanes (when available) or not; returns the previous setting. For tests."""
    global _simd
    previous = _simd
    _simd = on and fastnn_simd_available()
    return previous
