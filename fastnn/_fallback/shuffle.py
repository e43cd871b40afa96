"""The epochs' row orders as scikit-learn draws them, in NumPy: a legacy RandomState put in the
given MT19937 state shuffles each order. The compiled twin (fastnn/_compiled/shuffle.pxi) makes the
same draws itself, without the GIL."""
import numpy as np

from .._contract import check_shuffles


def shuffle_orders(key, pos, sample_idx, order):
    """For each row e of order: order[e] = the row before it (sample_idx for the first) permuted
    as RandomState.shuffle permutes it, from the MT19937 state (key, pos) of
    RandomState.get_state(). key is left in the generator's new state; returns its new pos.
    key: (624,) uint32; sample_idx: (n,) int64; order: (count, n) int64."""
    check_shuffles(key, pos, sample_idx, order)
    generator = np.random.RandomState()
    generator.set_state(("MT19937", key, pos))
    rows = sample_idx
    for e in range(order.shape[0]):
        permutation = np.arange(rows.size)
        generator.shuffle(permutation)
        order[e] = rows[permutation]
        rows = order[e]
    _, new_key, new_pos, *_ = generator.get_state()
    key[...] = new_key
    return int(new_pos)
