# The AVX2 + FMA paths (microkernels.h, lanes.h, dropout.h) are compiled next to the baseline code
# and used only on CPUs that have them, the micro-kernels at AVX-512's width where the CPU has
# AVX-512 F and DQ and runs it at full width (fastnn_simd512_preferred: Intel's, and AMD's from Zen 5). FASTNN_SIMD in the
# environment picks: 0 the portable paths, avx2 no AVX-512, avx512 AVX-512 wherever the CPU has
# it; _set_simd and _set_wide switch them for tests.

cdef extern from "microkernels.h" nogil:
    bint fastnn_simd_available()
    bint fastnn_simd512_available()
    bint fastnn_simd512_preferred()
    unsigned fastnn_cpu_features()
    const char* FASTNN_FEATURE_NAMES

_SIMD_SETTING = os.environ.get("FASTNN_SIMD", "").strip().lower()
cdef bint _simd = fastnn_simd_available() and _SIMD_SETTING != "0"
cdef bint _wide = (fastnn_simd512_available() if _SIMD_SETTING == "avx512" else
                   fastnn_simd512_preferred() and _SIMD_SETTING not in ("0", "avx2"))


def _wide_available() -> bool:
    """Whether this CPU runs the micro-kernels' AVX-512 versions (and this build has them)."""
    return bool(fastnn_simd512_available())


def _set_wide(bint on):
    """Use the AVX-512 micro-kernels (when available and SIMD is on) or the AVX2 ones; returns the
    previous setting. For tests and benchmarks."""
    global _wide
    previous = _wide
    _wide = on and fastnn_simd512_available()
    return previous


def _simd_level() -> str:
    """The vector paths in use: "avx512" (micro-kernels at 64 bytes), "avx2" or "portable"."""
    return "portable" if not _simd else "avx512" if _wide else "avx2"


def _simd_available() -> bool:
    """Whether this CPU runs fastnn's AVX2 + FMA micro-kernels and lanes (and this build has them)."""
    return bool(fastnn_simd_available())


def _set_simd(bint on):
    """Use the micro-kernels and lanes (when available) or not; returns the previous setting. For tests."""
    global _simd
    previous = _simd
    _simd = on and fastnn_simd_available()
    return previous


def _cpu_features() -> dict:
    """{feature: whether this CPU has it} for the features fastnn's dispatch looks at (x86-64;
    all False elsewhere)."""
    cdef unsigned bits = fastnn_cpu_features()
    names = (<bytes>FASTNN_FEATURE_NAMES).decode().split()
    return {name: bool(bits & (1u << i)) for i, name in enumerate(names)}
