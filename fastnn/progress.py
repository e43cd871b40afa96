"""fit's progress display: verbose=1 a bar over the epochs, verbose=2 one line per epoch."""
import sys
import time


class Progress:
    """epochs: the range of epoch numbers the fit runs (initial_epoch to epochs); verbose 0, 1 or 2.

    fit calls update(done, logs) after each kernel run (done: the epochs finished so far, counted
    from 0; logs: the last epoch's), epoch_end(epoch, logs, seconds) after each epoch when it sees
    every epoch (with callbacks, validation or verbose=2), and close() at the end."""

    def __init__(self, epochs: range, verbose: int):
        self.epochs = epochs
        self.verbose = verbose
        self.bar = None
        self.last = 0.0
        self.start = time.perf_counter()
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=epochs.stop, initial=epochs.start, unit="epoch", leave=True)
            except ImportError:
                pass

    def update(self, done: int, logs: dict) -> None:
        if self.verbose != 1:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
            return
        now = time.perf_counter()
        if now - self.last >= 0.1 or done == self.epochs.stop:  # redraw at most 10 times a second
            self.last = now
            print(f"\repoch {done}/{self.epochs.stop} [{now - self.start:.1f}s] {text}", end="", file=sys.stderr)

    def epoch_end(self, epoch: int, logs: dict, seconds: float) -> None:
        if self.verbose == 2:
            text = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"Epoch {epoch + 1}/{self.epochs.stop} - {seconds:.2f}s - {text}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.verbose == 1:
            print(file=sys.stderr)
