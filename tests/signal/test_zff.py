"""Zero-frequency filtering: glottal closure instants on synthetic voices, the output contract, block seams,
numerical precision on long signals, degenerate inputs, and the pitch-driven trend window."""

import numpy as np
import pytest
from scipy.signal import lfilter

from exvo_keras.signal import average_pitch_period, epochs, trend_window_samples, zff

FS = 16000
TOLERANCE = 16  # +/-1 ms at 16 kHz
FORMANTS = ((500, 80), (1500, 120), (2500, 160), (3500, 200))


def _vocal_tract(excitation, formants=FORMANTS):
    a = np.array([1.0])
    for freq, bandwidth in formants:
        r = np.exp(-np.pi * bandwidth / FS)
        a = np.convolve(a, [1.0, -2.0 * r * np.cos(2 * np.pi * freq / FS), r * r])
    return lfilter([1.0], a, excitation)


def voice(f0_start, f0_end, seconds, *, pulse="impulse", jitter=0.01, snr_db=35.0, lead=0.2, seed=0):
    """Voiced speech-like signal with silence (and noise) around it; returns (signal, true GCI samples).

    The excitation is the glottal flow derivative with its sharp negative peak at each closure: either a
    negative impulse, or the derivative of a Rosenberg pulse (40 % opening, 16 % closing, then closed).
    f0 glides linearly from f0_start to f0_end with `jitter` relative period jitter and 5 % shimmer.
    """
    rng = np.random.default_rng(seed)
    n = int(round((seconds + 2 * lead) * FS))
    flow_derivative = np.zeros(n)
    gcis = []
    t = 0.0
    while t < seconds:
        period = (1.0 / (f0_start + (f0_end - f0_start) * t / seconds)) * (1.0 + jitter * rng.standard_normal())
        amplitude = 1.0 + 0.05 * rng.standard_normal()
        start = int(round((lead + t) * FS))
        if pulse == "impulse":
            gci = start
            flow_derivative[gci] -= amplitude
        else:
            opening, closing = int(round(0.4 * period * FS)), int(round(0.16 * period * FS))
            flow = np.concatenate([0.5 * (1 - np.cos(np.pi * np.arange(opening) / opening)),
                                   np.cos(np.pi * np.arange(closing) / (2 * closing)), [0.0]])
            flow_derivative[start:start + flow.size] += amplitude * np.diff(flow, prepend=0.0)
            gci = start + opening + closing
        gcis.append(gci)
        t += period
    x = _vocal_tract(flow_derivative)
    x /= np.max(np.abs(x))
    voiced = slice(int(lead * FS), n - int(lead * FS))
    x += np.sqrt(np.mean(x[voiced] ** 2)) * 10 ** (-snr_db / 20) * rng.standard_normal(n)
    return x, np.array(gcis)


def gci_scores(found, true, tolerance=TOLERANCE):
    """(identification rate, false alarms per true GCI, errors in samples) within the voiced region."""
    found = np.sort(found)
    found = found[(found >= true[0] - tolerance) & (found <= true[-1] + tolerance)]
    used = np.zeros(found.size, dtype=bool)
    errors = []
    for t in true:
        free = np.flatnonzero(~used & (np.abs(found - t) <= tolerance))
        if free.size:
            best = free[np.argmin(np.abs(found[free] - t))]
            used[best] = True
            errors.append(found[best] - t)
    return len(errors) / true.size, (found.size - used.sum()) / true.size, np.array(errors)


def naive_zff(x, window, dtype):
    """Textbook ordering in one block and one precision: four integrations, then three trend removals."""
    y = np.diff(x.astype(dtype), prepend=dtype(x[0]))
    for _ in range(4):
        y = np.cumsum(y, dtype=dtype)
    half, n = window // 2, y.size
    idx = np.arange(n)
    hi, lo = np.minimum(idx + half + 1, n), np.maximum(idx - half, 0)
    for _ in range(3):
        c = np.concatenate([np.zeros(1, dtype=dtype), np.cumsum(y, dtype=dtype)])
        y = y - ((c[hi] - c[lo]) / (hi - lo)).astype(dtype)
    return y / np.max(np.abs(y))


@pytest.mark.parametrize("f0_start, f0_end, pulse", [
    (100, 180, "impulse"), (200, 250, "impulse"), (100, 180, "rosenberg"), (200, 250, "rosenberg")],
    ids=["male-impulse", "female-impulse", "male-rosenberg", "female-rosenberg"])
def test_epochs_find_the_glottal_closures_of_synthetic_voices(f0_start, f0_end, pulse):
    x, true = voice(f0_start, f0_end, 1.5, pulse=pulse)
    rate, false_alarms, errors = gci_scores(epochs(zff(x, FS)), true)
    assert rate >= 0.95
    assert false_alarms <= 0.05
    # ZFF's bias on these signals is a couple of samples; a shifted or misaligned filter shows up here.
    assert np.median(np.abs(errors)) <= 4


def test_output_contract_and_input_types():
    x, true = voice(120, 160, 1.0)
    x *= 0.5
    z = zff(x, FS)
    assert z.shape == x.shape and z.dtype == np.float64
    assert np.max(np.abs(z)) == 1.0
    assert np.abs(zff(x.astype(np.float32), FS) - z).max() < 1e-5
    z16 = zff(np.round(x * 32767).astype(np.int16), FS)
    assert z16.dtype == np.float64
    assert np.abs(z16 - z).max() < 2e-3  # int16 quantisation noise, low-passed by the filter
    in_voice = slice(true[0] - TOLERANCE, true[-1] + TOLERANCE)
    e64 = epochs(z[in_voice])
    e16 = epochs(z16[in_voice])
    assert e64.size == e16.size and np.abs(e64 - e16).max() <= 1


def test_epochs_are_negative_to_positive_crossings():
    z = np.array([-1.0, 1.0, -1.0, 0.0, 0.0, 2.0, 1.0, -1.0, 0.0, -1.0, 3.0, 0.0])
    np.testing.assert_array_equal(epochs(z), [1, 3, 10])
    assert epochs(np.array([1.0, -1.0, 0.0, -2.0])).size == 0
    assert epochs(np.zeros(10)).size == 0 and epochs(np.array([])).size == 0
    assert epochs(z).dtype == np.int64


def test_matches_the_textbook_ordering_in_extended_precision():
    """Trend removal after each double integration is the same filter as removing it after all four."""
    x, _ = voice(100, 180, 0.3, lead=0.05)
    window = trend_window_samples(x, FS)
    margin = max(int(0.3 * FS), 6 * window)
    padded = np.pad(x, margin, mode="reflect")
    extended = np.finfo(np.longdouble).eps < 1e-18
    reference = naive_zff(padded, window, np.longdouble if extended else np.float64)[margin:-margin]
    reference = reference.astype(np.float64)
    reference /= np.max(np.abs(reference))
    assert np.abs(zff(x, FS) - reference).max() < (1e-7 if extended else 1e-4)
    # A window a few samples off is already a different filter: the comparison can tell.
    assert np.abs(zff(x, FS, window_seconds=(window + 40) / FS) - reference).max() > 1e-3


def test_blocks_leave_no_seams():
    x, true = voice(90, 200, 25.0, lead=0.5, seed=3)
    whole = zff(x, FS, block_seconds=None)
    blocked = zff(x, FS)  # 10 s blocks: seams near 9.4 s and 18.8 s
    small = zff(x, FS, block_seconds=2.0)  # 1.4 s kept per block: 17 seams
    assert np.abs(blocked - whole).max() < 1e-6
    assert np.abs(small - whole).max() < 1e-6
    np.testing.assert_array_equal(epochs(blocked), epochs(whole))
    np.testing.assert_array_equal(epochs(small), epochs(whole))
    rate, false_alarms, _ = gci_scores(epochs(blocked), true)
    assert rate >= 0.95 and false_alarms <= 0.05


def test_long_signal_keeps_its_precision():
    x, true = voice(100, 180, 30.0, seed=1)
    z = zff(x, FS)
    assert np.isfinite(z).all()
    last = true[true > true[-1] - 3 * FS]
    rate, false_alarms, _ = gci_scores(epochs(z), last)
    assert rate >= 0.95 and false_alarms <= 0.05
    # The same filter computed the textbook way in float32 breaks down on this signal.
    window = trend_window_samples(x, FS)
    rate32, false_alarms32, _ = gci_scores(epochs(naive_zff(x, window, np.float32)), last)
    assert rate32 < 0.9 or false_alarms32 > 0.1


@pytest.mark.parametrize("x", [
    np.zeros(0), np.zeros(1), np.array([0.3, -0.2]), np.arange(10.0), np.zeros(FS), np.full(FS // 2, 0.1),
    np.full(300, 1234, dtype=np.int16), np.random.default_rng(0).standard_normal(50).astype(np.float32)],
    ids=["empty", "one", "two", "ten", "silence", "constant", "int16-constant", "short-noise"])
def test_degenerate_inputs_stay_finite(x):
    z = zff(x, FS)
    assert z.shape == x.shape and z.dtype == np.float64
    assert np.isfinite(z).all()
    assert np.max(np.abs(z), initial=0.0) <= 1.0
    if x.size and np.all(x == x[0]):
        assert not z.any()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        zff(np.zeros((2, 100)), FS)
    with pytest.raises(ValueError):
        zff(np.zeros(100), FS, block_seconds=0.5)
    with pytest.raises(ValueError):
        zff(np.zeros(100), FS, window_seconds=0.0)
    with pytest.raises(ValueError):
        zff(np.array([0.0, np.nan, 1.0]), FS)


def test_trend_window_follows_pitch():
    rng = np.random.default_rng(2)
    pulses = {}
    for f0 in (100, 200):
        x = np.zeros(2 * FS)
        x[::FS // f0] = 1.0
        pulses[f0] = x + 0.01 * rng.standard_normal(x.size)
    assert average_pitch_period(pulses[100], FS) == pytest.approx(0.010, rel=0.1)
    assert average_pitch_period(pulses[200], FS) == pytest.approx(0.005, rel=0.1)
    assert trend_window_samples(pulses[100], FS) == pytest.approx(1.5 * 160, abs=3)
    assert trend_window_samples(pulses[200], FS) == pytest.approx(1.5 * 80, abs=3)
    # Through a vocal tract and gliding: the average period of the glide, not a formant's.
    male, _ = voice(100, 180, 1.5)
    female, _ = voice(200, 250, 1.5)
    assert 1 / 180 < average_pitch_period(male, FS) < 1 / 100
    assert 1 / 250 < average_pitch_period(female, FS) < 1 / 200
    # No clear periodicity: None, and the 10 ms fallback window.
    noise = rng.standard_normal(2 * FS)
    assert average_pitch_period(noise, FS) is None
    assert average_pitch_period(np.zeros(FS), FS) is None
    assert average_pitch_period(pulses[100][:400], FS) is None  # shorter than one analysis frame
    assert trend_window_samples(noise, FS) == 161
    assert trend_window_samples(noise, FS, window_seconds=0.004) == 65
