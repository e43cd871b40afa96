"""fastnn: a small neural-network framework whose hot paths are compiled Cython kernels."""
from .backend import available_backends, get_backend, set_backend, use_backend

__version__ = "0.1.0"
__all__ = ["available_backends", "get_backend", "set_backend", "use_backend"]
