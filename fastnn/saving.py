"""The model file format: an .npz of plain arrays plus one JSON entry, never a pickle.

The file holds "architecture" (JSON text: format, version, and what the model layer puts in:
dtype, layers, loss, optimizer and its step count, metrics, the generator's state, the epochs
trained) and the arrays: the weights "W0", "b0", "W1", ... and the optimizer's state
"state_m", "state_v", "state_velocity" (those it has). `write` writes it atomically
(fastnn.atomic), so a failed, interrupted or killed save leaves an existing file intact; `read`
checks the format, every array's header against the architecture and the member's size before
it reads anything large, and returns the parts. Building a model from them is fastnn.model.load's
job. Version 1 files (weights only) are read too.
"""
import json
import os
import re
import zipfile
import zlib
from typing import Callable

import numpy as np

try:
    from lzma import LZMAError
except ImportError:  # a Python without liblzma: zipfile refuses lzma members with NotImplementedError
    LZMAError = zipfile.BadZipFile

from .atomic import write_atomically

FORMAT = "fastnn"
VERSION = 2
READS = (1, 2)


def invalid(path, why: str) -> ValueError:
    """The error for a file that is not a complete fastnn model file."""
    return ValueError(f"{path!s} is not a valid fastnn model file: {why}")


def write(path, architecture: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write `architecture` (JSON-able; format and version are added) and the arrays by name
    (W0, b0, ..., state_m, ...)."""
    path = os.fspath(path)
    members = {"architecture": np.array(json.dumps({"format": FORMAT, "version": VERSION, **architecture})), **arrays}
    write_atomically(path, lambda f: np.savez(f, **members))


# Bounds on what a file may make load read: the JSON entry's size, and how far a member may expand
# (np.savez stores its arrays uncompressed; a member that expands a thousandfold is a zip bomb).
MAX_ARCHITECTURE_BYTES = 1 << 20
MAX_EXPANSION = 1000
_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_MEMBER = re.compile(r"(architecture|[Wb](0|[1-9][0-9]{0,5})|state_[a-z]{1,16})\.npy")


# What zipfile and the decompressors raise for a damaged archive: besides BadZipFile, a member that
# claims a newer zip version or another compression method (NotImplementedError), an encrypted one
# (RuntimeError), a corrupt deflate or lzma stream.
_DAMAGED = (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error,
            LZMAError)


def read(path, expected: Callable[[dict], dict]) -> tuple[dict, dict[str, np.ndarray]]:
    """(architecture, {name: array}) from a file `write` wrote. expected(architecture) gives the
    {name: (shape, dtype)} of the arrays it must hold (ValueError or TypeError if the architecture
    is not valid); every array's header is checked against it, and against the member's size,
    before any array is read, so a file is never trusted for what to allocate.
    FileNotFoundError if missing; ValueError (`invalid`) if it is not a fastnn model file of this
    version."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    if not zipfile.is_zipfile(path):
        raise invalid(path, "it is not an .npz archive (a zip file of arrays)")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(path, archive, expected)
    except _DAMAGED as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(f"{path!s} is not a valid"):
            raise
        raise invalid(path, f"could not read it ({type(exc).__name__}: {exc})") from None


def _read(path, archive: zipfile.ZipFile, expected) -> tuple[dict, dict[str, np.ndarray]]:
    members = {}
    for info in archive.infolist():
        if not _MEMBER.fullmatch(info.filename):
            raise invalid(path, f"unexpected member {info.filename!r}")
        if info.file_size > MAX_EXPANSION * info.compress_size + (1 << 20):
            raise invalid(path, f"member {info.filename!r} would expand {info.compress_size} bytes to {info.file_size}")
        members[info.filename[:-4]] = info
    if "architecture" not in members:
        raise invalid(path, "no 'architecture' entry")
    if members["architecture"].file_size > MAX_ARCHITECTURE_BYTES:
        raise invalid(path, f"the architecture entry is over {MAX_ARCHITECTURE_BYTES} bytes")
    with archive.open(members["architecture"]) as f:
        text = np.lib.format.read_array(f, allow_pickle=False)
    try:
        architecture = json.loads(str(text))
    except (ValueError, RecursionError) as exc:
        raise invalid(path, f"the architecture entry is not JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        raise invalid(path, "the architecture entry is not a fastnn one")
    if architecture.get("version") not in READS:
        raise invalid(path, f"format version {architecture.get('version')!r}; this fastnn reads versions {list(READS)}")
    if not isinstance(architecture.get("layers"), list):
        raise invalid(path, "the architecture has no list of layers")
    try:
        shapes = expected(architecture)
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid(path, f"the architecture does not describe a valid model ({exc})") from None
    names = list(shapes)
    for name, (shape, dtype) in shapes.items():
        if name not in members:
            raise invalid(path, f"array {name} is missing")
        with archive.open(members[name]) as f:
            header = _HEADERS.get(np.lib.format.read_magic(f))
            if header is None:
                raise invalid(path, f"array {name} has a .npy format version this fastnn does not read")
            header_shape, fortran, header_dtype = header(f)
            data_at = f.tell()
        if header_shape != tuple(shape) or header_dtype != dtype or fortran:
            raise invalid(path, f"array {name} is {header_dtype}{header_shape}, expected {np.dtype(dtype)}{tuple(shape)}")
        if members[name].file_size != data_at + int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise invalid(path, f"array {name} holds {members[name].file_size - data_at} bytes of data, "
                                f"not what its shape {tuple(shape)} needs")
    extra = sorted(set(members) - {"architecture", *names})
    if extra:
        raise invalid(path, f"arrays {extra} belong to no layer of the architecture")
    arrays = {}
    for name in names:
        with archive.open(members[name]) as f:
            arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    return architecture, arrays
