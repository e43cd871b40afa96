"""fnn.show_config(): what fastnn found on this machine and which of its paths it uses."""
import platform
import sys
from typing import Optional, TextIO

from . import backend
from .threads import blas_libraries, get_num_threads, pool_threads


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def config() -> dict:
    """What show_config prints, as a dict: the CPU, its features, the backend, the vector paths, how
    bfloat16 products are computed, the threads, and the BLAS libraries loaded."""
    compiled = backend.kernels("cython") if "cython" in backend.available_backends() else None
    result = {"python": platform.python_version(), "cpu": _cpu_model(), "backend": backend.get_backend(),
              "compiled backend built": compiled is not None}
    if compiled is not None:
        result["cpu features"] = compiled._cpu_features()
        result["vector paths"] = compiled._simd_level()  # micro-kernels: avx512, avx2 or portable
        # precision="bfloat16": AVX512-BF16's dot products, or rounding then float32 products (no
        # AMX path yet: see docs/bfloat16.md)
        result["bfloat16 products"] = compiled._bf16_path()
    result["threads"] = get_num_threads()
    result["pool"] = f"{pool_threads()} threads" if pool_threads() > 1 else "off (BLAS's threads for the products)"
    result["blas"] = [f"{lib.internal_api} {lib.version} ({getattr(lib, 'architecture', '?')}), "
                      f"{lib.num_threads} threads, {lib.filepath}" for lib in blas_libraries()]
    return result


def show_config(file: Optional[TextIO] = None) -> None:
    """Print what fastnn found on this machine (CPU and its features, BLAS) and what it uses
    (backend, vector paths, threads): the first thing to paste into a report of a speed figure."""
    file = sys.stdout if file is None else file
    for key, value in config().items():
        if isinstance(value, dict):
            value = ", ".join(f"{name}{'' if on else ' (no)'}" for name, on in value.items())
        elif isinstance(value, list):
            value = "\n  ".join([""] + value) if value else "none found"
        print(f"{key}: {value}", file=file)
