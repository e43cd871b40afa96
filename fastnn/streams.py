"""Training data bigger than memory, as fit reads it: a chunk at a time.

Two sources, each giving per epoch an iterator of chunks (X, y, sample_weight) as plain arrays:

- MemmapSource: a memory-mapped X (np.memmap, or an array view of one), with y and
  sample_weight arrays or memmaps. Chunks of about CHUNK_BYTES of X are copied out in turn; with
  shuffle, the chunks come in a random order and fit shuffles the rows within each (not across
  the whole file: that would read it at random). After each chunk the mapped pages are given back
  (madvise MADV_DONTNEED on a read-only or shared mapping), so the resident memory stays a few
  chunks, whatever the file's size.
- IterableSource: an iterator or generator of (X, y) or (X, y, sample_weight) chunks, or an object
  whose __iter__ makes a fresh one each epoch; steps_per_epoch chunks make an epoch (by default:
  all it yields).

fit checks and converts each chunk (fastnn.trainer.Data) before it reaches the training step.
"""
import itertools
import mmap
from typing import Iterator, Optional

import numpy as np

from .validation import check_positive_int

CHUNK_BYTES = 64 << 20


def is_stream(X) -> bool:
    """Whether fit should read X a chunk at a time: a memory-mapped array, or an iterator or
    iterable that is not array-like (lists, tuples and arrays are data, not streams)."""
    if _mapping_of(X) is not None:
        return True
    if isinstance(X, (np.ndarray, list, tuple, str, bytes, dict)) or hasattr(X, "__array__"):
        return False
    return hasattr(X, "__next__") or hasattr(X, "__iter__")


def _mapping_of(a) -> Optional[mmap.mmap]:
    """The mmap an array's memory belongs to (following .base), or None."""
    while isinstance(a, np.ndarray):
        a = a.base
    return a if isinstance(a, mmap.mmap) else None


def _copy_on_write(a) -> bool:
    """Whether a np.memmap along a's .base chain was opened with mode "c"."""
    while isinstance(a, np.ndarray):
        if isinstance(a, np.memmap) and a.mode in ("c", "copyonwrite"):
            return True
        a = a.base
    return False


class MemmapSource:
    """Rows [start, stop) of a memory-mapped X (n, n_in) with y (n, ...) and sample_weight (n,) or None."""

    def __init__(self, X: np.ndarray, y, sample_weight, batch: Optional[int], start: int = 0, stop: Optional[int] = None):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n = X.shape[0]
        for name, a in (("y", y), ("sample_weight", sample_weight)):
            if a is not None and np.shape(a)[:1] != (n,):
                raise ValueError(f"{name} has {np.shape(a)[:1]} rows but X has {n}")
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.start, self.stop = start, n if stop is None else stop
        row_bytes = max(1, X.shape[1] * X.dtype.itemsize)
        rows = max(1, CHUNK_BYTES // row_bytes)
        if batch is not None:  # whole batches per chunk, so that a chunk's batches are fit's batches
            rows = max(batch, rows // batch * batch)
        self.rows = rows

    @property
    def n(self) -> int:
        return self.stop - self.start

    def split(self, fraction: float) -> tuple["MemmapSource", "MemmapSource"]:
        """(the first rows, the last `fraction` of them), as validation_split cuts them."""
        at = self.start + int(np.floor(self.n * (1.0 - fraction)))
        if at <= self.start or at >= self.stop:
            raise ValueError(f"validation_split={fraction} leaves {at - self.start} of {self.n} rows to train on "
                             f"and {self.stop - at} to validate on: each needs at least one")
        head = MemmapSource(self.X, self.y, self.sample_weight, None, self.start, at)
        tail = MemmapSource(self.X, self.y, self.sample_weight, None, at, self.stop)
        head.rows = tail.rows = self.rows
        return head, tail

    def epoch(self, rng: Optional[np.random.Generator] = None) -> Iterator[tuple]:
        """The chunks of one epoch (in a random order when rng is given), copied out of the mapping."""
        starts = np.arange(self.start, self.stop, self.rows)
        if rng is not None:
            starts = rng.permutation(starts)
        for a in starts.tolist():
            b = min(a + self.rows, self.stop)
            chunk = tuple(None if v is None else np.array(v[a:b]) for v in (self.X, self.y, self.sample_weight))
            self._release()
            yield chunk

    def _release(self) -> None:
        """Give the mapped pages back to the system: they are the file's, read again if needed.
        Not for a copy-on-write mapping (mode "c"), whose changed pages exist nowhere else."""
        for a in (self.X, self.y, self.sample_weight):
            mapping = _mapping_of(a)
            if mapping is not None and not _copy_on_write(a) and hasattr(mapping, "madvise"):
                mapping.madvise(mmap.MADV_DONTNEED)


class IterableSource:
    """Chunks (X, y) or (X, y, sample_weight) from an iterator (consumed across epochs) or a
    re-iterable object (iterated anew each epoch); steps_per_epoch chunks an epoch, or all."""

    def __init__(self, source, steps_per_epoch: Optional[int]):
        self.steps = None if steps_per_epoch is None else check_positive_int("steps_per_epoch", steps_per_epoch)
        self.iterator = iter(source) if hasattr(source, "__next__") else None
        self.source = source
        self.epochs = 0

    def first(self) -> tuple:
        """The first chunk, without consuming it (fit builds the model from its width)."""
        it = self.iterator if self.iterator is not None else iter(self.source)
        try:
            chunk = _chunk(next(it))
        except StopIteration:
            raise ValueError("the generator of (X, y) chunks gave no chunk") from None
        if self.iterator is not None:
            self.iterator = itertools.chain([chunk], self.iterator)
        return chunk

    def epoch(self, rng=None) -> Iterator[tuple]:
        it = self.iterator if self.iterator is not None else iter(self.source)
        count = 0
        for item in it if self.steps is None else itertools.islice(it, self.steps):
            count += 1
            yield _chunk(item)
        if count == 0 or (self.steps is not None and count < self.steps):
            raise ValueError(f"the generator of (X, y) chunks ran out in epoch {self.epochs} after {count} chunks"
                             + ("" if self.steps is None else f" of steps_per_epoch={self.steps}")
                             + ": give an endless generator with steps_per_epoch, or an object whose __iter__ "
                               "starts the data again (a class with def __iter__(self): yield from ...)")
        self.epochs += 1


def _chunk(item) -> tuple:
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        raise TypeError(f"each chunk must be a tuple (X, y) or (X, y, sample_weight), got {type(item).__name__}")
    return item if len(item) == 3 else item + (None,)
