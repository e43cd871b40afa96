"""save / load: round trips, atomic writes, and clear errors for anything that is not a model file."""
import json
import zipfile

import numpy as np
import pytest

import fastnn as fnn


def trained_model():
    X, y = fnn.data.moons(60, seed=0)
    model = fnn.Sequential([fnn.Dense(2, 5, activation="relu"), fnn.Dense(5, 2, activation="softmax")],
                           seed=0, dtype="float32")
    model.compile("sparse_categorical_crossentropy", fnn.Adam(lr=0.01))
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    return model, X, y


def test_round_trip(backend, tmp_path):
    model, X, y = trained_model()
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fnn.load(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.float32
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert loaded.loss == model.loss and repr(loaded.optimizer) == repr(model.optimizer)
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    assert [l.activation for l in loaded.layers] == ["relu", "softmax"]


def test_file_has_no_pickles(tmp_path):
    model, _, _ = trained_model()
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:  # would raise on an object array
        assert set(f.files) == {"architecture", "W0", "b0", "W1", "b1", "state_m", "state_v"}  # Adam's moments
        assert json.loads(str(f["architecture"]))["format"] == "fastnn"


def test_failed_save_keeps_existing_file(tmp_path, monkeypatch):
    model, _, _ = trained_model()
    path = tmp_path / "model.npz"
    model.save(path)
    original = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fnn.load(tmp_path / "nope.npz")


def test_garbage_and_truncated_files(tmp_path):
    model, _, _ = trained_model()
    good = tmp_path / "good.npz"
    model.save(good)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model at all")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (garbage, truncated):
        with pytest.raises(ValueError, match="not a valid fastnn model file"):
            fnn.load(path)


def rewrite(src, dst, change):
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(dst, **arrays)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(architecture=np.array(json.dumps({**json.loads(str(a["architecture"])), "version": 99}))),
     "version 99"),
    (lambda a: a.update(W1=np.zeros((3, 3), np.float32)), "W1"),
    (lambda a: a.update(b0=a["b0"].astype(np.float64)), "b0"),
    (lambda a: a.pop("W0"), "W0 is missing"),
    (lambda a: a.update(architecture=np.array("{not json")), "not JSON"),
    (lambda a: a.update(W0=np.full_like(a["W0"], np.nan)), "finite"),
])
def test_bad_contents(tmp_path, change, message):
    model, _, _ = trained_model()
    model.save(tmp_path / "good.npz")
    rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=message):
        fnn.load(tmp_path / "bad.npz")


def test_pickled_entry_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, architecture=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError):
        fnn.load(path)
    assert zipfile.is_zipfile(path)


# ----------------------------------------------------------------------------- crafted files

def crafted(path, architecture=None, arrays=None, compressed=False):
    """An .npz with the given architecture (dict, or raw text) and arrays."""
    members = dict(arrays or {})
    if architecture is not None:
        text = architecture if isinstance(architecture, str) else json.dumps(architecture)
        members["architecture"] = np.array(text)
    (np.savez_compressed if compressed else np.savez)(path, **members)
    return path


def with_central_directory_field(path, offset, value: bytes):
    """Overwrite a field (at `offset` in each central-directory record) of the valid model file at path:
    6 = the zip version needed to extract, 8 = the flag bits, 10 = the compression method."""
    data = bytearray(crafted(path, small_architecture(), SMALL_ARRAYS).read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        data[at + offset:at + offset + len(value)] = value
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def small_architecture(**changes):
    return {"format": "fastnn", "version": 1, "dtype": "float32", "loss": None, "optimizer": None,
            "layers": [{"n_in": 2, "n_out": 3, "activation": "relu", "init": "he_uniform"}], **changes}


SMALL_ARRAYS = {"W0": np.zeros((2, 3), np.float32), "b0": np.zeros(3, np.float32)}

LOAD_CHILD = """
import resource, sys, time
import fastnn as fnn
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    fnn.load(sys.argv[1])
    outcome = "loaded"
except ValueError as exc:
    outcome = "refused: " + str(exc)
print(outcome)
print(time.perf_counter() - started)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def load_in_a_subprocess(path):
    """(outcome, seconds, peak memory growth in bytes) of fnn.load(path) in a fresh process."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(path)], capture_output=True, text=True,
                         timeout=120, check=True, cwd=path.parent).stdout.splitlines()  # not in the checkout
    return out[0], float(out[1]), int(out[2])


@pytest.mark.parametrize("case", ["huge-layer", "bomb-member", "huge-header"])
def test_crafted_files_are_refused_without_allocating_what_they_claim(tmp_path, case):
    """A 2 KB file whose architecture claims a layer of 150 M units; a small compressed member of
    200 M zeros besides a valid model; an array header that claims 10^12 elements: refused before
    anything of that size is allocated (peak memory measured in a subprocess)."""
    path = tmp_path / "crafted.npz"
    if case == "huge-layer":
        crafted(path, small_architecture(layers=[{"n_in": 2, "n_out": 150_000_000, "activation": "relu"}]),
                SMALL_ARRAYS)
        message = "W0 is float32"
    elif case == "bomb-member":
        crafted(path, small_architecture(), {**SMALL_ARRAYS, "junk": np.zeros(200_000_000, np.uint8)},
                compressed=True)
        message = "unexpected member 'junk.npy'"
    else:
        crafted(path, small_architecture(), SMALL_ARRAYS)
        with zipfile.ZipFile(path) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
        header = members["W0.npy"]
        members["W0.npy"] = header.replace(b"(2, 3)", b"(1000000, 1000000)")
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        message = "W0"
    outcome, seconds, growth = load_in_a_subprocess(path)
    assert outcome.startswith("refused") and message in outcome, outcome
    assert growth < 64 * 2 ** 20, f"load grew the process by {growth / 2 ** 20:.0f} MiB"


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("a text file, not a model"), "not an .npz archive"),
    (lambda p: np.save(p, np.zeros(3)) or p.with_suffix(".npz.npy").rename(p), "not an .npz archive"),
    (lambda p: crafted(p, small_architecture(), {**SMALL_ARRAYS, "extra": np.zeros(2)}), "unexpected member"),
    (lambda p: crafted(p, small_architecture(), {**SMALL_ARRAYS, "W1": np.zeros((3, 3), np.float32)}),
     "belong to no layer"),
    (lambda p: crafted(p, "[" * 100_000 + "]" * 100_000, SMALL_ARRAYS), "not JSON"),
    (lambda p: crafted(p, json.dumps(small_architecture()) + " " * (1 << 21), SMALL_ARRAYS), "over"),
    (lambda p: crafted(p, small_architecture(layers="dense"), SMALL_ARRAYS), "no list of layers"),
    (lambda p: crafted(p, small_architecture(dtype=">f8"), SMALL_ARRAYS), "valid model"),
    (lambda p: with_central_directory_field(p, 6, (64).to_bytes(2, "little")), "zip file version 6.4"),
    (lambda p: with_central_directory_field(p, 8, (1).to_bytes(2, "little")), "encrypted"),
    (lambda p: with_central_directory_field(p, 10, (99).to_bytes(2, "little")), "compression method"),
    (lambda p: with_central_directory_field(p, 10, (8).to_bytes(2, "little")), "could not read it"),
])
def test_malformed_files_get_a_clear_valueerror(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
        fnn.load(path)
    assert message in str(info.value)
