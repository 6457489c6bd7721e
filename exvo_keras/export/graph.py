"""The package's signal steps written with core TensorFlow ops only, for graphs that load without exvo_keras.

Everything here runs inside an exported SavedModel, so it uses `tf.*` ops and nothing else: no numpy or scipy
at run time, no Keras, no tensorflow-io. The functions are traced without AutoGraph (Keras' `ExportArchive`
does that), so all data-dependent control flow is explicit (`tf.cond`, `tf.while_loop`, `tf.map_fn`).
Constants that do not depend on the input (analysis windows, the decimation filter of the pitch estimate) are
computed here with numpy/scipy when the graph is built and embedded as tensors, so they are bit-identical to
what the numpy implementations use.

What each function mirrors:

- `batch_windows`: `exvo_keras.data.pipeline.frame_windows` + `normalise_windows` on a padded batch: 10 ms
  frames, one 250 ms window (frames i-12 ... i+12, ends repeating the first/last frame) every `hop_frames`
  frames, each window z-normalised with the same std floor. A clip shorter than one frame is zero-padded to one.
- `pool_by_clip`: `exvo_keras.data.pipeline.pool_by_clip` (mean and population std per clip, in float64).
- `zff_batch` / `zff`: `exvo_keras.signal.zff` exactly as the package runs it: float64 throughout, the trend
  window from `average_pitch_period` (LP residual autocorrelation over up to 800 frames at 8 kHz, median over
  voiced frames, 10 ms fallback), reflection padding of the whole signal by one margin, blocks of at most 10 s
  with 0.3 s margins, trend removal after each double integration, global peak normalisation. Against the
  numpy version the output differs by round-off only (FFT and reduction order; at most 1.4e-9 of the peak on
  0.06-12 s test signals), far below the float32 the signal is cached in.
- `resample_poly`: scipy's `resample_poly` (Kaiser window, beta 5, `20 * max(up, down) + 1` taps, the same
  alignment and output length), with the filter designed in the graph for any integer input rate. The graph
  computes in float64; the package's loader calls scipy on float32 audio, and scipy (>= 1.13) then designs
  and applies the filter in float32. The two agree to float32 round-off: see `exvo_keras.export` for the
  measured difference.
"""

from __future__ import annotations

import importlib

import numpy as np
import tensorflow as tf

from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.data.pipeline import CONTEXT_FRAMES, FRAME_SAMPLES, STD_FLOOR, WINDOW_SAMPLES
# the module (the package re-exports its function under the same name)
zff_np = importlib.import_module("exvo_keras.signal.zff")

F64 = tf.float64

# ---------------------------------------------------------------------------------------------------------
# Resampling (scipy.signal.resample_poly)


def _sinc(x):
    """numpy's sinc: sin(pi x) / (pi x), with x = 0 replaced by 1e-20 as numpy does."""
    y = np.pi * tf.where(tf.equal(x, 0.0), tf.constant(1e-20, F64), x)
    return tf.sin(y) / y


def kaiser_lowpass(num_taps, cutoff, beta: float = 5.0):
    """scipy's `firwin(num_taps, cutoff, window=("kaiser", beta))` (cutoff relative to Nyquist), float64."""
    num_taps = tf.cast(num_taps, tf.int64)
    n = tf.range(num_taps, dtype=F64)
    alpha = 0.5 * (tf.cast(num_taps, F64) - 1.0)
    m = n - alpha
    cutoff = tf.cast(cutoff, F64)
    h = cutoff * _sinc(cutoff * m)
    window = tf.math.special.bessel_i0(beta * tf.sqrt(1.0 - ((n - alpha) / alpha) ** 2)) / \
        tf.math.special.bessel_i0(tf.constant(beta, F64))
    h = h * window
    return h / tf.reduce_sum(h)


def _gcd(a, b):
    """Greatest common divisor of two positive int64 scalars (Euclid's algorithm as a graph loop)."""
    def body(a, b):
        return b, tf.math.floormod(a, b)

    a, _ = tf.while_loop(lambda a, b: b > 0, body, (a, b))
    return a


def resample_poly(x, up, down, taps=None):
    """scipy's `resample_poly(x, up, down)` (zero padding outside the signal) of a 1-D signal, in float64.

    Args:
        x: `[samples]` float signal.
        up, down: integer factors (scalars or tensors; reduced by their gcd here).
        taps: the filter to use instead of designing it (numpy array from scipy's `firwin`), for constant factors.

    Each output sample is a dot product of the `ceil(taps / up) + 1` input samples its filter phase touches,
    gathered as a `[outputs, taps / up]` matrix: memory grows with both, e.g. 57 values per output sample for
    44.1 kHz -> 16 kHz.
    """
    x = tf.cast(x, F64)
    up = tf.cast(up, tf.int64)
    down = tf.cast(down, tf.int64)
    g = _gcd(up, down)
    up, down = up // g, down // g
    n = tf.size(x, out_type=tf.int64)
    max_rate = tf.maximum(up, down)
    half_len = 10 * max_rate
    length = 2 * half_len + 1
    if taps is None:
        h = kaiser_lowpass(length, 1.0 / tf.cast(max_rate, F64))
    else:
        h = tf.constant(np.asarray(taps, np.float64))
    h = h * tf.cast(up, F64)
    n_pre_pad = down - tf.math.floormod(half_len, down)
    n_pre_remove = (half_len + n_pre_pad) // down
    n_out = (n * up) // down + tf.cast(tf.math.floormod(n * up, down) > 0, tf.int64)
    # Output m is the full convolution of the up-sampled signal with [0] * n_pre_pad + h at
    # (m + n_pre_remove) * down; only every up-th tap meets a real input sample.
    p = (tf.range(n_out, dtype=tf.int64) + n_pre_remove) * down - n_pre_pad
    k = tf.range((length + up - 1) // up + 1, dtype=tf.int64)
    i = p[:, None] // up - k[None, :]
    t = p[:, None] - i * up
    valid = (t >= 0) & (t < length) & (i >= 0) & (i < n)
    xs = tf.gather(x, tf.clip_by_value(i, 0, tf.maximum(n - 1, 0)))
    hs = tf.gather(h, tf.clip_by_value(t, 0, length - 1))
    y = tf.reduce_sum(tf.where(valid, xs * hs, tf.zeros_like(xs)), axis=1)
    same = tf.equal(up, down)
    return tf.cond(same, lambda: x, lambda: y)


def to_sample_rate(x, rate, target: int = SAMPLE_RATE):
    """A 1-D float32 signal at `rate` (int tensor) resampled to `target` Hz (unchanged when equal), float32."""
    rate = tf.cast(rate, tf.int64)
    return tf.cond(tf.equal(rate, target), lambda: tf.cast(x, tf.float32),
                   lambda: tf.cast(resample_poly(x, tf.constant(target, tf.int64), rate), tf.float32))


def decode_wav_batch(wavs):
    """`[batch]` encoded wav files -> (waveform `[batch, samples]` float32 at 16 kHz, zero-padded; lengths `[batch]`
    int32). First channel of each file; other rates resampled in the graph (`resample_poly`).

    `tf.audio.decode_wav` reads 16-bit PCM wav only; anything else (24/32-bit, float, compressed) fails the call.
    """
    def one(data):
        audio, rate = tf.audio.decode_wav(data)
        return to_sample_rate(audio[:, 0], rate)

    ragged = tf.map_fn(one, wavs, fn_output_signature=tf.RaggedTensorSpec(shape=[None], dtype=tf.float32,
                                                                           ragged_rank=0))
    return ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32)


# ---------------------------------------------------------------------------------------------------------
# Batches of clips


def valid_lengths(waveform, lengths):
    """Lengths clipped to [0, padded length]: a batch never reads outside itself."""
    return tf.clip_by_value(tf.cast(lengths, tf.int32), 0, tf.shape(waveform)[1])


def sample_mask(waveform, lengths):
    """`[batch, samples]` 1 for the samples of each clip, 0 for padding (float32)."""
    return tf.sequence_mask(lengths, tf.shape(waveform)[1], dtype=tf.float32)


def batch_windows(waveform, lengths, hop_frames: int):
    """Every clip's 250 ms windows, z-normalised: (windows `[windows, 4000]` float32, clip index `[windows]`).

    Window counts and contents equal `exvo_keras.data.pipeline.clip_windows` on each clip's own samples.
    """
    batch = tf.shape(waveform)[0]
    samples = tf.shape(waveform)[1]
    frames = tf.maximum(lengths // FRAME_SAMPLES, 1)
    counts = (frames + hop_frames - 1) // hop_frames
    clip = tf.repeat(tf.range(batch), counts)
    centres = tf.ragged.range(counts).flat_values * hop_frames
    offsets = tf.range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)
    last = tf.gather(frames, clip) - 1
    frame = tf.clip_by_value(centres[:, None] + offsets[None, :], 0, last[:, None])
    sample = frame[:, :, None] * FRAME_SAMPLES + tf.range(FRAME_SAMPLES)[None, None, :]
    # Samples past a clip's end exist only in a clip shorter than one frame: zero, as frame_windows pads it.
    inside = sample < tf.gather(lengths, clip)[:, None, None]
    flat = tf.where(inside, clip[:, None, None] * samples + sample, 0)
    values = tf.gather(tf.reshape(waveform, [-1]), flat)
    windows = tf.reshape(tf.where(inside, values, tf.zeros_like(values)), [-1, WINDOW_SAMPLES])
    mean = tf.reduce_mean(windows, axis=-1, keepdims=True)
    std = tf.math.reduce_std(windows, axis=-1, keepdims=True)
    return (windows - mean) / tf.maximum(std, STD_FLOOR), clip


def in_chunks(fn, rows, width: int, chunk: int = 1024):
    """`fn` over `rows` `[n, ...]` in chunks of at most `chunk` rows (bounded memory for long batches) ->
    `[n, width]`. Chunks are of equal size, so at most one row per chunk is padding."""
    n = tf.shape(rows)[0]
    n_chunks = tf.maximum((n + chunk - 1) // chunk, 1)
    size = tf.maximum((n + n_chunks - 1) // n_chunks, 1)
    pad = n_chunks * size - n
    padded = tf.pad(rows, [[0, pad]] + [[0, 0]] * (len(rows.shape) - 1))
    parts = tf.reshape(padded, tf.concat([[n_chunks, size], tf.shape(rows)[1:]], axis=0))
    out = tf.map_fn(fn, parts, parallel_iterations=1,
                    fn_output_signature=tf.TensorSpec([None, width], tf.float32))
    return tf.reshape(out, [-1, width])[:n]


def pool_by_clip(values, clip, batch):
    """Mean and population std of rows grouped by clip, in float64: (`[batch, dims]`, `[batch, dims]`)."""
    values = tf.cast(values, F64)
    count = tf.math.unsorted_segment_sum(tf.ones_like(clip, F64), clip, batch)[:, None]
    mean = tf.math.unsorted_segment_sum(values, clip, batch) / count
    deviation = values - tf.gather(mean, clip)
    return mean, tf.sqrt(tf.math.unsorted_segment_sum(deviation * deviation, clip, batch) / count)


def normalize_clips(waveform, lengths, eps: float):
    """Per clip, over its own samples: `(x - mean) / sqrt(var + eps)` in float64 (Hugging Face's do_normalize,
    as `exvo_keras.features.ssl.normalize_clip`); padding stays zero."""
    mask = tf.cast(sample_mask(waveform, lengths), F64)
    x = tf.cast(waveform, F64) * mask
    count = tf.maximum(tf.cast(lengths, F64), 1.0)[:, None]
    mean = tf.reduce_sum(x, axis=1, keepdims=True) / count
    var = tf.reduce_sum(tf.square((x - mean) * mask), axis=1, keepdims=True) / count
    return tf.cast((x - mean) / tf.sqrt(var + eps) * mask, tf.float32)


# ---------------------------------------------------------------------------------------------------------
# Zero-frequency filtering (exvo_keras.signal.zff), float64


_RATE = SAMPLE_RATE
_FACTOR = int(_RATE // zff_np._ANALYSIS_RATE)
_A_RATE = _RATE / max(_FACTOR, 1)
_FRAME = int(round(zff_np._FRAME_SECONDS * _A_RATE))
_HOP = int(round(zff_np._HOP_SECONDS * _A_RATE))
_MIN_LAG = int(np.ceil(zff_np.MIN_PERIOD_SECONDS * _A_RATE))
_MAX_LAG = int(np.floor(zff_np.MAX_PERIOD_SECONDS * _A_RATE))
_ORDER = int(_A_RATE // 1000) + 2
# zff's margin is max(0.3 s, 6 trend windows); at 16 kHz the longest window (a median lag of at most
# MAX_LAG + 0.5) is 363 samples, so the margin is always 0.3 s and the block layout is fixed.
_MARGIN = int(round(zff_np.MIN_MARGIN_SECONDS * _RATE))
_LONGEST_WINDOW = zff_np.trend_window_samples(np.zeros(1), _RATE,
                                              zff_np.WINDOW_FACTOR * (_MAX_LAG + 0.5) / _A_RATE)
assert 6 * _LONGEST_WINDOW <= _MARGIN, "the in-graph ZFF assumes a fixed 0.3 s margin"
_CORE = int(round(zff_np.DEFAULT_BLOCK_SECONDS * _RATE)) - 2 * _MARGIN


def _decimation_taps() -> np.ndarray:
    """The filter scipy's resample_poly(x, 1, FACTOR) designs for float64 input (the pitch estimate's)."""
    from scipy.signal import firwin

    return firwin(2 * 10 * _FACTOR + 1, 1.0 / _FACTOR, window=("kaiser", 5.0))


def _autocorrelation(rows, lags: int):
    """Autocorrelation of each row for lags 0..lags-1 via the FFT (float64), as zff._autocorrelation."""
    n = rows.shape[1]
    size = 1 << int(np.ceil(np.log2(n + lags)))
    spectrum = tf.signal.rfft(rows, fft_length=[size])
    return tf.signal.irfft(spectrum * tf.math.conj(spectrum), fft_length=[size])[:, :lags]


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


def _lp_residual(frames, window):
    """zff._lp_residual: Levinson-Durbin on the windowed autocorrelation, residual of the unwindowed frames."""
    order = _ORDER
    r = _autocorrelation(frames * window, order + 1)
    r = tf.concat([r[:, :1] * (1.0 + 1e-6), r[:, 1:]], axis=1)
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
    length = frames.shape[1]
    residual = frames[:, order:]
    for k in range(1, order + 1):
        residual = residual + a[k][:, None] * frames[:, order - k:length - k]
    return residual


def average_pitch_period(x):
    """`zff.average_pitch_period` of a float64 16 kHz signal: (period in seconds, found) as float64/bool scalars."""
    taps = _decimation_taps()
    hann = np.hanning(_FRAME)
    win = hann[_ORDER + 1:-1]
    acf_window = zff_np._autocorrelation(win[None, :], _MAX_LAG + 2)[0]
    acf_window = tf.constant(acf_window / acf_window[0])
    hann = tf.constant(hann)
    win = tf.constant(win)
    d = resample_poly(x, 1, _FACTOR, taps=taps) if _FACTOR >= 2 else x
    size = tf.size(d)
    nothing = (tf.constant(0.0, F64), tf.constant(False))

    def estimate():
        n_frames = tf.minimum(zff_np._MAX_FRAMES, 1 + (size - _FRAME) // _HOP)
        stop = tf.cast(size - _FRAME, F64)
        step = stop / tf.cast(tf.maximum(n_frames - 1, 1), F64)
        starts = tf.range(n_frames, dtype=F64) * step
        starts = tf.where((tf.range(n_frames) == n_frames - 1) & (n_frames > 1), stop, starts)
        starts = tf.cast(starts, tf.int32)
        frames = tf.gather(d, starts[:, None] + tf.range(_FRAME)[None, :])
        frames = frames - tf.reduce_mean(frames, axis=1, keepdims=True)
        rms = tf.sqrt(tf.reduce_mean(frames ** 2, axis=1))
        loud_level = _percentile(rms, 95)

        def voiced_period():
            loud = tf.boolean_mask(frames, rms >= zff_np._RELATIVE_ENERGY_FLOOR * loud_level)
            loud.set_shape([None, _FRAME])
            residual = _lp_residual(loud, hann)
            residual = residual[:, :-2] + 2.0 * residual[:, 1:-1] + residual[:, 2:]
            residual = (residual - tf.reduce_mean(residual, axis=1, keepdims=True)) * win
            acf = _autocorrelation(residual, _MAX_LAG + 2)
            energy = acf[:, :1]
            safe = tf.where(energy > 0, energy, tf.ones_like(energy))
            normalised = tf.where(energy > 0, acf / safe, tf.zeros_like(acf)) / acf_window
            segment = normalised[:, _MIN_LAG - 1:_MAX_LAG + 2]
            centre = segment[:, 1:-1]
            is_peak = (centre >= segment[:, :-2]) & (centre >= segment[:, 2:])
            values = tf.where(is_peak, centre, tf.constant(-np.inf, F64))
            best = tf.reduce_max(values, axis=1)
            voiced = best >= zff_np._VOICING_THRESHOLD
            count = tf.reduce_sum(tf.cast(voiced, F64))
            needed = tf.maximum(tf.constant(float(zff_np._MIN_VOICED_FRAMES), F64),
                                zff_np._MIN_VOICED_FRACTION * tf.cast(tf.shape(loud)[0], F64))

            def period():
                v = tf.boolean_mask(values, voiced)
                s = tf.boolean_mask(segment, voiced)
                b = tf.boolean_mask(best, voiced)
                j = tf.argmax(tf.cast(v >= 0.9 * b[:, None], tf.int32), axis=1, output_type=tf.int32)
                left = tf.gather(s, j, batch_dims=1)
                mid = tf.gather(s, j + 1, batch_dims=1)
                right = tf.gather(s, j + 2, batch_dims=1)
                curvature = left - 2.0 * mid + right
                safe_c = tf.where(curvature < 0, curvature, -tf.ones_like(curvature))
                shift = tf.where(curvature < 0, 0.5 * (left - right) / safe_c, tf.zeros_like(curvature))
                lag = _MIN_LAG + tf.cast(j, F64) + tf.clip_by_value(shift, -0.5, 0.5)
                return _median(lag) / _A_RATE, tf.constant(True)

            return tf.cond(count < needed, lambda: nothing, period)

        return tf.cond(loud_level > 0, voiced_period, lambda: nothing)

    return tf.cond(size < _FRAME, lambda: nothing, estimate)


def trend_window(x):
    """`zff.trend_window_samples(x, 16000)`: odd window length (int32) from the average pitch period."""
    period, found = average_pitch_period(x)
    seconds = tf.where(found, zff_np.WINDOW_FACTOR * period, tf.constant(zff_np.FALLBACK_WINDOW_SECONDS, F64))
    # Python's round() and tf.round both round half to even.
    return tf.maximum(3, 2 * tf.cast(tf.round(seconds * _RATE / 2.0), tf.int32) + 1)


def _remove_trend(y, window):
    """zff._remove_trend: y minus its centred moving average over `window`, averaging only covered samples."""
    n = tf.size(y)
    half = window // 2
    y = y - tf.reduce_mean(y)
    c = tf.concat([tf.zeros([1], F64), tf.cumsum(y)], axis=0)
    idx = tf.range(n)
    hi = tf.minimum(idx + half + 1, n)
    lo = tf.maximum(idx - half, 0)
    return y - (tf.gather(c, hi) - tf.gather(c, lo)) / tf.cast(hi - lo, F64)


def _zff_block(x, window):
    d = tf.concat([tf.zeros([1], F64), x[1:] - x[:-1]], axis=0)
    d = d - tf.reduce_mean(d)
    y = tf.cumsum(tf.cumsum(d))
    y = _remove_trend(_remove_trend(y, window), window)
    y = tf.cumsum(tf.cumsum(y))
    return _remove_trend(y, window)


def _reflect_index(n, width):
    """Indices of numpy's `np.pad(x, width, mode="reflect")` for a length-n signal (n >= 2), repeated reflection
    included (period 2(n - 1))."""
    i = tf.range(-width, n + width)
    period = 2 * (n - 1)
    j = tf.math.floormod(i, period)
    return tf.where(j >= n, period - j, j)


def zff(x):
    """`exvo_keras.signal.zff(x, 16000)` of a 1-D signal, float64 in, float64 out (peak 1, or all zeros)."""
    x = tf.cast(x, F64)
    n = tf.size(x)

    def filtered():
        window = trend_window(x)
        # At 16 kHz six windows (at most 6 * 361 samples) never exceed 0.3 s: the margin is a constant.
        padded = tf.gather(x, _reflect_index(n, _MARGIN))
        blocks = (n + _CORE - 1) // _CORE

        def body(b, parts):
            start = b * _CORE
            stop = tf.minimum(start + _CORE, n)
            block = _zff_block(padded[start:stop + 2 * _MARGIN], window)
            return b + 1, parts.write(b, block[_MARGIN:_MARGIN + stop - start])

        parts = tf.TensorArray(F64, size=blocks, infer_shape=False, element_shape=[None])
        _, parts = tf.while_loop(lambda b, _: b < blocks, body, (0, parts))
        z = parts.concat()
        peak = tf.reduce_max(tf.abs(z))
        ok = tf.math.is_finite(peak) & (peak > 0.0)
        return tf.where(ok, z / tf.where(ok, peak, tf.ones_like(peak)), tf.zeros_like(z))

    return tf.cond(n < 2, lambda: tf.zeros([n], F64), filtered)


def zff_batch(waveform, lengths):
    """ZFF of every clip of a padded batch over its own samples, as the signal cache stores it (float32);
    padding stays zero."""
    samples = tf.shape(waveform)[1]

    def one(args):
        x, length = args
        z = tf.cast(zff(x[:length]), tf.float32)
        return tf.pad(z, [[0, samples - length]])

    return tf.map_fn(one, (waveform, lengths), fn_output_signature=tf.TensorSpec([None], tf.float32))
