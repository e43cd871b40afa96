"""`fastnn xor --seeds N`: training from many seeds in parallel threads gives the same outcome, seed by
seed, as training them one by one, and the printed counts say so."""
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import fastnn as fnn
from fastnn.lesson import PLATEAU_FALL, PLATEAU_WINDOW, train_seeds, xor_model


def one_by_one(seed, epochs, hidden=2):
    """The reference: one model, one fit, the outcome classified from scratch.
    Returns (final loss, learned, stuck on a plateau)."""
    X, y = fnn.data.xor()
    model = xor_model(hidden, seed)
    loss = model.fit(X, y, epochs=epochs, batch_size=None, verbose=0).history["loss"]
    p = model.predict(X)[:, 0]
    learned = bool(np.all(np.where(y[:, 0] == 1, p > 0.5, p < 0.5)))
    window = int(epochs * PLATEAU_WINDOW)
    flat = loss[-window - 1] - loss[-1] < PLATEAU_FALL * loss[-1]
    return loss[-1], learned, not learned and flat


def test_parallel_runs_equal_one_by_one(backend):
    """18 seeds in two groups of fit_parallel (n_jobs=1 makes groups of 16): every final loss is
    bit-identical to a run on its own, and the outcomes agree. After 600 epochs the sample holds
    all three outcomes: learned, stuck on a plateau, still falling."""
    seeds = range(6, 24)
    runs = train_seeds(seeds, epochs=600, n_jobs=1)
    np.testing.assert_array_equal(runs.seeds, list(seeds))
    for i, seed in enumerate(seeds):
        loss, learned, stuck = one_by_one(seed, 600)
        assert runs.final_loss[i] == loss, f"seed {seed}"
        assert runs.learned[i] == learned, f"seed {seed}"
        assert runs.stuck[i] == stuck, f"seed {seed}"
    assert runs.learned.any() and runs.stuck.any() and runs.still_falling.any()
    assert not runs.diverged.any()
    assert np.array_equal(runs.learned | runs.stuck | runs.still_falling, np.ones(len(seeds), bool))
    assert np.all((runs.wrong == 0) == runs.learned) and np.all(runs.wrong <= 4)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), timeout=600)


def count(pattern, text) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return int(match.group(1))


@pytest.mark.parametrize("name, first, n, epochs", [("cython", 0, 40, 3000), ("python", 6, 4, 1000)])
def test_cli_counts_agree_with_one_by_one(both_backends, name, first, n, epochs):
    result = run_cli("xor", "--seeds", str(n), "--seed", str(first), "--epochs", str(epochs), "--backend", name)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"from {n} seeds ({first} to {first + n - 1})" in out and f"backend: {name}" in out
    learned = count(r"learned XOR \(every output on the right side of 0\.5\) +(\d+) of " + str(n), out)
    stuck = count(r"stuck on a plateau \(.*\) +(\d+)\n", out)
    falling = count(r"not learned yet, loss still falling +(\d+)\n", out)
    assert count(r"diverged \(.*\) +(\d+)\n", out) == 0
    listed = re.search(r"seeds that did not learn: ([\d, ]+)", out)
    failed = [int(s) for s in listed.group(1).split(", ")] if listed else []

    with fnn.use_backend(name):
        outcomes = {seed: one_by_one(seed, epochs) for seed in range(first, first + n)}
    assert learned == sum(o[1] for o in outcomes.values())
    assert stuck == sum(o[2] for o in outcomes.values())
    assert learned + stuck + falling == n
    assert failed == [seed for seed, o in outcomes.items() if not o[1]]
    assert 0 < learned < n  # the sample holds both outcomes, so the comparison means something
    losses = sorted(o[0] for o in outcomes.values())
    assert f"min {losses[0]:.4g}," in out and f"max {losses[-1]:.4g}" in out
    assert re.search(r"in \d+\.\d\d s", out)


def test_cli_seeds_counts_diverged_runs_apart(both_backends):
    """An η far too large: every run's loss ends above where it started, and the table says
    diverged, not stuck on a plateau (the single-run verdict's rule)."""
    result = run_cli("xor", "--seeds", "4", "--epochs", "100", "--lr", "1e9")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert count(r"diverged \(the loss ended above where it started: try a smaller --lr\) +(\d+)\n", out) == 4
    assert count(r"stuck on a plateau \(.*\) +(\d+)\n", out) == 0
    assert count(r"not learned yet, loss still falling +(\d+)\n", out) == 0
    single = run_cli("xor", "--seed", "0", "--epochs", "100", "--lr", "1e9")
    assert single.returncode == 1 and "training diverged" in single.stdout


@pytest.mark.parametrize("hidden", [3, 4])
def test_cli_wider_hidden_layer(both_backends, hidden):
    result = run_cli("xor", "--seeds", "8", "--hidden", str(hidden), "--epochs", "500")
    assert result.returncode == 0, result.stderr
    assert f"XOR with a 2-{hidden}-1 network from 8 seeds" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "argument --seeds: must be at least 1"),
    (["--seeds", "4", "--epochs", "0"], "argument --epochs: must be at least 1"),
    (["--seeds", "4", "--hidden", "0"], "argument --hidden: must be at least 1"),
    (["--seeds", "4", "--explain"], "--explain"),
])
def test_cli_seeds_refuses_bad_arguments(args, message):
    result = run_cli("xor", *args)
    assert result.returncode == 2 and message in result.stderr


def test_train_seeds_checks_epochs():
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train_seeds([0], epochs=0)
