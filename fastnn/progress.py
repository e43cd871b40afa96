"""fit's progress display, on stderr.

verbose=1: a bar over the epochs (tqdm's when tqdm is installed, else a one-line text bar) that
fits the terminal, so it may cut the metrics short; at the end the last epoch's metrics follow
in full on their own line. verbose=2: one line per epoch, as Keras prints it. verbose=0: nothing.
"""
from __future__ import annotations

import shutil
import sys
import textwrap
import time

_BAR = 10  # the text bar's width in characters
# How often the text bar is drawn: on a terminal often enough to look alive; when stderr is a log
# file (CI) a plain line now and then, since a line redrawn with \r is unreadable there.
_TERMINAL_INTERVAL = 0.1
_LOG_INTERVAL = 10.0


def _width() -> int:
    """The columns a line may use: one less than the terminal has, since some terminals wrap a
    line that fills the last column, and a \\r redraw then lands on the row below."""
    return max(shutil.get_terminal_size(fallback=(80, 24)).columns - 1, 1)


def _is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)  # a stand-in stderr may not have it
    return bool(isatty and isatty())


def _metrics(logs: dict[str, float]) -> list[str]:
    return [f"{name}={value:.4g}" for name, value in logs.items()]


def _cut(head: str, parts: list[str], width: int) -> str:
    """head and as many of parts as fit in width, then "..." if some were left out. A metric is
    shown whole or not at all: one cut short would show a number that looks right but isn't."""
    line = head
    for i, part in enumerate(parts):
        more = " ..." if i + 1 < len(parts) else ""
        if len(f"{line} {part}{more}") > width:
            line += " ..."
            break
        line += " " + part
    return line[:width]  # a terminal too narrow for even the head


class Progress:
    """The display of one fit over `epochs` (range(initial_epoch, epochs)) at level `verbose`.

    fit calls update(done, logs) after each kernel run (done: the epochs finished so far, counted
    from 0; logs: the last finished epoch's), epoch_end(epoch, logs, seconds) after each epoch
    when it sees every epoch (with callbacks, validation or verbose=2), and close() at the end,
    also after Ctrl-C or an error. A tiny network's fit calls update about 10 times a second
    with `done` jumping by thousands; a big one's once per epoch."""

    def __init__(self, epochs: range, verbose: int) -> None:
        self.epochs = epochs
        self.verbose = verbose
        self.done = epochs.start
        self.logs: dict[str, float] = {}  # the last update's; empty until then
        self.terminal = _is_terminal()
        self.interval = _TERMINAL_INTERVAL if self.terminal else _LOG_INTERVAL
        self.start = self.drawn = time.perf_counter()
        self.bar = None
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            # Only a terminal has a width: elsewhere tqdm.auto may draw a notebook widget, whose
            # ncols would be pixels.
            self.bar = tqdm(total=epochs.stop, initial=epochs.start, unit="epoch",
                            ncols=_width() if self.terminal else None)

    def update(self, done: int, logs: dict[str, float]) -> None:
        """The bar moves to `done` epochs and shows `logs`."""
        if self.verbose != 1:
            return
        self.done, self.logs = done, logs
        if self.bar is not None:
            if self.terminal:
                self.bar.ncols = _width()  # the terminal may have been resized
            self.bar.set_postfix_str(" ".join(_metrics(logs)), refresh=False)
            self.bar.update(done - self.bar.n)  # tqdm redraws at most every 0.1 s
        elif time.perf_counter() - self.drawn >= self.interval:
            self._draw()

    def epoch_end(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        """verbose=2's line for `epoch` (0-based), which took `seconds`."""
        if self.verbose == 2:
            text = " - ".join(f"{name}: {value:.4f}" for name, value in logs.items())
            print(f"Epoch {epoch + 1}/{self.epochs.stop} - {seconds:.2f}s - {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Ends the bar, then prints the last epoch's metrics in full: the bar may have cut them."""
        if self.bar is not None:
            self.bar.close()
        elif self.logs and self.terminal:
            self._draw()  # the final state, which the interval may have held back
            print(file=sys.stderr)
        if self.logs:  # in a log file this line is the final state
            summary = f"epoch {self.done}/{self.epochs.stop}: " + " ".join(_metrics(self.logs))
            if self.terminal:
                summary = textwrap.fill(summary, _width(), subsequent_indent="  ", break_on_hyphens=False)
            print(summary, file=sys.stderr, flush=True)

    def _draw(self) -> None:
        """The text bar, e.g. `epoch 37/100 [===>      ] 2.1s loss=0.1234 accuracy=0.95`: on a
        terminal redrawn in place and cut to its width; in a log file a new line, in full."""
        self.drawn = time.perf_counter()
        filled = _BAR * self.done // self.epochs.stop
        arrow = "=" * filled + (">" if filled < _BAR else "")
        head = f"epoch {self.done}/{self.epochs.stop} [{arrow:<{_BAR}}] {self.drawn - self.start:.1f}s"
        if self.terminal:
            # \r goes back to the line's start; \x1b[K erases what a longer previous line left.
            print("\r" + _cut(head, _metrics(self.logs), _width()) + "\x1b[K", end="", file=sys.stderr, flush=True)
        else:
            print(" ".join([head, *_metrics(self.logs)]), file=sys.stderr, flush=True)
