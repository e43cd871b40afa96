"""fit's progress display (fastnn.progress): it fits the terminal, leaves no stale characters,
keeps log files readable, and loses no metric it had to cut from the bar.

The unit tests drive Progress directly with a fake stderr, terminal size and clock, and replay
what it wrote on a tiny terminal emulator; the last tests go through fit, and through a real
terminal (tmux)."""
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

import fastnn as fnn
from fastnn import progress as progress_module
from fastnn.progress import Progress

LONG = {"loss": 0.123456, "accuracy": 0.987654, "val_loss": 0.234567, "val_accuracy": 0.876543}
SHORT = {"loss": 0.5, "accuracy": 1.0, "val_loss": 0.25, "val_accuracy": 1.0}  # same keys, shorter text


class Screen:
    """Just enough of a terminal to replay a progress bar: \\r moves to column 0, \\n to the start of
    a new line (as a tty's output processing makes it), ESC[K erases to the end of the line, and any
    other character overwrites the one under the cursor. Lines never wrap, so a test sees their
    full length; any other escape sequence fails the test."""

    def __init__(self):
        self.lines = [[]]
        self.column = 0

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            if text.startswith("\x1b[K", i):
                del self.lines[-1][self.column:]
                i += 3
                continue
            char = text[i]
            assert char != "\x1b", f"an escape sequence the emulator does not know: {text[i:i + 6]!r}"
            if char == "\r":
                self.column = 0
            elif char == "\n":
                self.lines.append([])
                self.column = 0
            else:
                line = self.lines[-1]
                if self.column < len(line):
                    line[self.column] = char
                else:
                    line.append(char)
                self.column += 1
            i += 1

    @property
    def text(self) -> list[str]:
        return ["".join(line) for line in self.lines]


class FakeStderr(io.StringIO):
    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal

    def take(self) -> str:
        """What was written since the last take."""
        text = self.getvalue()[getattr(self, "taken", 0):]
        self.taken = len(self.getvalue())
        return text


def fake_stderr(monkeypatch, terminal: bool = True, columns: int = 80) -> FakeStderr:
    """A fake stderr (a terminal or a log file), a terminal `columns` wide and a clock the test moves
    (`stderr.clock.now`). Called in the test itself: pytest's output capture sets sys.stderr
    again when the test starts, over what a fixture would have set."""
    fake = FakeStderr(terminal)
    monkeypatch.setattr(sys, "stderr", fake)
    set_columns(monkeypatch, columns)
    fake.clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(perf_counter=lambda: fake.clock.now))
    return fake


def block_tqdm(monkeypatch) -> None:
    """tqdm not importable: Progress falls back to its text bar."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


@pytest.fixture
def no_tqdm(monkeypatch):
    block_tqdm(monkeypatch)


def set_columns(monkeypatch, columns: int) -> None:
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((columns, 24)))


def summary_tokens(lines: list[str], epoch: str) -> list[str]:
    """The metrics of the summary `epoch 10/10: loss=...`, joined back from its wrapped lines."""
    starts = [i for i, line in enumerate(lines) if line.startswith(f"epoch {epoch}: ")]
    assert starts, f"no line 'epoch {epoch}: ...' in {lines}"
    text = lines[starts[0]]
    for line in lines[starts[0] + 1:]:
        if not line.startswith("  "):
            break
        text += " " + line.strip()
    return text.split()[2:]


def full(logs: dict) -> list[str]:
    return [f"{name}={value:.4g}" for name, value in logs.items()]


# ----------------------------------------------------------------------------- the text bar

@pytest.mark.parametrize("columns", [80, 40, 12])
def test_text_bar_fits_the_terminal_and_leaves_no_stale_characters(no_tqdm, monkeypatch, columns):
    stderr = fake_stderr(monkeypatch, columns=columns)
    screen = Screen()
    bar = Progress(range(0, 100), verbose=1)
    for done, logs in [(1, LONG), (2, SHORT), (3, {"loss": 1e-5, "accuracy": 0.5}), (50, SHORT), (100, SHORT)]:
        stderr.clock.now += 0.2
        bar.update(done, logs)
        written = stderr.take()
        assert written.startswith("\r") and written.endswith("\x1b[K") and "\n" not in written
        screen.feed(written)
        # What the terminal shows is exactly the last text drawn: nothing left of a longer line.
        assert screen.text[-1] == written[1:-len("\x1b[K")]
        assert screen.text[-1].startswith(f"epoch {done}/100 "[:columns - 1])
        assert len(screen.text[-1]) <= columns - 1
    bar.close()
    screen.feed(stderr.take())
    assert all(len(line) <= columns - 1 for line in screen.text), screen.text
    # The summary below the bar: every metric, wrapped to the width (words longer than it broken).
    summary = "".join(screen.text[1:]).replace(" ", "")
    assert summary == "epoch100/100:" + "".join(full(SHORT))


def test_text_bar_shows_metrics_whole_or_not_at_all(monkeypatch, no_tqdm):
    stderr = fake_stderr(monkeypatch)
    bar = Progress(range(0, 10), verbose=1)
    stderr.clock.now += 1
    bar.update(3, LONG)
    line = stderr.take()[1:-len("\x1b[K")]
    assert line.startswith("epoch 3/10 [===>      ] 1.0s loss=0.1235 ")
    assert len(line) <= 79 and line.endswith(" ...")  # 80 columns do not hold all four
    shown = line.split("s ", 1)[1].split()[:-1]
    assert shown and shown == full(LONG)[:len(shown)]


def test_text_bar_redraws_at_most_ten_times_a_second_and_always_the_final_state(monkeypatch, no_tqdm):
    stderr = fake_stderr(monkeypatch)
    bar = Progress(range(0, 1000), verbose=1)
    for done in range(1, 999):  # a big network: an update per epoch, 64 a second
        stderr.clock.now += 1 / 64
        bar.update(done, {"loss": 1 / done})
    seconds, redraws = 998 / 64, stderr.getvalue().count("\r")
    assert 5 * seconds <= redraws <= 10 * seconds
    stderr.clock.now += 0.2
    bar.update(999, {"loss": 0.002})
    assert stderr.take().startswith("\r")
    stderr.clock.now += 0.01
    bar.update(1000, {"loss": 0.001})
    assert stderr.take() == ""  # held back: only 0.01 s after the last redraw
    bar.close()
    screen = Screen()
    screen.feed(stderr.getvalue())
    assert re.fullmatch(r"epoch 1000/1000 \[==========\] 15\.8s loss=0\.001", screen.text[-3])
    assert screen.text[-2:] == ["epoch 1000/1000: loss=0.001", ""]


def test_text_bar_in_a_log_file_writes_plain_lines_now_and_then(monkeypatch, no_tqdm):
    stderr = fake_stderr(monkeypatch, terminal=False)
    bar = Progress(range(0, 100), verbose=1)
    for done in range(1, 100):  # a second per update: 99 s in all
        stderr.clock.now += 1
        bar.update(done, LONG)
    bar.update(100, SHORT)
    bar.close()
    text = stderr.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 8 <= len(lines) <= 11
    assert lines[0] == "epoch 10/100 [=>        ] 10.0s " + " ".join(full(LONG))  # in full: no width to fit
    assert lines[-1] == "epoch 100/100: " + " ".join(full(SHORT))  # the final state


def test_close_after_an_interruption_shows_the_last_finished_epoch(monkeypatch, no_tqdm):
    stderr = fake_stderr(monkeypatch)
    bar = Progress(range(5, 100), verbose=1)
    bar.close()  # interrupted before any run finished: nothing to show
    assert stderr.getvalue() == ""
    bar = Progress(range(5, 100), verbose=1)
    bar.update(37, LONG)  # sooner than the redraw interval: close draws it
    bar.close()
    screen = Screen()
    screen.feed(stderr.getvalue())
    assert screen.text[0].startswith("epoch 37/100 [===>      ] 0.0s loss=")
    assert summary_tokens(screen.text, "37/100") == full(LONG)


# ----------------------------------------------------------------------------- the tqdm bar

def test_tqdm_bar_fits_the_terminal_and_the_summary_keeps_what_it_cut(monkeypatch):
    import tqdm  # noqa: F401  (a test dependency: without it this must fail, not pass on the text bar)
    stderr = fake_stderr(monkeypatch, columns=60)
    bar = Progress(range(2, 200), verbose=1)
    for done in range(10, 201, 10):
        bar.update(done, LONG if done < 200 else SHORT)
    bar.close()
    screen = Screen()
    screen.feed(stderr.getvalue())
    lines = [line.rstrip() for line in screen.text]  # tqdm pads with spaces over a longer line
    assert all(len(line) <= 59 for line in screen.text), screen.text
    bar_line = lines[-4]
    assert bar_line.startswith("100%|") and "200/200" in bar_line and "val_accuracy" not in bar_line
    assert lines[-3:] == ["epoch 200/200: loss=0.5 accuracy=1 val_loss=0.25", "  val_accuracy=1", ""]


# ----------------------------------------------------------------------------- verbose 2 and 0

def test_verbose_2_prints_one_line_per_epoch(monkeypatch):
    stderr = fake_stderr(monkeypatch)
    bar = Progress(range(0, 10), verbose=2)
    for epoch in range(10):
        bar.epoch_end(epoch, LONG, 0.0234)
        bar.update(epoch + 1, LONG)
    bar.close()
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[2] == ("Epoch 3/10 - 0.02s - loss: 0.1235 - accuracy: 0.9877 - val_loss: 0.2346"
                        " - val_accuracy: 0.8765")


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("tqdm_present", [True, False])
def test_verbose_0_prints_nothing(monkeypatch, terminal, tqdm_present):
    stderr = fake_stderr(monkeypatch, terminal)
    if not tqdm_present:
        block_tqdm(monkeypatch)
    bar = Progress(range(0, 10), verbose=0)
    for epoch in range(10):
        stderr.clock.now += 20
        bar.epoch_end(epoch, LONG, 0.01)
        bar.update(epoch + 1, LONG)
    bar.close()
    assert stderr.getvalue() == ""


# ----------------------------------------------------------------------------- through fit

def moons_model():
    X, y = fnn.data.moons(200, seed=0)
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(1, activation="sigmoid")], seed=0)
    model.compile("binary_crossentropy", fnn.Adam(learning_rate=0.01), metrics=["accuracy"])
    return model, X, y


def test_fit_verbose_2_prints_each_epoch_with_its_validation_loss(capsys):
    model, X, y = moons_model()
    history = model.fit(X, y, epochs=20, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 20
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"Epoch {epoch}/20 - ") and " - val_loss: " in line and " - val_accuracy: " in line
    assert lines[-1].endswith(f" - val_loss: {history.history['val_loss'][-1]:.4f}"
                              f" - val_accuracy: {history.history['val_accuracy'][-1]:.4f}")


def test_fit_verbose_1_with_tqdm_ends_with_the_full_metrics(capsys):
    import tqdm  # noqa: F401
    model, X, y = moons_model()
    history = model.fit(X, y, epochs=20, verbose=1, validation_split=0.2)
    err = capsys.readouterr().err
    last = {name: values[-1] for name, values in history.history.items()}
    assert "epoch/s" in err  # tqdm's bar
    assert err.endswith("\nepoch 20/20: " + " ".join(full(last)) + "\n")


# ----------------------------------------------------------------------------- in a real terminal

FIT_SCRIPT = """\
import json, sys, warnings
warnings.simplefilter("ignore")  # the pane is for the progress display alone
if sys.argv[1] == "no-tqdm":
    sys.modules["tqdm"] = None
    sys.modules["tqdm.auto"] = None
import fastnn as fnn
X, y = fnn.data.moons(200, seed=0)
model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(1, activation="sigmoid")], seed=0)
model.compile("binary_crossentropy", fnn.Adam(learning_rate=0.01), metrics=["accuracy"])
history = model.fit(X, y, epochs=15000, verbose=1, validation_split=0.2)  # about a second
with open(sys.argv[2], "w") as f:
    json.dump({name: values[-1] for name, values in history.history.items()}, f)
print("FINISHED")
"""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not on PATH: the real-terminal test needs it")
@pytest.mark.parametrize("mode", ["tqdm", "no-tqdm"])
def test_fit_in_an_80_column_terminal(tmp_path, mode):
    """fit with verbose=1 in tmux at 80x24, with metrics too long for one line: no line wraps,
    the final bar line is clean, and the summary holds every metric."""
    script, result = tmp_path / "fit.py", tmp_path / "last.json"
    script.write_text(FIT_SCRIPT)
    session = "fit"
    # -u: UTF-8 (tqdm's blocks); -S: a server of its own, so no other tmux session is touched,
    # with its socket in tmp_path, which pytest cleans up.
    tmux = ["tmux", "-u", "-S", str(tmp_path / "tmux.sock")]
    # COLUMNS or LINES from the test's environment would override the pane's size.
    env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES", "TMUX")}
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {mode} {shlex.quote(str(result))}; sleep 30"
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-c", str(tmp_path),
                    command], cwd=tmp_path, env=env, check=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            # -J joins a line the terminal wrapped, so a line too long shows up as one.
            pane = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-t", session],
                                  capture_output=True, encoding="utf-8", errors="replace", check=True).stdout
            if "FINISHED" in pane or "Error" in pane or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    lines = [line.rstrip() for line in pane.splitlines()]  # -J keeps trailing spaces
    print("\n".join(lines))  # shown by pytest -s, or when the test fails
    while lines and not lines[-1]:
        lines.pop()
    assert lines and lines[-1] == "FINISHED", pane
    assert all(len(line) <= 80 for line in lines), pane
    last = json.loads(result.read_text())
    assert summary_tokens(lines, "15000/15000") == full(last), pane
    summary_at = [i for i, line in enumerate(lines) if line.startswith("epoch 15000/15000: ")][0]
    bar_line = lines[summary_at - 1]
    if mode == "tqdm":
        match = re.fullmatch(r"100%\|[█#]+\| 15000/15000 \[[0-9:]+<00:00, +[0-9.]+epoch/s(?:, (.*))?", bar_line)
        assert match, pane
        postfix = (match.group(1) or "").removesuffix("]")
        assert " ".join(full(last)).startswith(postfix), pane  # tqdm cut it; nothing else is there
    else:
        match = re.fullmatch(r"epoch 15000/15000 \[==========\] [0-9.]+s (.*)", bar_line)
        assert match, pane
        shown = match.group(1).removesuffix(" ...").split()
        assert shown and shown == full(last)[:len(shown)], pane
