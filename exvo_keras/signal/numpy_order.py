"""numpy's summation order as graph ops: `np.mean` of float64 vectors, bit for bit.

numpy's float64 sum (np.add.reduce, and so np.mean) adds buffers of 8192 elements one after the other, each summed
pairwise: halves (rounded down to multiples of 8) down to blocks of at most 128, each summed with 8 running
accumulators. `exvo_keras.signal.zff` takes its means in exactly that order: a mean that rounds differently
moves the rounding of every running sum after it, by about 1e-9 of the peak on 30 s; matched, the filter's
output is the numpy implementation's bit for bit.

Grappler, TensorFlow's graph optimiser, would reorder some of these operations (a chain of adds into one AddN,
a division by a constant into a multiplication by the reciprocal): the code below is written so that it cannot.
"""

from __future__ import annotations

import tensorflow as tf

F64 = tf.float64

_BUFFER = 8192
_BLOCK = 128
_UNROLL = 8
_SPLITS = 7  # halvings that bring any length up to _BUFFER down to blocks of at most _BLOCK


class NumpyMean:
    """`np.mean` of float64 vectors of one length `n` (int32 scalar tensor), as graph ops.

    Whole buffers are reshaped into blocks (their halvings are exact); the last, partial buffer is split as
    numpy splits it, once per length, and reused for every vector of that length.
    """

    def __init__(self, n):
        self.n = n
        self.full = n // _BUFFER
        length = n - self.full * _BUFFER
        starts, lengths = tf.zeros([1], tf.int32), tf.reshape(length, [1])
        self.splits = []
        for _ in range(_SPLITS):
            split = lengths > _BLOCK
            half = lengths // 2
            first = half - half % _UNROLL
            keep = tf.reshape(tf.stack([tf.ones_like(split), split], axis=1), [-1])
            starts = tf.boolean_mask(tf.reshape(tf.stack([starts, starts + first], axis=1), [-1]), keep)
            lengths = tf.boolean_mask(tf.reshape(tf.stack([tf.where(split, first, lengths), lengths - first],
                                                          axis=1), [-1]), keep)
            self.splits.append(split)
        # Each block's multiple of 8 (padded to _BLOCK), then its rest one sample at a time; index `length`
        # reads an appended zero.
        blocked = lengths - lengths % _UNROLL
        offsets = tf.range(_BLOCK)
        self.index = tf.where(offsets[None, :] < blocked[:, None], starts[:, None] + offsets[None, :], length)
        rest = blocked[:, None] + tf.range(_UNROLL - 1)[None, :]
        self.rest = tf.where(rest < lengths[:, None], starts[:, None] + rest, length)

    def __call__(self, y):
        whole = self.full * _BUFFER
        partial = tf.concat([y[whole:], tf.zeros([1], F64)], axis=0)
        rows = tf.concat([tf.reshape(y[:whole], [-1, _BLOCK]), tf.gather(partial, self.index)], axis=0)
        # [blocks, 16, 8] -> the 8 accumulators run down the 16 rows of each block
        rows = tf.transpose(tf.reshape(rows, [-1, _BLOCK // _UNROLL, _UNROLL]), [1, 0, 2])
        blocks = _halving_sum(_sum_in_order(rows[0], rows[1:]))
        leaves = self.full * (_BUFFER // _BLOCK)
        buffers = _halving_sum(tf.reshape(blocks[:leaves], [-1, _BUFFER // _BLOCK]))
        # a cumulative sum runs in order too (one op for the few short rows of rests)
        s = tf.cumsum(tf.concat([blocks[leaves:, None], tf.gather(partial, self.rest)], axis=1), axis=1)[:, -1]
        for split in reversed(self.splits):
            # back up one halving: a split block's sum is its two halves' (its children follow each other)
            first = tf.cumsum(1 + tf.cast(split, tf.int32), exclusive=True)
            second = tf.gather(s, tf.minimum(first + 1, tf.size(s) - 1))
            s = tf.gather(s, first) + tf.where(split, second, tf.zeros_like(second))
        total = tf.cumsum(tf.concat([buffers, s], axis=0))[-1]
        return divide(total, tf.cast(self.n, F64))


def _sum_in_order(total, terms):
    """`total + terms[0] + terms[1] + ...`, one addition after the other: a graph loop, because Grappler turns a
    chain of adds into one AddN, which adds in another order."""
    count = tf.shape(terms)[0]
    _, total = tf.while_loop(lambda i, _: i < count, lambda i, t: (i + 1, t + terms[i]), (0, total))
    return total


def divide(x, y):
    """x / y, as numpy divides: Grappler turns a division by a constant (a length known when tracing) into a
    multiplication by the reciprocal, which rounds differently, but leaves DivNoNan alone (y is never 0 here)."""
    return tf.math.divide_no_nan(x, y)


def _halving_sum(values):
    """`[rows, 2^k]` -> `[rows]`, summing neighbours pairwise (numpy's recursion on lengths that halve exactly)."""
    while values.shape[1] > 1:
        even, odd = tf.unstack(tf.reshape(values, [-1, values.shape[1] // 2, 2]), axis=2)
        values = even + odd
    return values[:, 0]
