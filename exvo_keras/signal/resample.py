"""Polyphase resampling between integer rates, with scipy's `resample_poly` semantics, in TensorFlow (float64).

One implementation for the audio loader, the ZFF pitch estimate's decimation and the exported graphs' wav
decoding. As scipy: the anti-aliasing filter is `firwin(20 * max(up, down) + 1, 1 / max(up, down),
window=("kaiser", 5.0))` (designed here in the graph, so any input rate works, including one only known when a
file is decoded), the signal is zero outside its ends, and the output has `ceil(n * up / down)` samples aligned
as scipy aligns them. Computed in float64: against scipy in float64 the difference is round-off (about 1e-16);
scipy (>= 1.13) given float32 audio designs and applies the filter in float32, about 1e-7 from either.
"""

from __future__ import annotations

import functools
import math
from math import gcd

import numpy as np
import tensorflow as tf

F64 = tf.float64
KAISER_BETA = 5.0
HALF_LENGTH_PER_RATE = 10  # scipy's half filter length per unit of max(up, down)
# Each output sample is a dot product over one filter phase (about 20 * max(up, down) / up taps, e.g. 57 for
# 44.1 kHz -> 16 kHz). For the usual rates one matrix of taps serves blocks of outputs (a matrix product, fast);
# at rates with a large up * down (16001 Hz -> 16 kHz: 16000 * 16001) that matrix would not fit, and the taps
# are gathered per output instead, this many values at a time. Memory stays bounded either way: the matrix path
# holds two copies of the signal, the gathered one at most GATHER_BUDGET values, however long the clip.
WEIGHTS_BUDGET = 1 << 21
GATHER_BUDGET = 1 << 20


def _sinc(x):
    """numpy's sinc: sin(pi x) / (pi x), with x = 0 replaced by 1e-20 as numpy does."""
    y = math.pi * tf.where(tf.equal(x, 0.0), tf.constant(1e-20, F64), x)
    return tf.sin(y) / y


def kaiser_lowpass(num_taps, cutoff, beta: float = KAISER_BETA):
    """scipy's `firwin(num_taps, cutoff, window=("kaiser", beta))` (cutoff relative to Nyquist), float64.

    Args:
        num_taps: odd filter length (int scalar or tensor).
        cutoff: cutoff frequency as a fraction of the Nyquist rate.
        beta: Kaiser window shape.
    """
    num_taps = tf.cast(num_taps, tf.int64)
    n = tf.range(num_taps, dtype=F64)
    alpha = 0.5 * (tf.cast(num_taps, F64) - 1.0)
    m = n - alpha
    cutoff = tf.cast(tf.convert_to_tensor(cutoff, dtype_hint=F64), F64)  # a Python float stays float64
    h = cutoff * _sinc(cutoff * m)
    window = tf.math.special.bessel_i0(beta * tf.sqrt(1.0 - (m / alpha) ** 2)) / \
        tf.math.special.bessel_i0(tf.constant(beta, F64))
    h = h * window
    return h / tf.reduce_sum(h)


def _gcd(a, b):
    """Greatest common divisor of two positive int64 scalars (Euclid's algorithm as a graph loop)."""
    a, _ = tf.while_loop(lambda a, b: b > 0, lambda a, b: (b, tf.math.floormod(a, b)), (a, b))
    return a


def resample_poly(x, up, down):
    """scipy's `resample_poly(x, up, down)` of a 1-D signal, float64 (zero padding outside the signal).

    Args:
        x: `[samples]` float signal.
        up, down: positive integer factors (Python ints or int tensors; reduced by their gcd here).

    Returns:
        `[ceil(samples * up / down)]` float64 (x itself, in float64, when up equals down).
    """
    x = tf.cast(x, F64)
    up = tf.cast(up, tf.int64)
    down = tf.cast(down, tf.int64)
    g = _gcd(up, down)
    up, down = up // g, down // g
    return tf.cond(tf.equal(up, down), lambda: x, lambda: _polyphase(x, up, down))


def _polyphase(x, up, down):
    """resample_poly's filtering for coprime `up` != `down` (int64 scalars)."""
    n = tf.size(x, out_type=tf.int64)
    max_rate = tf.maximum(up, down)
    half_len = HALF_LENGTH_PER_RATE * max_rate
    length = 2 * half_len + 1
    h = kaiser_lowpass(length, 1.0 / tf.cast(max_rate, F64)) * tf.cast(up, F64)
    n_pre_pad = down - tf.math.floormod(half_len, down)
    n_pre_remove = (half_len + n_pre_pad) // down
    n_out = (n * up + down - 1) // down
    # Output m is the full convolution of the up-sampled signal with [0] * n_pre_pad + h at
    # p = first + m * down: input sample p // up - k meets tap p % up + k * up, for k < taps.
    first = n_pre_remove * down - n_pre_pad
    taps = (length + up - 1) // up + 1
    group = (taps + down - 1) // down
    return tf.cond(2 * group * down * group * up <= WEIGHTS_BUDGET,
                   lambda: _blocked(x, h, first, up, down, n_out, taps, group),
                   lambda: _gathered(x, h, first, up, down, n_out, taps))


def _blocked(x, h, first, up, down, n_out, taps, group):
    """Outputs `group * up` at a time from `2 * group * down` inputs, as one matrix product.

    Every block of `group * up` outputs reads the same pattern of inputs, shifted by `group * down` samples, and
    spans fewer than two such input blocks: so the signal, cut into rows of `group * down` samples, with each row
    beside the next, times one `[2 * group * down, group * up]` matrix of taps gives every output.
    """
    length = tf.size(h, out_type=tf.int64)
    b_in, b_out = group * down, group * up
    lowest = first // up - (taps - 1)  # the first input sample output 0 reads (negative: before the signal)
    p = first + tf.range(b_out) * down
    k = (p // up)[None, :] - lowest - tf.range(2 * b_in)[:, None]
    tap = (p % up)[None, :] + k * up
    valid = (k >= 0) & (tap < length)
    weights = tf.where(valid, tf.gather(h, tf.where(valid, tap, 0)), tf.zeros([], F64))
    blocks = (n_out + b_out - 1) // b_out
    needed = (blocks + 1) * b_in
    signal = tf.pad(x, tf.stack([[tf.maximum(-lowest, 0), 0]]))[tf.maximum(lowest, 0):]  # [j] = x[lowest + j]
    signal = tf.pad(signal, tf.stack([[0, tf.maximum(needed - tf.size(signal, out_type=tf.int64), 0)]]))[:needed]
    rows = tf.reshape(signal, tf.stack([blocks + 1, b_in]))
    return tf.reshape(tf.matmul(tf.concat([rows[:-1], rows[1:]], axis=1), weights), [-1])[:n_out]


def _gathered(x, h, first, up, down, n_out, taps):
    """Any factors (rates whose tap matrix would be too large): each output a dot product over its filter phase,
    gathered in chunks of bounded size."""
    length = tf.size(h, out_type=tf.int64)
    # Phase r of the polyphase filter holds taps r, r + up, r + 2 up, ...: zero beyond the end.
    phases = tf.transpose(tf.reshape(tf.pad(h, [[0, taps * up - length]]), [taps, up]))
    # Input i sits at padded[i + taps]: the zeros stand for the signal's outside, so no tap needs a mask. The
    # last output's phase reaches at most taps - 1 + ceil(down / up) samples past the end.
    padded = tf.pad(x, [[taps, taps + down // up + 2]])
    k = tf.range(taps)

    def outputs(m):
        p = first + m * down
        xs = tf.gather(padded, (p // up + taps)[:, None] - k[None, :])
        return tf.reduce_sum(xs * tf.gather(phases, p % up), axis=1)

    chunk = tf.maximum(tf.minimum(GATHER_BUDGET // taps, n_out), 1)
    chunks = tf.maximum((n_out + chunk - 1) // chunk, 1)
    # The last chunk is filled up with repeats of the last output (clipped indices), then cut off.
    m = tf.minimum(tf.reshape(tf.range(chunks * chunk), [chunks, chunk]), tf.maximum(n_out - 1, 0))
    y = tf.map_fn(outputs, m, fn_output_signature=tf.TensorSpec([None], F64), parallel_iterations=1)
    return tf.reshape(y, [-1])[:n_out]


def decimate(x, factor):
    """`resample_poly(x, 1, factor)`: the signal at 1 / factor of its rate, float64."""
    return resample_poly(x, 1, factor)


def to_sample_rate(x, rate, target: int):
    """A 1-D signal at `rate` (int, scalar tensor) resampled to `target` Hz (unchanged when equal), float32."""
    rate = tf.cast(rate, tf.int64)
    return tf.cond(tf.equal(rate, target), lambda: tf.cast(x, tf.float32),
                   lambda: tf.cast(resample_poly(x, tf.constant(target, tf.int64), rate), tf.float32))


@functools.lru_cache(maxsize=None)
def _resample_function():
    return tf.function(resample_poly, input_signature=[tf.TensorSpec([None], F64), tf.TensorSpec([], tf.int64),
                                                       tf.TensorSpec([], tf.int64)])


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """numpy in, numpy out: `[samples]` at `from_rate` -> float32 at `to_rate` (44.1 kHz -> 16 kHz is 160/441).

    One traced graph serves every pair of rates.
    """
    g = gcd(int(from_rate), int(to_rate))
    y = _resample_function()(np.asarray(x, np.float64), np.int64(to_rate // g), np.int64(from_rate // g))
    return y.numpy().astype(np.float32)
