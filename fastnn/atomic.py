"""write_atomically: a file written whole or not at all, for model files and ONNX exports."""
import os
import tempfile
from typing import BinaryIO, Callable


def write_atomically(path, write: Callable[[BinaryIO], None]) -> None:
    """write(f) into a temporary file beside `path`, then rename it over `path`: a failure at any
    point leaves an existing file untouched (and no temporary file behind)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
