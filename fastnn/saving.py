"""The model file format: an .npz of plain arrays plus one JSON entry, never a pickle.

The file holds "architecture" (JSON text: format, version, and what the model layer puts in:
dtype, layers, loss, optimizer) and the weights "W0", "b0", "W1", ... `write` writes it atomically
(fastnn.atomic), so a failed or interrupted save leaves an existing file intact; `read` checks the
format and returns its parts. Building a model from them is fastnn.model.load's job.
Optimizer state (momentum, Adam moments) is not saved: a loaded model resumes with fresh state.
"""
import json
import os
import zipfile
from typing import Sequence

import numpy as np

from .atomic import write_atomically

FORMAT = "fastnn"
VERSION = 1


def invalid(path, why: str) -> ValueError:
    """The error for a file that is not a complete fastnn model file."""
    return ValueError(f"{path!s} is not a valid fastnn model file: {why}")


def write(path, architecture: dict, weights: Sequence[np.ndarray]) -> None:
    """Write `architecture` (JSON-able; format and version are added) and [W0, b0, W1, b1, ...]."""
    path = os.fspath(path)
    arrays = {"architecture": np.array(json.dumps({"format": FORMAT, "version": VERSION, **architecture}))}
    for i, a in enumerate(weights):
        arrays[f"{'Wb'[i % 2]}{i // 2}"] = a
    write_atomically(path, lambda f: np.savez(f, **arrays))


def read(path) -> tuple[dict, list[np.ndarray]]:
    """(architecture, [W0, b0, W1, b1, ...] for each of its layers) from a file `write` wrote.
    FileNotFoundError if missing; ValueError (`invalid`) if it is not a fastnn model file of this
    version, or an array its architecture names is missing."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise invalid(path, f"could not read it as .npz ({exc})") from None
    if "architecture" not in arrays:
        raise invalid(path, "no 'architecture' entry")
    try:
        architecture = json.loads(str(arrays["architecture"]))
    except ValueError as exc:
        raise invalid(path, f"the architecture entry is not JSON ({exc})") from None
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        raise invalid(path, "the architecture entry is not a fastnn one")
    if architecture.get("version") != VERSION:
        raise invalid(path, f"format version {architecture.get('version')!r}; this fastnn reads version {VERSION}")
    layers = architecture.get("layers")
    if not isinstance(layers, list):
        raise invalid(path, "the architecture has no list of layers")
    weights = []
    for i in range(len(layers)):
        for name in (f"W{i}", f"b{i}"):
            if name not in arrays:
                raise invalid(path, f"array {name} is missing")
            weights.append(arrays[name])
    return architecture, weights
