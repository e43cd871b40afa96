"""Resumable training: save holds what a fit needs to go on (optimizer state and step count, the
generator's state, the epochs trained, the compile configuration), so that training 10 epochs, or
5, saving, loading in a new process and training 5 more, gives the same weights bit for bit; and
a process killed with SIGKILL at any moment of a fit with ModelCheckpoint leaves a checkpoint that
loads and resumes to the weights of a run that was never killed."""
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn as fnn

# The training script the tests run in subprocesses: `train` fits from scratch, `resume` from the
# checkpoint; both write the final weights to final.npz. Dropout, AdamW with a cosine schedule,
# class weights, validation_split and metrics: everything whose state a resume must carry.
SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import fastnn as fnn

    mode, folder, backend = sys.argv[1], sys.argv[2], sys.argv[3]
    epochs, width, n = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    fnn.set_backend(backend)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 8))
    y = (X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n) > 0).astype(float)
    checkpoint = folder + "/ckpt.keras"
    if mode == "train":
        model = fnn.Sequential([fnn.Dense(width, activation="relu"), fnn.Dropout(0.2), fnn.Dense(width, "tanh"),
                                fnn.Dense(1, activation="sigmoid")], seed=1, dtype="float64")
        schedule = fnn.optimizers.schedules.CosineDecay(1e-3, decay_steps=200, warmup_target=1e-2, warmup_steps=20)
        model.compile("binary_crossentropy", fnn.AdamW(learning_rate=schedule, weight_decay=1e-3, clipnorm=1.0),
                      metrics=["accuracy", "mae"])
    else:
        model = fnn.load(checkpoint)

    def announce(epoch, logs):
        print("epoch", epoch, flush=True)

    if model.epochs_trained < epochs:  # a checkpoint of the last epoch (killed before the exit): trained
        model.fit(X, y, epochs=epochs, initial_epoch=model.epochs_trained, batch_size=32, validation_split=0.2,
                  class_weight={0: 1.0, 1: 2.0}, verbose=0,
                  callbacks=[fnn.callbacks.ModelCheckpoint(checkpoint), announce])
    np.savez(folder + "/final.npz", *model.get_weights(), iterations=model.optimizer.iterations)
''')


def run_script(tmp_path, *args, **popen):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def final_weights(folder):
    with np.load(folder / "final.npz") as f:
        return [f[k] for k in sorted(f.files) if k.startswith("arr_")], int(f["iterations"])


@pytest.fixture(params=["cython", "python"])
def backend_name(request):
    if request.param == "cython" and "cython" not in fnn.available_backends():
        pytest.fail("the compiled backend did not import")
    return request.param


def test_ten_epochs_equal_five_then_five_in_a_new_process(tmp_path, backend_name):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    finish(run_script(whole, "train", whole, backend_name, 10, 16, 600))
    finish(run_script(parts, "train", parts, backend_name, 5, 16, 600))
    loaded = fnn.load(parts / "ckpt.keras")
    assert loaded.epochs_trained == 5 and loaded.optimizer.iterations == 5 * 15
    assert isinstance(loaded.optimizer, fnn.AdamW) and loaded.optimizer.schedule is not None
    out = finish(run_script(parts, "resume", parts, backend_name, 10, 16, 600))
    assert out.split() == ["epoch", "5", "epoch", "6", "epoch", "7", "epoch", "8", "epoch", "9"]
    (a, steps_a), (b, steps_b) = final_weights(whole), final_weights(parts)
    assert steps_a == steps_b == 10 * 15
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("backend_name", ["cython"])
def test_sigkill_at_any_moment_leaves_a_checkpoint_that_resumes_exactly(tmp_path, backend_name):
    """A network wide enough that a save takes a noticeable part of an epoch; killed at several
    moments after the first checkpoint (some land inside a save), and once before any."""
    epochs, width, n = 12, 192, 4000
    reference = tmp_path / "reference"
    reference.mkdir()
    started = time.monotonic()
    finish(run_script(reference, "train", reference, backend_name, epochs, width, n))
    expected, _ = final_weights(reference)
    run_seconds = time.monotonic() - started
    killed = 0
    for i, delay in enumerate([None, 0.0, 0.011, 0.037, 0.12, 0.29]):
        folder = tmp_path / f"killed{i}"
        folder.mkdir()
        process = run_script(folder, "train", folder, backend_name, epochs, width, n)
        try:
            if delay is None:
                time.sleep(0.05)  # before the first epoch ends: no checkpoint yet
            else:
                deadline = time.monotonic() + 120
                while not (folder / "ckpt.keras").exists():
                    assert time.monotonic() < deadline and process.poll() is None, process.communicate()
                    time.sleep(0.002)
                time.sleep(delay)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=60)
        assert process.returncode in (-signal.SIGKILL, 0)
        if process.returncode == 0:  # the fit was over before the kill (a slow machine's start, a fast CPU)
            assert not (folder / "final.npz").exists() or delay is not None
        else:
            killed += 1
            (folder / "final.npz").unlink(missing_ok=True)
            if (folder / "ckpt.keras").exists():
                checkpoint = fnn.load(folder / "ckpt.keras")  # whole, whatever the moment of the kill
                # (epochs itself when the kill came after the last epoch's checkpoint, before the exit)
                assert 1 <= checkpoint.epochs_trained <= epochs
                finish(run_script(folder, "resume", folder, backend_name, epochs, width, n))
            else:
                finish(run_script(folder, "train", folder, backend_name, epochs, width, n))
        got, _ = final_weights(folder)
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
        # a kill inside a save leaves at most the save's temporary file, never a damaged checkpoint
        assert all(p.name == "ckpt.keras" or not p.name.endswith(".keras") for p in folder.iterdir())
    assert killed >= 4, f"only {killed} of 6 runs were killed before they finished ({run_seconds:.1f} s a run)"


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    model = fnn.Sequential([fnn.Dense(3, 4, "relu"), fnn.Dense(4, 1, "sigmoid")], seed=0)
    model.save(tmp_path / "a.keras")
    other = fnn.Sequential([fnn.Dense(3, 5, "relu"), fnn.Dense(5, 1, "sigmoid")], seed=0)
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"a.keras holds a float32 model with layers .*\(3, 4, 'relu'\)"):
        other.load_weights(tmp_path / "a.keras")
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)
    same = fnn.Sequential([fnn.Dense(3, 4, "relu"), fnn.Dense(4, 1, "sigmoid")], seed=5)
    same.load_weights(tmp_path / "a.keras")
    for a, b in zip(model.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_best_only_and_filename_fields(tmp_path, backend):
    X, y = fnn.data.moons(80, noise=0.3, seed=0)
    model = fnn.Sequential([fnn.Dense(8, "tanh"), fnn.Dense(1, "sigmoid")], seed=0)
    model.compile("binary_crossentropy", fnn.Adam(learning_rate=0.02))
    history = model.fit(X, y, epochs=6, verbose=0, validation_split=0.25, callbacks=[
        fnn.callbacks.ModelCheckpoint(tmp_path / "best.keras", save_best_only=True),
        fnn.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.3f}.keras"))])
    names = sorted(p.name for p in tmp_path.glob("e*.keras"))
    assert names == [f"e{e + 1:02d}-{loss:.3f}.keras" for e, loss in enumerate(history.history["loss"])]
    best = fnn.load(tmp_path / "best.keras")
    assert best.epochs_trained == 1 + int(np.argmin(history.history["val_loss"]))
    with pytest.raises(ValueError, match="ModelCheckpoint monitors 'val_auc'"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[
            fnn.callbacks.ModelCheckpoint(tmp_path / "x.keras", monitor="val_auc", save_best_only=True)])
    with pytest.raises(ValueError, match="has a field fit does not report"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[fnn.callbacks.ModelCheckpoint(tmp_path / "{val_f1}.keras")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fnn.callbacks.ModelCheckpoint(tmp_path / "missing" / "x.keras")
