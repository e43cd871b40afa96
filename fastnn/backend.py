"""Which kernel module does the arithmetic: the compiled `_kernels` or its pure-Python twin `_fallback`.

Chosen once at import from FASTNN_BACKEND (`cython` or `python`; default: cython when it was
built). The choice is process-wide: `set_backend` switches it, `use_backend` switches it for a
`with` block. The model layer reaches the kernels only through `ops()`.
"""
import contextlib
import importlib
import os
import warnings
from types import ModuleType
from typing import Iterator

from . import _fallback

BACKENDS = ("cython", "python")

try:
    _kernels = importlib.import_module("fastnn._kernels")
    _IMPORT_ERROR = None
except ImportError as exc:  # not built: no compiler, or a failed build
    _kernels = None
    _IMPORT_ERROR = exc
    if os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")):
        # `python -m fastnn` or `python` started in a checkout imports the source folder, which has
        # no extension in it, instead of the installed package.
        _IMPORT_ERROR = ImportError(f"{exc}; this is fastnn's source folder ({os.path.dirname(__file__)}): "
                                    "run from another directory, use the `fastnn` command, or build in place "
                                    "with `python setup.py build_ext --inplace`")

_MODULES = {"cython": _kernels, "python": _fallback}


def _check_name(name) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {name!r}")
    if _MODULES[name] is None:
        raise ImportError(
            f"the compiled backend fastnn._kernels is not available ({_IMPORT_ERROR}); reinstall with a "
            "C compiler (`pip install .`, FASTNN_REQUIRE_EXTENSION=1 to see the build error) or use "
            "backend 'python'")
    return name


def _initial() -> str:
    requested = os.environ.get("FASTNN_BACKEND", "").strip().lower()
    required = os.environ.get("FASTNN_REQUIRE_EXTENSION", "").strip().lower() in {"1", "true", "yes", "on"}
    if required and _kernels is None:
        _check_name("cython")  # raises the ImportError that says what to do
    if requested:
        return _check_name(requested)
    if _kernels is None:
        warnings.warn(f"fastnn: the compiled backend is unavailable ({_IMPORT_ERROR}); using the slower "
                      "pure-Python backend", RuntimeWarning, stacklevel=3)
        return "python"
    return "cython"


_current = _initial()


def get_backend() -> str:
    """The active backend's name: "cython" or "python"."""
    return _current


def set_backend(name: str) -> None:
    """Make `name` ("cython" or "python") the active backend for the whole process."""
    global _current
    _current = _check_name(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a `with` block on backend `name`, then restore the previous one."""
    previous = _current
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def available_backends() -> list[str]:
    """The backends that can be selected here."""
    return [name for name in BACKENDS if _MODULES[name] is not None]


def kernels(name: str) -> ModuleType:
    """The kernel module of backend `name` ("cython" or "python"), whichever is active; ImportError
    when it is not available."""
    return _MODULES[_check_name(name)]


def ops() -> ModuleType:
    """The active kernel module (fastnn._kernels or fastnn._fallback)."""
    return _MODULES[_current]
