"""Zero-frequency filtering (ZFF) of speech and the glottal closure instants it reveals.

Method (Murty & Yegnanarayana, "Epoch extraction from speech signals", IEEE TASLP 16(8), 2008):

1. Difference the signal, s[n] - s[n-1], to remove any DC offset (the length is kept).
2. Pass the result twice through the zero-frequency resonator 1 / (1 - z^-1)^2, i.e. integrate it four
   times. This keeps essentially only the energy near 0 Hz, which for voiced speech is dominated by the
   impulse-like excitation at the glottal closures, plus a polynomial trend that grows with time.
3. Remove the trend by subtracting a local mean over a window of about 1-2 average pitch periods, three
   times. Each mean is divided by the number of samples the window actually covers, so the block edges
   are not pulled towards zero.
4. Normalise by the maximum magnitude. The epochs (glottal closure instants, GCIs) are the
   negative-to-positive zero crossings of the result, for speech of the usual polarity (the glottal flow
   derivative has its sharp negative peak at closure).

As a linear filter this is D(z) R(z)^4 (1 - M(z))^3 with D = 1 - z^-1, R = 1 / (1 - z^-1) and M the
centred moving average. At 0 Hz, R^4 has a pole of order 4, D a zero of order 1 and each pass of 1 - M,
a symmetric high-pass, a zero of order 2: two passes would leave a response that merely vanishes at
0 Hz, three make it vanish to third order, so slow drift is suppressed, not just bounded. Equivalently,
(1 - M)^k removes polynomials of degree up to 2k - 1, which is what makes the growing trends (and the
arbitrary integration constants of a block) disappear. The moving average has an odd length so that it
is zero-phase and does not shift the epochs. The discrete integrators (cumulative sums including the
current sample) and the backward difference do advance the crossings by about 1.5 samples relative to
an ideal impulse, as in the reference implementations; this is left uncorrected.

Trend window
    ``average_pitch_period`` estimates the average pitch period T0 from the median autocorrelation peak
    of the linear-prediction residual over frames that are loud and clearly periodic, in the 2-15 ms lag
    range (about 65-500 Hz), in the spirit of ``xcorrWinLen.m`` (Epoch-extraction-methods) and
    ``xcorrWinLen`` in idiap/zff_vad. The window is ``WINDOW_FACTOR`` = 1.5 times T0. The method needs a
    window of between one and two pitch periods: shorter than one period the trend removal follows the
    pitch cycle itself and adds spurious crossings, longer than two it leaves low-frequency drift that
    swallows crossings. 1.5 sits in the middle, so the average-period window stays inside that range
    while f0 moves by about +/-33 % around its average (100-180 Hz within one clip is common).
    Idiap uses 1.2 times an estimate that is biased up by about 2 ms, i.e. 1.4-1.7 T0 for T0 of
    10-5 ms, much the same.
    When there is no clear periodicity (silence, noise, clips shorter than a frame) the window falls
    back to ``FALLBACK_WINDOW_SECONDS`` = 10 ms, the fixed window common in the literature, suitable
    for pitch periods of 5-10 ms (100-200 Hz).

Numerical choices
    Four integrations of the difference grow like the cube of the duration: in float32 the trend
    swamps the signal entirely and in float64 precision runs out after about a minute of audio
    (Idiap filters at most 10 s at a time). Here:

    * everything is computed in float64;
    * the input is cut into blocks of at most ``block_seconds`` (10 s) that overlap by a margin
      (``margin_seconds``, at least 0.3 s and at least 6 windows) on each side; each block is filtered
      on its own and only its centre is kept. The filter's support is +/-1.5 windows, and the
      polynomials that a block's integration constants and its mean removal add are annihilated by
      the trend removal away from the block edges, so the kept centres equal the single-block result
      (to about 1e-8 of the peak) and there are no seams; the final normalisation is global;
    * the ends of the whole signal are reflected over one margin, so the end effects of the trend
      removal fall into the padding rather than into the first and last 20-30 ms of the output;
    * the mean of each block's difference signal is removed before integrating, so a residual offset
      is not integrated into a quartic;
    * the trend is removed after each double integration instead of only after all four: two passes
      after the first two integrations and the third after the last two. This is the same linear
      filter (three passes in all; the passes commute with the integrations away from the edges, and
      the edge effects of the first two integrate into a straight line, which the last pass removes
      exactly), but no intermediate grows faster than linearly with the block length. Against an
      extended-precision (80-bit) evaluation of the textbook ordering this agrees to about 1e-9 of the
      peak, where the textbook ordering in float64 is already off by about 5e-5 on 2.6 s and, in one
      block, gives about 30 % spurious epochs at the end of a 30 s voiced signal. Blocks therefore
      bound memory and keep the arithmetic local; they are no longer what keeps the filter correct.

The moving averages are taken from cumulative sums (of the signal minus its mean, to keep the running
sums small), so the whole filter is a few dozen vectorised passes over the data.

Implementation
    One TensorFlow implementation (core ops only, so exported graphs run it without this package) serves the
    signal caches, training and the exported graphs: `zero_frequency_filter` and `zff_batch` are graph
    functions; `zff`, `average_pitch_period` and `trend_window_samples` keep a numpy-in, numpy-out interface
    over graphs traced once per sample rate (the pitch estimate) or once for all (the filter), not per clip.
    The filter adds in numpy's order (cumulative sums run in order in both; the means are taken as `np.mean`
    takes them, `exvo_keras.signal.numpy_order`), so its output equals that of the numpy implementation this
    replaced (commit 2b96e07, kept as the tests' reference) bit for bit on every test signal (0.06-30 s,
    8-44.1 kHz, every option); the tests hold it to 1e-9 of the peak. The pitch estimate's FFTs, reductions
    and decimation round differently, by about 1e-16 relative: it only chooses the (integer, odd) trend
    window, which no test signal sees change.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from exvo_keras.signal.numpy_order import NumpyMean, divide
from exvo_keras.signal.resample import decimate

WINDOW_FACTOR = 1.5
FALLBACK_WINDOW_SECONDS = 0.010
MIN_PERIOD_SECONDS = 0.002
MAX_PERIOD_SECONDS = 0.015
DEFAULT_BLOCK_SECONDS = 10.0
MIN_MARGIN_SECONDS = 0.3

# Pitch estimation runs at about this rate (integer decimation), on frames of 48 ms (a little over three
# times the longest lag, so even a 15 ms lag is averaged over two full periods), every 40 ms, at most
# this many frames spread over the signal: the estimate is an average and a few hundred frames pin it
# down, however long the clip.
_ANALYSIS_RATE = 8000
_FRAME_SECONDS = 0.048
_HOP_SECONDS = 0.040
_MAX_FRAMES = 800
# A frame counts as voiced when its window-corrected, normalised autocorrelation peak exceeds this;
# over hundreds of white-noise frames the peak stays below about 0.4; in voiced frames it is mostly 0.6-0.95.
_VOICING_THRESHOLD = 0.45
# Frames quieter than this fraction of the 95th-percentile frame RMS are not considered at all.
_RELATIVE_ENERGY_FLOOR = 0.1
# At least this fraction of the loud frames (and _MIN_VOICED_FRAMES of them) must be voiced before
# the clip is called periodic, so the odd noise frame that passes the threshold does not decide.
_MIN_VOICED_FRACTION = 0.1
_MIN_VOICED_FRAMES = 3

F64 = tf.float64


# ---------------------------------------------------------------------------------------------------------
# numpy interface


def zff(x: np.ndarray, sample_rate: int, *, window_seconds: float | None = None,
        block_seconds: float | None = DEFAULT_BLOCK_SECONDS, margin_seconds: float | None = None) -> np.ndarray:
    """Zero-frequency filtered signal.

    Args:
        x: mono signal, any real dtype (int16 and float32 are converted to float64 first).
        sample_rate: samples per second.
        window_seconds: trend-removal window; by default ``WINDOW_FACTOR`` times the average pitch period
            from ``average_pitch_period`` or ``FALLBACK_WINDOW_SECONDS`` when there is none.
        block_seconds: longest stretch filtered at once, margins included; None filters the whole signal
            as one block (exact as well with this implementation, but memory grows with the length).
        margin_seconds: overlap on each side of a block that is filtered but discarded; by default
            the larger of 0.3 s and six windows.

    Returns:
        float64 array of x's length, scaled so that its largest magnitude is 1 (all zeros when the
        filtered signal is zero, e.g. for constant or empty input).
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"zff expects a mono 1-D signal, got shape {x.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("zff input contains NaN or infinite samples")
    n = x.size
    if n < 2:
        return np.zeros(n)
    window = trend_window_samples(x, sample_rate, window_seconds)
    if margin_seconds is None:
        margin = int(margin_samples(window, sample_rate))
    else:
        margin = int(round(margin_seconds * sample_rate))
        if margin < 2 * window:
            raise ValueError(f"margin_seconds={margin_seconds} is under two trend windows ({window} samples each)")
    if block_seconds is None:
        core = n
    else:
        core = int(round(block_seconds * sample_rate)) - 2 * margin
        if core < sample_rate // 10:
            raise ValueError(f"block_seconds={block_seconds} leaves under 0.1 s between margins of {margin} samples")
    return _filter_function()(x, np.int32(window), np.int32(margin), np.int32(core)).numpy()


def epochs(z: np.ndarray) -> np.ndarray:
    """Glottal closure instants: the negative-to-positive zero crossings of a ZFF output.

    Args:
        z: output of ``zff``.

    Returns:
        int64 sample indices i of the first non-negative sample after a negative one (exact zeros in
        between are skipped, so a run of zeros between a negative and a positive stretch counts once,
        at its first sample, and a negative stretch that only touches zero counts not at all).
    """
    z = np.asarray(z)
    nonzero = np.flatnonzero(z)
    if nonzero.size < 2:
        return np.zeros(0, dtype=np.int64)
    positive = z[nonzero] > 0
    rising = np.flatnonzero(~positive[:-1] & positive[1:])
    return (nonzero[rising] + 1).astype(np.int64)


def trend_window_samples(x: np.ndarray, sample_rate: int, window_seconds: float | None = None) -> int:
    """Length of the trend-removal moving average, in samples, always odd (so the mean is centred).

    Args:
        x: the signal (only used when window_seconds is None).
        sample_rate: samples per second.
        window_seconds: explicit window; None derives it from the average pitch period.

    Returns:
        An odd window length of at least 3 samples.
    """
    if window_seconds is None:
        return int(_pitch_function(int(sample_rate))(np.asarray(x, np.float64))[2])
    if not window_seconds > 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    return int(window_samples(tf.constant(window_seconds, F64), sample_rate))


def average_pitch_period(x: np.ndarray, sample_rate: int) -> float | None:
    """Average pitch period of the voiced parts of a signal, from the autocorrelation of its LP residual.

    The signal is decimated to about 8 kHz (pitch needs no more, and it halves the cost at 16 kHz) and
    cut into 48 ms frames every 40 ms (at most 800 frames, spread evenly over long signals). Each loud
    frame is whitened by linear prediction (order rate/1000 + 2), so the formants leave no
    autocorrelation peaks of their own, lightly smoothed, so that a little jitter does not make the
    residual's pulse-like peaks miss each other, and its autocorrelation is normalised by its value at
    lag 0 and by the analysis window's autocorrelation. The frame's period is its highest peak between
    2 and 15 ms, or the shortest-lag peak within 10 % of it (a multiple of the period scores nearly as
    high as the period itself), refined by parabolic interpolation; the frame is voiced if that peak
    exceeds a threshold. The result is the median period over voiced frames.

    Args:
        x: mono signal, any real dtype.
        sample_rate: samples per second.

    Returns:
        The period in seconds, or None when there is no clear periodicity (silence, noise, a clip shorter
        than one frame, or fewer than 10 % of the loud frames voiced).
    """
    period, found, _ = _pitch_function(int(sample_rate))(np.asarray(x, np.float64))
    return float(period) if bool(found) else None


@functools.lru_cache(maxsize=None)
def _pitch_function(sample_rate: int):
    """x -> (period, found, trend window), traced once per sample rate."""
    def run(x):
        period, found = pitch_period(x, sample_rate)
        return period, found, _window_of(period, found, sample_rate)

    return tf.function(run, input_signature=[tf.TensorSpec([None], F64)])


@functools.lru_cache(maxsize=None)
def _filter_function():
    spec = tf.TensorSpec([], tf.int32)
    return tf.function(filter_blocks, input_signature=[tf.TensorSpec([None], F64), spec, spec, spec])


# ---------------------------------------------------------------------------------------------------------
# Graph functions


def zero_frequency_filter(x, sample_rate: int):
    """`zff(x, sample_rate)` with the default window, margin and blocks, as graph ops: float64 `[n]` -> `[n]`."""
    x = tf.cast(x, F64)
    n = tf.size(x)

    def filtered():
        window = trend_window(x, sample_rate)
        margin = margin_samples(window, sample_rate)
        core = int(round(DEFAULT_BLOCK_SECONDS * sample_rate)) - 2 * margin
        return filter_blocks(x, window, margin, core)

    return tf.cond(n < 2, lambda: tf.zeros([n], F64), filtered)


def zff_batch(waveform, lengths, sample_rate: int):
    """ZFF of every clip of a padded batch `[batch, samples]` over its own `lengths` samples, as the signal cache
    stores it (float32); padding stays zero."""
    samples = tf.shape(waveform)[1]

    def one(args):
        x, length = args
        z = tf.cast(zero_frequency_filter(x[:length], sample_rate), tf.float32)
        return tf.pad(z, [[0, samples - length]])

    return tf.map_fn(one, (waveform, lengths), fn_output_signature=tf.TensorSpec([None], tf.float32))


def window_samples(seconds, sample_rate: int):
    """Odd trend-window length (int32, at least 3) of `seconds` (float64 scalar)."""
    # Python's round() and tf.round both round half to even.
    return tf.maximum(3, 2 * tf.cast(tf.round(seconds * sample_rate / 2.0), tf.int32) + 1)


def _window_of(period, found, sample_rate: int):
    seconds = tf.where(found, WINDOW_FACTOR * period, tf.constant(FALLBACK_WINDOW_SECONDS, F64))
    return window_samples(seconds, sample_rate)


def trend_window(x, sample_rate: int):
    """`trend_window_samples(x, sample_rate)` as graph ops (int32 scalar)."""
    return _window_of(*pitch_period(x, sample_rate), sample_rate)


def margin_samples(window, sample_rate: int):
    """The default block margin: the larger of 0.3 s and six trend windows (int32)."""
    return tf.maximum(int(round(MIN_MARGIN_SECONDS * sample_rate)), 6 * tf.cast(window, tf.int32))


def filter_blocks(x, window, margin, core):
    """The zero-frequency filter of a float64 signal (n >= 2) with a given odd `window`, `margin` (at least two
    windows) and `core` (samples kept per block), peak-normalised (all zeros when the filtered signal is zero)."""
    x = tf.cast(x, F64)
    n = tf.size(x)
    padded = _reflect_pad(x, margin)
    blocks = (n + core - 1) // core

    def body(b, parts):
        start = b * core
        stop = tf.minimum(start + core, n)
        # padded[start] is x[start - margin]: the block spans x[start - margin : stop + margin].
        block = _zff_block(padded[start:stop + 2 * margin], window)
        return b + 1, parts.write(b, block[margin:margin + stop - start])

    parts = tf.TensorArray(F64, size=blocks, infer_shape=False, element_shape=[None])
    _, parts = tf.while_loop(lambda b, _: b < blocks, body, (0, parts))
    z = parts.concat()
    peak = tf.reduce_max(tf.abs(z))
    ok = tf.math.is_finite(peak) & (peak > 0.0)
    return tf.where(ok, z / tf.where(ok, peak, tf.ones_like(peak)), tf.zeros_like(z))


def _zff_block(x, window):
    """Unnormalised ZFF of one block (at least one window long); exact only at more than ~2 windows from its
    ends."""
    mean = NumpyMean(tf.size(x))
    d = tf.concat([tf.zeros([1], F64), x[1:] - x[:-1]], axis=0)
    d = d - mean(d)
    y = tf.cumsum(tf.cumsum(d))
    y = _remove_trend(_remove_trend(y, window, mean), window, mean)
    y = tf.cumsum(tf.cumsum(y))
    return _remove_trend(y, window, mean)


def _remove_trend(y, window, mean):
    """y minus its centred moving average over an odd window (at most len(y)), averaging only the samples
    covered."""
    n = tf.size(y)
    half = window // 2
    # Subtracting the mean first keeps the running sum, and so its rounding error, small.
    y = y - mean(y)
    # c[i] = cs[i - 1] is the sum of the first i samples; the mean over samples lo..hi-1 is (c[hi] - c[lo]) / count.
    cs = tf.cumsum(y)
    # The first and last `half` samples see a truncated window: divide by what it covers.
    covered = tf.cast(tf.range(half + 1, 2 * half + 1), F64)
    width = tf.cast(window, F64)
    trend = tf.concat([divide(cs[half:2 * half], covered), divide(cs[window - 1:window], width),
                       divide(cs[window:] - cs[:n - window], width),
                       divide(cs[n - 1] - cs[n - 2 * half - 1:n - half - 1], covered[::-1])], axis=0)
    return y - trend


def _reflect_pad(x, width):
    """numpy's `np.pad(x, width, mode="reflect")` of a signal of n >= 2 samples: its mirror image without
    repeating the end samples, repeated when the signal is shorter than `width` (period 2(n - 1))."""
    n = tf.size(x)

    def once():
        return tf.concat([tf.reverse(x[1:width + 1], [0]), x, tf.reverse(x[n - width - 1:n - 1], [0])], axis=0)

    def repeated():
        i = tf.range(-width, n + width)
        period = 2 * (n - 1)
        j = tf.math.floormod(i, period)
        return tf.gather(x, tf.where(j >= n, period - j, j))

    return tf.cond(width < n, once, repeated)


# ---------------------------------------------------------------------------------------------------------
# Pitch estimate


@dataclass(frozen=True)
class _Analysis:
    """The pitch estimate's layout at one sample rate (all in samples of the decimated signal)."""

    factor: int
    rate: float
    frame: int
    hop: int
    min_lag: int
    max_lag: int
    order: int

    @classmethod
    def at(cls, sample_rate: int) -> "_Analysis":
        factor = int(sample_rate // _ANALYSIS_RATE)
        rate = sample_rate / max(factor, 1)
        return cls(factor, rate, int(round(_FRAME_SECONDS * rate)), int(round(_HOP_SECONDS * rate)),
                   int(math.ceil(MIN_PERIOD_SECONDS * rate)), int(math.floor(MAX_PERIOD_SECONDS * rate)),
                   int(rate // 1000) + 2)


def pitch_period(x, sample_rate: int):
    """`average_pitch_period` as graph ops: (period in seconds float64, found bool) scalars."""
    a = _Analysis.at(sample_rate)
    nothing = (tf.constant(0.0, F64), tf.constant(False))
    if a.max_lag <= a.min_lag + 2:
        return nothing
    x = tf.cast(x, F64)
    d = decimate(x, a.factor) if a.factor >= 2 else x
    size = tf.size(d)

    def estimate():
        n_frames = tf.minimum(_MAX_FRAMES, 1 + (size - a.frame) // a.hop)
        starts = _linspace_starts(size - a.frame, n_frames)
        frames = tf.gather(d, starts[:, None] + tf.range(a.frame)[None, :])
        frames = frames - tf.reduce_mean(frames, axis=1, keepdims=True)
        rms = tf.sqrt(tf.reduce_mean(frames ** 2, axis=1))
        loud_level = _percentile(rms, 95)

        def voiced_period():
            loud = tf.boolean_mask(frames, rms >= _RELATIVE_ENERGY_FLOOR * loud_level)
            loud.set_shape([None, a.frame])
            return _median_period(loud, a)

        return tf.cond(loud_level > 0, voiced_period, lambda: nothing)

    return tf.cond(size < a.frame, lambda: nothing, estimate)


def _median_period(frames, a: _Analysis):
    """(median period over the voiced rows of `frames`, found) or nothing when too few are voiced."""
    hann = np.hanning(a.frame)
    win = hann[a.order + 1:-1]
    acf_window = _autocorrelation(tf.constant(win[None, :]), a.max_lag + 2)[0]
    residual = _lp_residual(frames, tf.constant(hann), a.order)
    residual = residual[:, :-2] + 2.0 * residual[:, 1:-1] + residual[:, 2:]  # [1, 2, 1]: ~0.25 ms at 8 kHz
    residual = (residual - tf.reduce_mean(residual, axis=1, keepdims=True)) * win

    acf = _autocorrelation(residual, a.max_lag + 2)
    energy = acf[:, :1]
    safe = tf.where(energy > 0, energy, tf.ones_like(energy))
    normalised = tf.where(energy > 0, acf / safe, tf.zeros_like(acf)) / (acf_window / acf_window[0])
    # segment[:, j] is lag min_lag - 1 + j; candidates are the interior lags min_lag..max_lag.
    segment = normalised[:, a.min_lag - 1:a.max_lag + 2]
    centre = segment[:, 1:-1]
    is_peak = (centre >= segment[:, :-2]) & (centre >= segment[:, 2:])  # a falling edge is not a period
    values = tf.where(is_peak, centre, tf.constant(-np.inf, F64))
    best = tf.reduce_max(values, axis=1)
    voiced = best >= _VOICING_THRESHOLD
    count = tf.reduce_sum(tf.cast(voiced, F64))
    needed = tf.maximum(tf.constant(float(_MIN_VOICED_FRAMES), F64),
                        _MIN_VOICED_FRACTION * tf.cast(tf.shape(frames)[0], F64))

    def period():
        v, s, b = tf.boolean_mask(values, voiced), tf.boolean_mask(segment, voiced), tf.boolean_mask(best, voiced)
        j = tf.argmax(tf.cast(v >= 0.9 * b[:, None], tf.int32), axis=1, output_type=tf.int32)
        left = tf.gather(s, j, batch_dims=1)
        mid = tf.gather(s, j + 1, batch_dims=1)
        right = tf.gather(s, j + 2, batch_dims=1)
        curvature = left - 2.0 * mid + right
        safe_c = tf.where(curvature < 0, curvature, -tf.ones_like(curvature))
        shift = tf.where(curvature < 0, 0.5 * (left - right) / safe_c, tf.zeros_like(curvature))
        lag = a.min_lag + tf.cast(j, F64) + tf.clip_by_value(shift, -0.5, 0.5)
        return _median(lag) / a.rate, tf.constant(True)

    return tf.cond(count < needed, lambda: (tf.constant(0.0, F64), tf.constant(False)), period)


def _linspace_starts(stop, count):
    """`np.linspace(0, stop, count).astype(int64)` as int32 (the last start exactly `stop`)."""
    step = tf.cast(stop, F64) / tf.cast(tf.maximum(count - 1, 1), F64)
    starts = tf.range(count, dtype=F64) * step
    starts = tf.where((tf.range(count) == count - 1) & (count > 1), tf.cast(stop, F64), starts)
    return tf.cast(starts, tf.int32)


def _percentile(values, q: float):
    """numpy's percentile (method "linear", including its interpolation from the upper side when t >= 0.5)."""
    v = tf.sort(values)
    n = tf.size(v)
    virtual = tf.cast(n - 1, F64) * (q / 100.0)
    lower = tf.floor(virtual)
    t = virtual - lower
    lo = tf.cast(lower, tf.int32)
    hi = tf.minimum(lo + 1, n - 1)
    a, b = tf.gather(v, lo), tf.gather(v, hi)
    diff = b - a
    return tf.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)


def _median(values):
    v = tf.sort(values)
    n = tf.size(v)
    mid = n // 2
    odd = tf.equal(n % 2, 1)
    return tf.where(odd, tf.gather(v, mid), (tf.gather(v, tf.maximum(mid - 1, 0)) + tf.gather(v, mid)) / 2.0)


def _lp_residual(frames, window, order: int):
    """Linear-prediction residual of each row (autocorrelation method), without the first `order` samples."""
    r = _autocorrelation(frames * window, order + 1)
    # A little white-noise correction keeps the recursion stable for very tonal frames (the caller only
    # passes frames with energy, so r[:, 0] > 0).
    r = tf.concat([r[:, :1] * (1.0 + 1e-6), r[:, 1:]], axis=1)
    a = _levinson(r, order)
    length = frames.shape[1]
    residual = frames[:, order:]
    for k in range(1, order + 1):
        residual = residual + a[k][:, None] * frames[:, order - k:length - k]
    return residual


def _levinson(r, order: int):
    """Levinson-Durbin for all rows at once; returns [1, a1, ..., a_order] (columns) with
    e[n] = sum_k a_k x[n-k]."""
    a = [tf.ones_like(r[:, 0])] + [tf.zeros_like(r[:, 0]) for _ in range(order)]
    err = r[:, 0]
    for i in range(1, order + 1):
        acc = r[:, i]
        if i > 1:
            acc = acc + tf.reduce_sum(tf.stack([a[j] * r[:, i - j] for j in range(1, i)], axis=1), axis=1)
        k = -acc / err
        a[1:i] = [a[j] + k * a[i - j] for j in range(1, i)]
        a[i] = k
        err = err * (1.0 - k * k)
    return a


def _autocorrelation(rows, lags: int):
    """Autocorrelation of each row `[rows, n]` (n known when tracing) for lags 0..lags-1, via the FFT."""
    n = rows.shape[1]
    size = 1 << int(np.ceil(np.log2(n + lags)))
    spectrum = tf.signal.rfft(rows, fft_length=[size])
    return tf.signal.irfft(spectrum * tf.math.conj(spectrum), fft_length=[size])[:, :lags]
