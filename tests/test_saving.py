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
        assert set(f.files) == {"architecture", "W0", "b0", "W1", "b1"}
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
