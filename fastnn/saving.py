"""save / load: a model as an .npz file of plain arrays plus one JSON entry, never a pickle.

The file holds "architecture" (JSON text: format, version, dtype, layers, loss, optimizer) and
"W0", "b0", "W1", ... The write goes to a temporary file in the same folder that replaces the
target only once complete, so a failed or interrupted save leaves an existing file intact.
Optimizer state (momentum, Adam moments) is not saved: a loaded model resumes with fresh state.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastnn"
VERSION = 1


def save(model, path) -> None:
    path = os.fspath(path)
    architecture = {
        "format": FORMAT, "version": VERSION, "dtype": model.dtype.name,
        "layers": [layer.config() for layer in model.layers],
        "loss": model.loss,
        "optimizer": model.optimizer.config() if model.optimizer is not None else None,
    }
    arrays = {"architecture": np.array(json.dumps(architecture))}
    for i, layer in enumerate(model.layers):
        arrays[f"W{i}"] = layer.W
        arrays[f"b{i}"] = layer.b
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path, write) -> None:
    """write(f) into a temporary file beside `path`, then rename it over `path`: a failure at any
    point leaves an existing file untouched (and no temporary file behind)."""
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


def _bad(path, why: str) -> ValueError:
    return ValueError(f"{path!s} is not a valid fastnn model file: {why}")


def load(path):
    """Read a model written by `model.save(path)`. FileNotFoundError if missing; ValueError if the
    file is not a complete fastnn model (wrong format or version, garbage, truncated, bad shapes)."""
    from .layers import Dense
    from .model import Sequential

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise _bad(path, f"could not read it as .npz ({exc})") from None
    if "architecture" not in arrays:
        raise _bad(path, "no 'architecture' entry")
    try:
        arch = json.loads(str(arrays["architecture"]))
    except ValueError as exc:
        raise _bad(path, f"the architecture entry is not JSON ({exc})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise _bad(path, "the architecture entry is not a fastnn one")
    if arch.get("version") != VERSION:
        raise _bad(path, f"format version {arch.get('version')!r}; this fastnn reads version {VERSION}")
    try:
        layers = [Dense(**cfg) for cfg in arch["layers"]]
        model = Sequential(layers, dtype=arch["dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"the architecture does not describe a valid model ({exc})") from None
    weights = []
    for i, layer in enumerate(layers):
        for name, shape in ((f"W{i}", layer.W.shape), (f"b{i}", layer.b.shape)):
            if name not in arrays:
                raise _bad(path, f"array {name} is missing")
            a = arrays[name]
            if a.shape != shape or a.dtype != model.dtype:
                raise _bad(path, f"array {name} is {a.dtype}{a.shape}, expected {model.dtype}{shape}")
            weights.append(a)
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise _bad(path, str(exc)) from None
    if arch.get("loss") is not None:
        from .optimizers import from_config
        try:
            model.compile(arch["loss"], from_config(arch["optimizer"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(path, f"the saved loss/optimizer are invalid ({exc})") from None
    return model
