"""The lesson's XOR network and the many-seeds study: `xor_model` builds the 2-hidden-1 sigmoid
network the lesson trains, `train_seeds` trains it from many seeds and sorts each run into learned,
diverged, stuck on a plateau, or still falling. `python -m fastnn xor` (fastnn/__main__.py) prints and draws
what these compute."""
import os
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from . import data
from .layers import Dense
from .model import Sequential
from .optimizers import SGD
from .parallel import fit_parallel
from .validation import check_positive_int

__all__ = ["PLATEAU_FALL", "PLATEAU_WINDOW", "SeedRuns", "XOR_SEED", "grew", "on_plateau", "plateau_window",
           "right_side", "train_seeds", "xor_model"]

XOR_SEED = 0  # converges on both backends (tests/test_xor.py checks it); some seeds do not
# A run that has not learned is "stuck" when its loss fell by less than PLATEAU_FALL (relative)
# over the last PLATEAU_WINDOW (a fraction) of its epochs.
PLATEAU_FALL = 0.01
PLATEAU_WINDOW = 0.1


def xor_model(hidden: int = 2, seed: Optional[int] = XOR_SEED, lr: float = 0.5,
              dtype: str = "float64") -> Sequential:
    """The lesson's network: 2 inputs, `hidden` sigmoid neurons, 1 sigmoid output, binary
    cross-entropy, gradient descent with learning rate `lr`. It maps X (n, 2) to P(y=1) (n, 1)."""
    model = Sequential([Dense(2, hidden, activation="sigmoid"),
                        Dense(hidden, 1, activation="sigmoid")], seed=seed, dtype=dtype)
    model.compile(loss="binary_crossentropy", optimizer=SGD(lr=lr))
    return model


def right_side(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which outputs p (n,) are on the side of 0.5 of their targets y (n,) of 0/1: a bool array (n,).
    Strictly: an output of exactly 0.5 is undecided, so never on the right side."""
    return np.where(y > 0.5, p > 0.5, p < 0.5)


@dataclass
class SeedRuns:
    """Outcomes of training the XOR network from many seeds; arrays of shape (n_seeds,)."""
    seeds: np.ndarray       # int
    final_loss: np.ndarray  # the last epoch's loss
    wrong: np.ndarray       # how many of the 4 patterns end on the wrong side of 0.5
    plateau: np.ndarray     # bool: the loss fell by less than PLATEAU_FALL over the last PLATEAU_WINDOW
    grew: np.ndarray        # bool: the last epoch's loss is above the first's

    @property
    def learned(self) -> np.ndarray:
        """bool (n_seeds,): every pattern ends on the right side of 0.5."""
        return self.wrong == 0

    @property
    def diverged(self) -> np.ndarray:
        """bool (n_seeds,): not learned, and the loss ended above where it started (η too large)."""
        return ~self.learned & self.grew

    @property
    def stuck(self) -> np.ndarray:
        """bool (n_seeds,): not learned, not diverged, and the loss has stopped falling."""
        return ~self.learned & ~self.grew & self.plateau

    @property
    def still_falling(self) -> np.ndarray:
        """bool (n_seeds,): not learned yet, but the loss is still falling."""
        return ~self.learned & ~self.grew & ~self.plateau


def plateau_window(epochs: int) -> int:
    """The number of last epochs (at least 1) over which a run of `epochs` epochs counts as on a
    plateau: PLATEAU_WINDOW of them."""
    return max(1, int(epochs * PLATEAU_WINDOW))


def on_plateau(loss: list, epochs: int) -> bool:
    """Whether a run's loss per epoch (len epochs) fell by less than PLATEAU_FALL (relative) over
    its last plateau_window(epochs) epochs; a run too short to tell is not on a plateau."""
    window = plateau_window(epochs)
    return bool(epochs > window and loss[-window - 1] - loss[-1] < PLATEAU_FALL * loss[-1])


def grew(loss: list) -> bool:
    """Whether a run's loss per epoch ended above where it started: the run diverged."""
    return len(loss) > 1 and loss[-1] > loss[0]


def train_seeds(seeds: Iterable[int], hidden: int = 2, epochs: int = 10_000, lr: float = 0.5,
                n_jobs: Optional[int] = None) -> SeedRuns:
    """Train xor_model(hidden, seed, lr) for each seed, `epochs` full-batch epochs, in parallel
    threads (fit_parallel: the compiled kernels release the GIL), on the XOR truth table X (4, 2),
    y (4, 1). Equal to training them one by one. Returns the SeedRuns, arrays (len(seeds),) in the
    seeds' order."""
    seeds = [int(s) for s in seeds]
    epochs = check_positive_int("epochs", epochs)
    X, y = data.xor()
    final, wrong, plateau, grown = [], [], [], []
    # In groups: each History holds every epoch's loss and accuracy as Python floats (0.6 MB for
    # 10,000 epochs), so a thousand at once would take most of a GB.
    group = 16 * (n_jobs or os.cpu_count() or 1)
    for start in range(0, len(seeds), group):
        models = [xor_model(hidden, seed, lr) for seed in seeds[start:start + group]]
        histories = fit_parallel(models, X, y, n_jobs=n_jobs, epochs=epochs, batch_size=None)
        for model, history in zip(models, histories):
            loss = history.history["loss"]
            final.append(loss[-1])
            wrong.append(int(np.sum(~right_side(model.predict(X)[:, 0], y[:, 0]))))
            plateau.append(on_plateau(loss, epochs))
            grown.append(grew(loss))
    return SeedRuns(np.array(seeds, np.int64), np.array(final), np.array(wrong, np.int64),
                    np.array(plateau, bool), np.array(grown, bool))
