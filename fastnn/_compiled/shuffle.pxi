# The epochs' row orders as scikit-learn draws them: MT19937 (Matsumoto and Nishimura, 1998) from
# the state RandomState.get_state() gives, and RandomState.shuffle's Fisher-Yates with its bounded
# draws (a word masked to the smallest power of two above the bound, drawn again while above it).
# The NumPy twin (fastnn/_fallback/shuffle.py) runs a RandomState; here the draws need neither the
# GIL nor a Python call per epoch.

from libc.stdint cimport uint32_t

cdef enum:
    _MT_N = 624  # the state's words (the contract's MT19937_WORDS, checked at import)
    _MT_M = 397
cdef uint32_t _MT_MATRIX = 0x9908b0df, _MT_UPPER = 0x80000000, _MT_LOWER = 0x7fffffff
cdef uint32_t _MT_TEMPER_B = 0x9d2c5680, _MT_TEMPER_C = 0xefc60000

if _MT_N != _contract.MT19937_WORDS:
    raise ImportError("shuffle.pxi's MT19937 state size differs from fastnn._contract's")


def shuffle_orders(key, pos, sample_idx, order):
    """For each row e of order: order[e] = the row before it (sample_idx for the first) permuted
    as RandomState.shuffle permutes it, from the MT19937 state (key, pos) of
    RandomState.get_state(). key is left in the generator's new state; returns its new pos.
    key: (624,) uint32; sample_idx: (n,) int64; order: (count, n) int64."""
    _contract.check_shuffles(key, pos, sample_idx, order)
    cdef uint32_t[::1] state = key
    cdef const int64_t[::1] first = sample_idx
    cdef int64_t[:, ::1] out = order
    cdef int at = pos
    cdef Py_ssize_t n = first.shape[0], e
    if n == 0:
        return at
    with nogil:
        for e in range(out.shape[0]):
            if e == 0:
                memcpy(&out[0, 0], &first[0], n * sizeof(int64_t))
            else:
                memcpy(&out[e, 0], &out[e - 1, 0], n * sizeof(int64_t))
            at = _shuffle(&state[0], at, &out[e, 0], n)
    return at


cdef int _shuffle(uint32_t* key, int pos, int64_t* a, Py_ssize_t n) noexcept nogil:
    """a (n,) shuffled in place as RandomState.shuffle does, drawing from (key, pos); returns the
    new pos."""
    cdef Py_ssize_t i
    cdef uint32_t bound, mask, value
    cdef int64_t swap
    for i in range(n - 1, 0, -1):
        bound = <uint32_t>i
        mask = bound | (bound >> 1)
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while True:
            if pos == _MT_N:
                _mt_refill(key)
                pos = 0
            value = _mt_temper(key[pos]) & mask
            pos += 1
            if value <= bound:
                break
        swap = a[i]
        a[i] = a[value]
        a[value] = swap
    return pos


cdef inline uint32_t _mt_temper(uint32_t y) noexcept nogil:
    y ^= y >> 11
    y ^= (y << 7) & _MT_TEMPER_B
    y ^= (y << 15) & _MT_TEMPER_C
    return y ^ (y >> 18)


cdef void _mt_refill(uint32_t* key) noexcept nogil:
    """The next 624 words of MT19937's state, in place."""
    cdef int i
    for i in range(_MT_N - _MT_M):
        key[i] = _mt_twist(key[i + _MT_M], key[i], key[i + 1])
    for i in range(_MT_N - _MT_M, _MT_N - 1):
        key[i] = _mt_twist(key[i + _MT_M - _MT_N], key[i], key[i + 1])
    key[_MT_N - 1] = _mt_twist(key[_MT_M - 1], key[_MT_N - 1], key[0])


cdef inline uint32_t _mt_twist(uint32_t far, uint32_t word, uint32_t next_word) noexcept nogil:
    cdef uint32_t y = (word & _MT_UPPER) | (next_word & _MT_LOWER)
    return far ^ (y >> 1) ^ (_MT_MATRIX if y & 1 else 0)
