"""The command line as a user meets it, run as a subprocess: output piped and closed early, bad
arguments refused before any training with the subcommand's usage, --version, the verdicts."""
import subprocess
import sys

import pytest

import fastnn


def run(*args, tmp_path, timeout=120):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def test_output_piped_into_a_reader_that_closes_early(tmp_path):
    """`fastnn xor --seeds 64 | head -3`: no BrokenPipeError traceback."""
    child = subprocess.Popen([sys.executable, "-m", "fastnn", "xor", "--seeds", "64", "--epochs", "2000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    first = child.stdout.readline()
    child.stdout.close()  # the reader goes away
    _, err = child.communicate(timeout=120)
    assert first.startswith(b"XOR with a 2-2-1 network")
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


@pytest.mark.parametrize("args, message", [
    (["xor", "--epochs", "-3"], "argument --epochs: must be at least 1"),
    (["xor", "--epochs", "0"], "argument --epochs: must be at least 1"),
    (["xor", "--lr", "0"], "argument --lr: must be a positive number"),
    (["xor", "--seed", "-1"], "argument --seed: must be at least 0"),
    (["xor", "--plot", "."], "'.' is a folder"),
    (["xor", "--plot", "out.xyz"], "must end in .png"),
    (["xor", "--plot", "/proc/x.png"], "cannot write into '/proc'"),
    (["demo", "--plot", "/proc/figures"], "cannot write into '/proc/figures'"),
    (["xor", "--explain", "--seeds", "3"], "--explain prints the math of one run"),
])
def test_bad_arguments_are_refused_before_training_with_the_subcommands_usage(tmp_path, args, message):
    result = run(*args, tmp_path=tmp_path, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert f"usage: python -m fastnn {args[0]}" in result.stderr  # the subcommand's usage, not the top level
    assert result.stdout == ""  # nothing was trained


def test_version_and_help_show_defaults(tmp_path):
    result = run("--version", tmp_path=tmp_path)
    assert result.stdout.strip() == f"python -m fastnn {fastnn.__version__}"
    help_text = run("xor", "--help", tmp_path=tmp_path).stdout
    for option in ("--epochs EPOCHS", "--lr LR", "--seed SEED"):
        assert option in help_text
    assert "(default: 10000)" in help_text and "(default: 0.5)" in help_text


@pytest.mark.parametrize("args, verdict", [
    (["--epochs", "1"], "the loss is still falling"),
    (["--lr", "1e9", "--epochs", "100"], "training diverged"),
    ([], "learned XOR"),
])
def test_single_run_verdicts_follow_the_seed_study_rules(tmp_path, args, verdict):
    result = run("xor", *args, tmp_path=tmp_path)
    assert verdict in result.stdout, result.stdout + result.stderr
    assert result.returncode == (0 if verdict == "learned XOR" else 1)
