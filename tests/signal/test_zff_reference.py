"""The TensorFlow ZFF against the numpy implementation it replaced (frozen in numpy_zff_reference.py): the same
output to within 1e-9 of the peak (in practice bit for bit) over lengths, sample rates, degenerate signals and
every option; the graph functions the export calls give the numpy interface's result; no retracing per clip."""

import importlib

import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import lfilter

import numpy_zff_reference as reference

zff_module = importlib.import_module("exvo_keras.signal.zff")
from exvo_keras.signal import average_pitch_period, trend_window_samples, zff  # noqa: E402
from exvo_keras.signal.numpy_order import NumpyMean  # noqa: E402

TOLERANCE = 1e-9  # of the peak, which both normalise to 1


def voiced(seconds, rate, f0=(110.0, 170.0), seed=0):
    """A gliding pulse train through two resonances, with noise and a silent lead: speech-like at any rate."""
    rng = np.random.default_rng(seed)
    n = max(int(round(seconds * rate)), 0)
    x = np.zeros(n)
    t = 0.05 * seconds
    while t < 0.95 * seconds:
        x[int(t * rate)] -= 1.0 + 0.05 * rng.standard_normal()
        t += 1.0 / (f0[0] + (f0[1] - f0[0]) * t / seconds)
    for freq, bandwidth in ((600.0, 90.0), (1700.0, 150.0)):
        if freq < rate / 2:
            r = np.exp(-np.pi * bandwidth / rate)
            x = lfilter([1.0], [1.0, -2.0 * r * np.cos(2 * np.pi * freq / rate), r * r], x)
    return x / max(np.max(np.abs(x), initial=0.0), 1e-12) + 0.003 * rng.standard_normal(n)


def assert_matches(x, rate, **options):
    expected = reference.zff(x, rate, **options)
    got = zff(x, rate, **options)
    assert got.shape == expected.shape and got.dtype == np.float64
    assert np.max(np.abs(got - expected), initial=0.0) <= TOLERANCE
    return got


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100])
@pytest.mark.parametrize("seconds", [0.06, 0.3, 2.6, 12.0, 30.0])
def test_voiced_signals_match_the_numpy_implementation(rate, seconds):
    if seconds == 30.0 and rate > 16000:
        pytest.skip("30 s only at 8 and 16 kHz: the longest signals cost the most and test no new path")
    x = voiced(seconds, rate, seed=int(seconds * 10))
    assert trend_window_samples(x, rate) == reference.trend_window_samples(x, rate)
    period, expected = average_pitch_period(x, rate), reference.average_pitch_period(x, rate)
    assert (period is None) == (expected is None)
    if expected is not None:
        assert period == pytest.approx(expected, rel=1e-12)
    assert_matches(x, rate)


@pytest.mark.parametrize("x", [
    np.zeros(2), np.array([0.3, -0.2]), np.arange(10.0), np.zeros(16000), np.full(8000, 0.1),
    np.random.default_rng(0).standard_normal(50), np.random.default_rng(1).standard_normal(5 * 16000),
    np.full(300, 1234, dtype=np.int16), np.random.default_rng(2).uniform(-1, 1, 4801).astype(np.float32)],
    ids=["two-zeros", "two", "ramp", "silence", "constant", "short-noise", "noise-5s", "int16-constant",
         "float32-noise-margin+1"])
def test_degenerate_signals_match(x):
    assert_matches(x, 16000)


@pytest.mark.parametrize("options", [
    {"window_seconds": 0.004}, {"window_seconds": 0.1}, {"block_seconds": None}, {"block_seconds": 2.0},
    {"margin_seconds": 0.05}, {"margin_seconds": 0.5, "block_seconds": 3.0},
    {"window_seconds": 0.02, "margin_seconds": 0.05, "block_seconds": 1.0}],
    ids=["short-window", "long-window-wide-margin", "one-block", "2s-blocks", "narrow-margin", "wide-margin",
         "all-options"])
def test_options_match(options):
    assert_matches(voiced(6.0, 16000, seed=4), 16000, **options)


def test_option_errors_match():
    x = voiced(1.0, 16000)
    for options in ({"block_seconds": 0.5}, {"window_seconds": 0.0}, {"margin_seconds": 0.001}):
        with pytest.raises(ValueError) as expected:
            reference.zff(x, 16000, **options)
        with pytest.raises(ValueError) as got:
            zff(x, 16000, **options)
        assert str(got.value) == str(expected.value)


def test_graph_functions_give_the_numpy_interfaces_result():
    """What the exported graph runs: `zero_frequency_filter` per clip and `zff_batch` over a padded batch."""
    clips = [voiced(s, 16000, seed=k).astype(np.float32) for k, s in enumerate((0.2, 1.1, 0.06, 2.0))]
    clips.append(np.zeros(1, np.float32))
    waveform = np.full((len(clips), max(c.size for c in clips) + 50), 0.5, np.float32)
    for i, c in enumerate(clips):
        waveform[i, :c.size] = c
    lengths = np.array([c.size for c in clips], np.int32)
    batch = tf.function(lambda w, n: zff_module.zff_batch(w, n, 16000), input_signature=[
        tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)])(waveform, lengths).numpy()
    single = tf.function(lambda x: zff_module.zero_frequency_filter(x, 16000),
                         input_signature=[tf.TensorSpec([None], tf.float64)])
    for i, c in enumerate(clips):
        np.testing.assert_array_equal(batch[i, :c.size], zff(c, 16000).astype(np.float32))
        assert not batch[i, c.size:].any()  # padding stays zero
        np.testing.assert_array_equal(single(c.astype(np.float64)).numpy(), zff(c, 16000))


def test_clips_of_any_length_reuse_one_trace_per_sample_rate():
    for n in (3000, 4000, 17000):
        zff(voiced(n / 16000, 16000), 16000)
        zff(voiced(n / 16000, 16000), 16000, window_seconds=0.01, block_seconds=None)
    assert zff_module._pitch_function(16000).experimental_get_tracing_count() == 1
    assert zff_module._filter_function().experimental_get_tracing_count() == 1


@pytest.mark.parametrize("n", [0, 1, 7, 8, 127, 128, 129, 135, 263, 1000, 4103, 8191, 8192, 8193, 24577, 70001])
def test_means_add_in_numpys_order(n):
    """The filter's means equal np.mean bit for bit (what keeps the output identical, not merely close)."""
    y = np.random.default_rng(n).standard_normal(n) * 1e3 + 7.0
    if n:
        assert _numpy_mean(y).numpy() == np.mean(y)
        # a length known when tracing too: Grappler then sees constants it could fold into another order
        assert tf.function(lambda y: NumpyMean(tf.size(y))(y))(tf.constant(y)).numpy() == np.mean(y)


_numpy_mean = tf.function(lambda y: NumpyMean(tf.size(y))(y),
                          input_signature=[tf.TensorSpec([None], tf.float64)])
