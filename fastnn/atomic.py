"""write_atomically: a file written whole or not at all, for model files and ONNX exports."""
import os
import stat
import tempfile
from typing import BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path, write: Callable[[BinaryIO], None]) -> None:
    """write(f) into a temporary file beside `path`, then rename it over `path`: a failure at any
    point leaves an existing file untouched (and no temporary file behind). A symbolic link is
    written through (its target is replaced, the link stays); the file keeps the mode of the file
    it replaces, and a new one gets the umask's, as open() would give it."""
    path = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
