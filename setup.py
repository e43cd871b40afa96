"""The compiled extension fastnn._kernels and its compiler flags; metadata lives in pyproject.toml.

Environment switches (read at build time):
  FASTNN_REQUIRE_EXTENSION=1  a failed build is an error (CI); otherwise the install completes
                              with the pure-Python backend only.
  FASTNN_NATIVE=1             add -march=native (faster on this CPU, but the build no longer runs
                              on older CPUs: opt-in only).
  FASTNN_CYTHON_DEBUG=1       bounds/wraparound/initialized checks on, for debugging the kernels.
"""
import glob
import os
import sys
import textwrap

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


REQUIRE = _flag("FASTNN_REQUIRE_EXTENSION")


def _warn_without_extension(reason: str, fix: str = "Install a C compiler (gcc) and reinstall") -> None:
    """Say loudly that the install goes on without the compiled kernels, and why.

    pip shows a build's output only when the build fails, and this one succeeds (with the NumPy
    backend only), so the warning also goes to the terminal the install runs in, when there is one."""
    lines = textwrap.wrap(f"fastnn's compiled kernels (fastnn._kernels) were NOT built: {reason}", 76)
    lines += textwrap.wrap("fastnn is installed with its NumPy backend only, which is many times slower. "
                           f"{fix}; FASTNN_REQUIRE_EXTENSION=1 makes this an error.", 76)
    banner = "\n".join(["", "!" * 78, *("! " + line for line in lines), "!" * 78, ""])
    print(banner, file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        return  # already on the terminal
    try:
        fd = os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY)
    except OSError:  # no terminal (CI, a service): stderr and the import-time warning remain
        return
    with os.fdopen(fd, "w") as tty:
        tty.write(banner + "\n")


class OptionalBuildExt(build_ext):
    """Build the extension, or, unless FASTNN_REQUIRE_EXTENSION is set, warn and carry on without it."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing (setuptools raises several kinds)
            self._give_up(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._give_up(exc)

    def _give_up(self, exc):
        if REQUIRE:
            raise
        _warn_without_extension(f"the compile failed ({exc})")


def extensions():
    try:
        import numpy  # noqa: F401  (build requirement; the kernels use typed memoryviews, not the C API)
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE or "build_ext" in sys.argv:  # asked for the extension by name: say what is missing
            raise SystemExit(f"error: building fastnn._kernels needs Cython and NumPy ({exc}): "
                             'pip install "Cython>=3.1,<4" numpy scipy') from None
        _warn_without_extension(f"Cython or NumPy is missing ({exc})",
                                'pip install "Cython>=3.1,<4" numpy, or install without --no-build-isolation')
        return []
    from setuptools import Extension

    debug = _flag("FASTNN_CYTHON_DEBUG")
    # -fno-math-errno: sqrt becomes one instruction that vectorises (the Adam step's loop); results
    # are unchanged, unlike -ffast-math.
    compile_args = ["-O3", "-fno-math-errno"] if not debug else ["-O0", "-g"]
    if _flag("FASTNN_NATIVE"):
        compile_args.append("-march=native")
    # libm linked explicitly: unversioned exp/log references bind at run time to glibc's oldest
    # versions, the errno-setting wrappers; linked, they bind to the current ones (GLIBC_2.29).
    libm = [] if sys.platform in ("win32", "darwin") else ["m"]
    # The families that _kernels.pyx includes and the C headers the generated C includes: listed so
    # that editing one rebuilds.
    family = sorted(glob.glob("fastnn/_compiled/*.pxi") + glob.glob("fastnn/_compiled/*.h"))
    ext = Extension("fastnn._kernels", ["fastnn/_kernels.pyx"], extra_compile_args=compile_args,
                    libraries=libm, depends=family, include_dirs=["fastnn/_compiled"],
                    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    directives = {"language_level": 3, "boundscheck": debug, "wraparound": debug,
                  "initializedcheck": debug, "cdivision": True, "embedsignature": True}
    # cythonize regenerates the C only when the .pyx is newer, not when the directives change:
    # `build_ext --force` must regenerate it too, or FASTNN_CYTHON_DEBUG=1 would not take effect.
    force = "--force" in sys.argv or "-f" in sys.argv
    try:
        return cythonize([ext], compiler_directives=directives, force=force)
    except Exception as exc:  # a Cython compile error in the .pyx
        if REQUIRE:
            raise
        _warn_without_extension(f"Cython could not translate the kernels ({exc})",
                                'Check that Cython is 3.1 or newer (pip install "Cython>=3.1,<4")')
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
