"""Frozen copy of the numpy ZFF of commit 2b96e07 (`git show 2b96e07:exvo_keras/signal/zff.py`), unchanged below
this paragraph: the reference the TensorFlow implementation is held to (within 1e-9 of the peak). Not to be
edited or imported by the package.

Zero-frequency filtering (ZFF) of speech and the glottal closure instants it reveals.

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
"""

from __future__ import annotations

import numpy as np

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
        margin = max(int(round(MIN_MARGIN_SECONDS * sample_rate)), 6 * window)
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

    padded = _reflect_pad(x, margin)
    z = np.empty(n)
    for start in range(0, n, core):
        stop = min(start + core, n)
        # padded[start] is x[start - margin]: the block spans x[start - margin : stop + margin].
        z[start:stop] = _zff_block(padded[start:stop + 2 * margin], window)[margin:margin + stop - start]

    peak = np.max(np.abs(z))
    if not np.isfinite(peak) or peak <= 0.0:
        return np.zeros(n)
    return z / peak


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
        period = average_pitch_period(x, sample_rate)
        window_seconds = FALLBACK_WINDOW_SECONDS if period is None else WINDOW_FACTOR * period
    if not window_seconds > 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    return max(3, 2 * int(round(window_seconds * sample_rate / 2.0)) + 1)


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
    x = np.asarray(x, dtype=np.float64)
    factor = int(sample_rate // _ANALYSIS_RATE)
    if factor >= 2:
        from scipy.signal import resample_poly

        x = resample_poly(x, 1, factor)
    rate = sample_rate / max(factor, 1)
    frame = int(round(_FRAME_SECONDS * rate))
    hop = int(round(_HOP_SECONDS * rate))
    min_lag = int(np.ceil(MIN_PERIOD_SECONDS * rate))
    max_lag = int(np.floor(MAX_PERIOD_SECONDS * rate))
    order = int(rate // 1000) + 2
    if x.size < frame or max_lag <= min_lag + 2:
        return None

    n_frames = min(_MAX_FRAMES, 1 + (x.size - frame) // hop)
    starts = np.linspace(0, x.size - frame, n_frames).astype(np.int64)
    frames = x[starts[:, None] + np.arange(frame)]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    loud_level = np.percentile(rms, 95)
    if not loud_level > 0:
        return None
    frames = frames[rms >= _RELATIVE_ENERGY_FLOOR * loud_level]

    window = np.hanning(frame)
    residual = _lp_residual(frames, window, order)
    residual = residual[:, :-2] + 2.0 * residual[:, 1:-1] + residual[:, 2:]  # [1, 2, 1]: ~0.25 ms at 8 kHz
    win = window[order + 1:-1]
    residual = (residual - residual.mean(axis=1, keepdims=True)) * win

    acf = _autocorrelation(residual, max_lag + 2)
    acf_window = _autocorrelation(win[None, :], max_lag + 2)[0]
    energy = acf[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(energy > 0, acf / energy, 0.0) / (acf_window / acf_window[0])
    # segment[:, j] is lag min_lag - 1 + j; candidates are the interior lags min_lag..max_lag.
    segment = normalised[:, min_lag - 1:max_lag + 2]
    centre = segment[:, 1:-1]
    is_peak = (centre >= segment[:, :-2]) & (centre >= segment[:, 2:])  # a falling edge is not a period
    values = np.where(is_peak, centre, -np.inf)
    best = values.max(axis=1)
    voiced = best >= _VOICING_THRESHOLD
    if voiced.sum() < max(_MIN_VOICED_FRAMES, _MIN_VOICED_FRACTION * len(frames)):
        return None
    values, segment, best = values[voiced], segment[voiced], best[voiced]
    j = np.argmax(values >= 0.9 * best[:, None], axis=1)
    rows = np.arange(j.size)
    left, mid, right = segment[rows, j], segment[rows, j + 1], segment[rows, j + 2]
    curvature = left - 2.0 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    lag = min_lag + j + np.clip(shift, -0.5, 0.5)
    return float(np.median(lag)) / rate


def _zff_block(x: np.ndarray, window: int) -> np.ndarray:
    """Unnormalised ZFF of one block; exact only at more than ~2 windows from its ends."""
    d = np.diff(x, prepend=x[0])
    d -= d.mean()
    y = np.cumsum(np.cumsum(d))
    y = _remove_trend(_remove_trend(y, window), window)
    y = np.cumsum(np.cumsum(y))
    return _remove_trend(y, window)


def _remove_trend(y: np.ndarray, window: int) -> np.ndarray:
    """y minus its centred moving average over an odd window, averaging only the samples covered."""
    n = y.size
    half = window // 2
    # Subtracting the mean first keeps the running sum, and so its rounding error, small.
    y = y - y.mean()
    c = np.empty(n + 1)
    c[0] = 0.0
    np.cumsum(y, out=c[1:])
    if n < window:
        idx = np.arange(n)
        hi, lo = np.minimum(idx + half + 1, n), np.maximum(idx - half, 0)
        return y - (c[hi] - c[lo]) / (hi - lo)
    mean = np.empty(n)
    mean[half:n - half] = (c[window:] - c[:n - window + 1]) / window
    # The first and last `half` samples see a truncated window: divide by what it covers.
    head = np.arange(half)
    mean[:half] = c[head + half + 1] / (head + half + 1)
    tail = np.arange(n - half, n)
    mean[n - half:] = (c[n] - c[tail - half]) / (n - tail + half)
    y -= mean
    return y


def _reflect_pad(x: np.ndarray, width: int) -> np.ndarray:
    """x extended by its mirror image (without repeating the end samples) on both sides, repeatedly if short."""
    return np.pad(x, width, mode="reflect")


def _lp_residual(frames: np.ndarray, window: np.ndarray, order: int) -> np.ndarray:
    """Linear-prediction residual of each row (autocorrelation method), without the first `order` samples."""
    r = _autocorrelation(frames * window, order + 1)
    # A little white-noise correction keeps the recursion stable for very tonal frames (the caller only
    # passes frames with energy, so r[:, 0] > 0).
    r[:, 0] *= 1.0 + 1e-6
    a = _levinson(r, order)
    length = frames.shape[1]
    residual = frames[:, order:].copy()
    for k in range(1, order + 1):
        residual += a[:, k:k + 1] * frames[:, order - k:length - k]
    return residual


def _levinson(r: np.ndarray, order: int) -> np.ndarray:
    """Levinson-Durbin for all rows at once; returns [1, a1, ..., a_order] with e[n] = sum_k a_k x[n-k]."""
    rows = r.shape[0]
    a = np.zeros((rows, order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        acc = r[:, i] + np.einsum("ij,ij->i", a[:, 1:i], r[:, i - 1:0:-1])
        k = -acc / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1:0:-1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a


def _autocorrelation(rows: np.ndarray, lags: int) -> np.ndarray:
    """Autocorrelation of each row for lags 0..lags-1, via the FFT."""
    n = rows.shape[1]
    size = 1 << int(np.ceil(np.log2(n + lags)))
    spectrum = np.fft.rfft(rows, size, axis=1)
    return np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, :lags]
