"""fit on data bigger than memory (fastnn.streams): generators and re-iterables of (X, y[, w])
chunks, and memory-mapped X. Where chunks are whole batches and nothing is shuffled, a stream
fit is the array fit (bit for bit in the weights; History to 1e-12); bad streams are refused
with an error that names the problem, before anything is trained where that is possible."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import data, streams


def moons(n=96, seed=0):
    X, y = data.moons(n, noise=0.2, seed=seed)
    order = np.random.default_rng(seed).permutation(n)  # both classes in every chunk
    return X[order], y[order]


def linear_problem(n=640, n_in=8, seed=0):
    """A learnable binary problem of n rows and n_in float64 features."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    y = (X @ rng.standard_normal(n_in) + 0.3 * rng.standard_normal(n) > 0).astype(float)
    return X, y


def model(n_in=2, seed=0, dtype="float64", lr=0.01):
    m = fnn.Sequential([fnn.Dense(n_in, 8, activation="tanh"), fnn.Dense(8, 1, activation="sigmoid")],
                       seed=seed, dtype=dtype)
    m.compile(loss="binary_crossentropy", optimizer=fnn.Adam(learning_rate=lr))
    return m


def chunks_of(X, y, rows, w=None):
    """A plain generator of (X, y) (or (X, y, w)) chunks of `rows` rows."""
    for i in range(0, len(X), rows):
        yield (X[i:i + rows], y[i:i + rows]) if w is None else (X[i:i + rows], y[i:i + rows], w[i:i + rows])


class Chunks:
    """A re-iterable source: each __iter__ starts the data again. `yielded` counts the chunks."""

    def __init__(self, X, y, rows):
        self.X, self.y, self.rows, self.yielded = X, y, rows, 0

    def __iter__(self):
        for chunk in chunks_of(self.X, self.y, self.rows):
            self.yielded += 1
            yield chunk


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(u, v)


def assert_same_history(actual, expected, assert_close):
    assert actual.history.keys() == expected.history.keys()
    for key in expected.history:
        assert_close(actual.history[key], expected.history[key], np.float64)


def write_npy(path, X):
    """X written to a .npy file through a memory map, and flushed."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=X.shape)
    out[...] = X
    out.flush()
    del out
    return path


def counting_chunks(monkeypatch):
    """Record the rows of every chunk MemmapSource hands to fit (training and validation)."""
    seen = []
    original = streams.MemmapSource.epoch

    def epoch(self, rng=None):
        for chunk in original(self, rng):
            seen.append(chunk[0].shape[0])
            yield chunk
    monkeypatch.setattr(streams.MemmapSource, "epoch", epoch)
    return seen


# ---------------------------------------------------------------- generators equal arrays

@pytest.mark.parametrize("rows", [16, 32], ids=["chunk=batch", "chunk=2batches"])
def test_generator_of_whole_batches_is_the_array_fit(backend, simd, dtype, assert_close, rows):
    X, y = moons(96)
    reference = model(dtype=dtype)
    expected = reference.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    streamed = model(dtype=dtype)
    history = streamed.fit(chunks_of(X, y, rows), epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)
    assert streamed.optimizer.iterations == reference.optimizer.iterations == 6


# ---------------------------------------------------------------- epochs of a stream

def test_re_iterable_source_runs_several_epochs(backend, simd, assert_close):
    X, y = moons(96)
    reference = model()
    expected = reference.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    source = Chunks(X, y, 32)
    streamed = model()
    history = streamed.fit(source, epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert history.epoch == [0, 1, 2]
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)
    assert source.yielded >= 3 * 3  # each epoch iterated the source anew (fit may peek one chunk more)


def test_plain_generator_gives_one_epoch_then_asks_for_steps_per_epoch(backend, simd):
    X, y = moons(96)
    m = model()
    with pytest.raises(ValueError, match="steps_per_epoch") as error:
        m.fit(chunks_of(X, y, 16), epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert "ran out in epoch 1" in str(error.value)
    # the first epoch did train on every chunk before the generator ran out
    assert m.optimizer.iterations == 6 and m.epochs_trained == 1


def test_endless_generator_with_steps_per_epoch_takes_exactly_k_chunks_an_epoch(backend, simd):
    X, y = moons(96)
    taken = []

    def endless():
        while True:
            for i in range(0, 96, 16):
                taken.append(i)
                yield X[i:i + 16], y[i:i + 16]

    streamed = model()
    history = streamed.fit(endless(), epochs=3, batch_size=16, shuffle=False, steps_per_epoch=4, verbose=0)
    assert len(taken) == 3 * 4  # the chunk fit peeks at to build is the first one trained, not an extra one
    assert history.epoch == [0, 1, 2] and streamed.optimizer.iterations == 12
    # 12 chunks of 16 are two passes over the rows: one array epoch over the rows twice
    reference = model()
    reference.fit(np.concatenate([X, X]), np.concatenate([y, y]), epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(streamed, reference)


def test_generator_with_validation_data_is_the_array_fit(backend, simd, assert_close):
    X, y = moons(96)
    validation = moons(40, seed=1)
    reference = model()
    expected = reference.fit(X, y, epochs=2, batch_size=16, shuffle=False, validation_data=validation, verbose=0)
    streamed = model()
    history = streamed.fit(Chunks(X, y, 32), epochs=2, batch_size=16, shuffle=False, validation_data=validation,
                           verbose=0)
    assert {"val_loss", "val_accuracy"} <= history.history.keys()
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)


def test_the_advice_of_the_ran_out_error_works(backend, simd):
    """The error when a generator runs out recommends a class whose __iter__ starts the data
    again (a list of chunks is data, not a stream): following that advice works."""
    X, y = moons(96)
    with pytest.raises(ValueError, match="steps_per_epoch") as error:
        model().fit(chunks_of(X, y, 16), epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert "__iter__" in str(error.value) and "list of chunks" not in str(error.value)
    advised = model()
    advised.fit(Chunks(X, y, 16), epochs=2, batch_size=16, shuffle=False, verbose=0)
    reference = model()
    reference.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(advised, reference)


# ---------------------------------------------------------------- sample weights

def test_weighted_chunks_are_the_weighted_array_fit(backend, simd, assert_close):
    X, y = moons(96)
    w = np.random.default_rng(1).uniform(0.2, 3.0, 96)
    reference = model()
    expected = reference.fit(X, y, epochs=1, batch_size=16, shuffle=False, sample_weight=w, verbose=0)
    streamed = model()
    history = streamed.fit(chunks_of(X, y, 16, w), epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)
    unweighted = model()
    unweighted.fit(chunks_of(X, y, 16), epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert not np.array_equal(unweighted.get_weights()[0], streamed.get_weights()[0])  # the weights were used


# ---------------------------------------------------------------- memory-mapped X

@pytest.mark.parametrize("validation_split", [0.0, 0.25], ids=["no-validation", "validation_split"])
def test_memmap_in_one_chunk_is_the_array_fit(backend, simd, assert_close, tmp_path, monkeypatch,
                                              validation_split):
    X, y = linear_problem(640)
    Xm = np.load(write_npy(tmp_path / "X.npy", X), mmap_mode="r")
    assert isinstance(Xm, np.memmap) and streams.is_stream(Xm)
    seen = counting_chunks(monkeypatch)
    reference = model(n_in=8)
    expected = reference.fit(np.array(Xm), y, epochs=3, batch_size=16, shuffle=False,
                             validation_split=validation_split, verbose=0)
    streamed = model(n_in=8)
    history = streamed.fit(Xm, y, epochs=3, batch_size=16, shuffle=False, validation_split=validation_split,
                           verbose=0)
    assert seen == [480, 160] * 3 if validation_split else seen == [640] * 3  # the default chunk holds all rows
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)
    if validation_split:
        assert {"val_loss", "val_accuracy"} <= history.history.keys()


@pytest.mark.parametrize("batch_size", [16, 24])
@pytest.mark.parametrize("validation_split", [0.0, 0.25], ids=["no-validation", "validation_split"])
def test_memmap_in_several_chunks_is_the_array_fit(backend, simd, assert_close, tmp_path, monkeypatch,
                                                   batch_size, validation_split):
    monkeypatch.setattr(streams, "CHUNK_BYTES", 4096)  # 64 rows of 8 float64 features
    X, y = linear_problem(640)
    Xm = np.load(write_npy(tmp_path / "X.npy", X), mmap_mode="r")
    seen = counting_chunks(monkeypatch)
    reference = model(n_in=8)
    expected = reference.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False,
                             validation_split=validation_split, verbose=0)
    streamed = model(n_in=8)
    history = streamed.fit(Xm, y, epochs=2, batch_size=batch_size, shuffle=False,
                           validation_split=validation_split, verbose=0)
    rows = 64 // batch_size * batch_size  # whole batches in a chunk
    assert max(seen) == rows and len(seen) >= 2 * 640 // rows and all(r % batch_size == 0 for r in seen[:3])
    assert sum(seen) == 2 * 640
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)


def test_memmap_shuffled_in_chunks_is_reproducible_and_learns(backend, simd, tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "CHUNK_BYTES", 4096)
    X, y = linear_problem(640)
    Xm = np.load(write_npy(tmp_path / "X.npy", X), mmap_mode="r")
    seen = counting_chunks(monkeypatch)
    runs = []
    for _ in range(2):
        m = model(n_in=8, seed=3, lr=0.02)
        runs.append((m, m.fit(Xm, y, epochs=6, batch_size=16, shuffle=True, verbose=0)))
    assert len(seen) == 2 * 6 * 10  # 10 chunks of 64 rows an epoch
    (a, ha), (b, hb) = runs
    assert_same_weights(a, b)
    assert ha.history == hb.history
    loss = ha.history["loss"]
    assert loss[-1] < 0.7 * loss[0], loss
    assert ha.history["accuracy"][-1] > 0.85
    unshuffled = model(n_in=8, seed=3, lr=0.02)
    unshuffled.fit(Xm, y, epochs=6, batch_size=16, shuffle=False, verbose=0)
    assert not np.array_equal(unshuffled.get_weights()[0], a.get_weights()[0])  # shuffle did shuffle


# ---------------------------------------------------------------- bad input

def untouched(m, before):
    assert m.optimizer.iterations == 0
    assert_same_weights_list(m.get_weights(), before)


def assert_same_weights_list(actual, expected):
    assert len(actual) == len(expected)
    for u, v in zip(actual, expected):
        np.testing.assert_array_equal(u, v)


def test_generator_with_validation_split_is_refused(backend):
    X, y = moons(96)
    m = model()
    before = m.get_weights()
    source = Chunks(X, y, 16)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(iter(source), validation_split=0.2, verbose=0)
    untouched(m, before)
    assert source.yielded == 0


def test_generator_with_y_is_refused(backend):
    X, y = moons(96)
    m = model()
    before = m.get_weights()
    source = Chunks(X, y, 16)
    with pytest.raises(ValueError, match="y and sample_weight must be None"):
        m.fit(iter(source), y, verbose=0)
    with pytest.raises(ValueError, match="y and sample_weight must be None"):
        m.fit(iter(source), sample_weight=np.ones(96), verbose=0)
    untouched(m, before)
    assert source.yielded == 0


def test_chunk_that_is_not_a_tuple_is_refused(backend):
    X, y = moons(96)
    m = model()
    before = m.get_weights()
    with pytest.raises(TypeError, match=r"must be a tuple \(X, y\).*got list"):
        m.fit(iter([[X[:16], y[:16]], [X[16:32], y[16:32]]]), batch_size=16, verbose=0)
    untouched(m, before)
    with pytest.raises(TypeError, match="must be a tuple"):
        m.fit(iter([(X[:16], y[:16], np.ones(16), "extra")]), batch_size=16, verbose=0)
    untouched(m, before)
    # a later bad chunk is found when it arrives: the chunks before it did train
    with pytest.raises(TypeError, match="got ndarray"):
        m.fit(iter([(X[:16], y[:16]), X[16:32]]), batch_size=16, shuffle=False, verbose=0)
    assert m.optimizer.iterations == 1


def test_chunk_with_nan_is_refused(backend):
    X, y = moons(96)
    bad = X[16:32].copy()
    bad[3, 1] = np.nan
    m = model()
    before = m.get_weights()
    with pytest.raises(ValueError, match="NaN"):
        m.fit(iter([(bad, y[16:32])]), batch_size=16, verbose=0)
    untouched(m, before)
    # A generator's chunks are checked as they arrive: the NaN in the second chunk is found only
    # after the first chunk has trained (one step), so the weights have moved by then.
    with pytest.raises(ValueError, match="NaN"):
        m.fit(iter([(X[:16], y[:16]), (bad, y[16:32])]), batch_size=16, shuffle=False, verbose=0)
    assert m.optimizer.iterations == 1


def test_steps_per_epoch_with_arrays_is_refused(backend, tmp_path):
    X, y = moons(96)
    Xm = np.load(write_npy(tmp_path / "X.npy", X), mmap_mode="r")
    m = model()
    before = m.get_weights()
    for features in (X, Xm):
        with pytest.raises(ValueError, match="steps_per_epoch is for a generator"):
            m.fit(features, y, steps_per_epoch=2, verbose=0)
    untouched(m, before)


def test_steps_per_epoch_zero_is_refused(backend):
    X, y = moons(96)
    m = model()
    before = m.get_weights()
    source = Chunks(X, y, 16)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1, got 0"):
        m.fit(iter(source), steps_per_epoch=0, verbose=0)
    untouched(m, before)
    assert source.yielded == 0


def test_memmap_with_y_of_the_wrong_rows_is_refused(backend, tmp_path):
    X, y = moons(96)
    Xm = np.load(write_npy(tmp_path / "X.npy", X), mmap_mode="r")
    m = model()
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"y has \(95,\) rows but X has 96"):
        m.fit(Xm, y[:95], verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight has \(97,\) rows but X has 96"):
        m.fit(Xm, y, sample_weight=np.ones(97), verbose=0)
    untouched(m, before)


# ---------------------------------------------------------------- the mapping is left as it was

@pytest.mark.parametrize("mode", ["c", "r+"])
def test_changes_in_a_writable_memmap_survive_fit(backend, tmp_path, monkeypatch, mode):
    """fit gives the mapped pages back after each chunk; a copy-on-write mapping's changed pages
    exist only in memory, so they must be kept: fit sees them in every epoch, and they are still
    there afterwards (and, for mode "c", the file is not changed)."""
    monkeypatch.setattr(streams, "CHUNK_BYTES", 4096)
    X, y = linear_problem(640)
    path = write_npy(tmp_path / "X.npy", X)
    Xw = np.load(path, mmap_mode=mode)
    Xw[:3] = 2.5  # in the first chunk, changed in memory only
    Xw[600] = -1.5  # in the last
    expected = np.array(Xw)
    streamed = model(n_in=8)
    streamed.fit(Xw, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_array_equal(np.asarray(Xw), expected)
    reference = model(n_in=8)
    reference.fit(expected, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(streamed, reference)
    if mode == "c":
        np.testing.assert_array_equal(np.load(path), X)


def test_read_only_memmap_reads_back_unchanged(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "CHUNK_BYTES", 4096)
    X, y = linear_problem(640)
    path_X, path_y = write_npy(tmp_path / "X.npy", X), write_npy(tmp_path / "y.npy", y)
    Xm, ym = np.load(path_X, mmap_mode="r"), np.load(path_y, mmap_mode="r")
    streamed = model(n_in=8)
    streamed.fit(Xm, ym, epochs=2, batch_size=16, shuffle=True, validation_split=0.25, verbose=0)
    np.testing.assert_array_equal(np.asarray(Xm), X)
    np.testing.assert_array_equal(np.asarray(ym), y)
    np.testing.assert_array_equal(np.load(path_X), X)
    np.testing.assert_array_equal(np.load(path_y), y)


# ---------------------------------------------------------------- building from the first chunk

def test_model_builds_from_the_first_chunk_and_trains_on_it(backend, simd, assert_close):
    X, y = linear_problem(96, n_in=5)

    def unbuilt():
        m = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(1, activation="sigmoid")], seed=0)
        m.compile(loss="binary_crossentropy", optimizer=fnn.Adam(learning_rate=0.01))
        return m

    yielded = []

    def chunks():
        for chunk in chunks_of(X, y, 16):
            yielded.append(len(chunk[0]))
            yield chunk

    streamed = unbuilt()
    assert not streamed.built
    history = streamed.fit(chunks(), epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert streamed.built and streamed.n_in == 5 and streamed.layers[0].n_in == 5
    assert yielded == [16] * 6
    assert streamed.optimizer.iterations == 6  # one step per chunk yielded: the first was not lost
    reference = unbuilt()
    expected = reference.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(streamed, reference)
    assert_same_history(history, expected, assert_close)
