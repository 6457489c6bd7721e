"""Resampling: scipy's resample_poly, in float64, for every pair of rates the loader and the exported graphs meet
(both code paths: blocks of outputs through one tap matrix, and taps gathered per output where that matrix would
be too large), with bounded memory."""

from math import gcd

import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import resample_poly as scipy_resample_poly

import exvo_keras.signal.resample as resample_module
from exvo_keras.signal.resample import kaiser_lowpass, resample, resample_poly, to_sample_rate

RATES = (8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000)


def _traced(fn, *specs):
    return tf.function(fn, input_signature=[tf.TensorSpec([None], tf.float64), *specs])


_resample_poly = _traced(resample_poly, tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64))


@pytest.mark.parametrize("up, down", [(1, 2), (1, 3), (1, 12), (2, 1), (160, 441), (441, 160), (2, 3), (3, 2),
                                      (640, 441), (4, 4), (16000, 16001)])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 40, 999, 24001])
def test_equals_scipy_in_float64(up, down, n):
    x = np.random.default_rng(n).uniform(-1, 1, n)
    got = _resample_poly(x, np.int64(up), np.int64(down)).numpy()
    expected = scipy_resample_poly(x, up, down) if n else np.zeros(0)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


def test_filter_is_scipys_firwin():
    from scipy.signal import firwin

    for taps, cutoff in ((41, 0.5), (8821, 1 / 441), (12801, 1 / 640)):
        np.testing.assert_allclose(kaiser_lowpass(taps, cutoff).numpy(), firwin(taps, cutoff, window=("kaiser", 5.0)),
                                   rtol=0, atol=1e-15)


@pytest.mark.parametrize("rate", [44100, 8000])
def test_loader_path_against_scipy_on_float32_audio(rate):
    """What the audio loader did before (scipy on float32, which designs and filters in float32) and does now
    (this filter in float64, rounded to float32): within 5e-7 on full-scale audio; equal to scipy in float64."""
    x = (0.9 * np.random.default_rng(rate).uniform(-1, 1, 3 * rate)).astype(np.float32)
    g = gcd(rate, 16000)
    got = resample(x, rate, 16000)
    assert got.dtype == np.float32 and got.shape == (48000,)
    assert np.abs(got - scipy_resample_poly(x, 16000 // g, rate // g)).max() < 5e-7
    np.testing.assert_allclose(got, scipy_resample_poly(x.astype(np.float64), 16000 // g, rate // g), rtol=0,
                               atol=6e-8)  # float32 rounding of the same float64 values


@pytest.mark.parametrize("rate", [44100, 8000, 48000])
def test_the_gathered_path_in_bounded_chunks_equals_the_matrix_path(monkeypatch, rate):
    """No tap matrix allowed and a tiny gather budget (many chunks, a ragged last one): the same output."""
    x = np.random.default_rng(0).uniform(-1, 1, rate)
    blocked = resample(x, rate, 16000)
    monkeypatch.setattr(resample_module, "WEIGHTS_BUDGET", 0)
    monkeypatch.setattr(resample_module, "GATHER_BUDGET", 1000)
    resample_module._resample_function.cache_clear()
    try:
        np.testing.assert_allclose(resample(x, rate, 16000), blocked, rtol=0, atol=1e-7)
    finally:
        resample_module._resample_function.cache_clear()


def test_to_sample_rate_in_a_graph_serves_any_rate_with_one_trace():
    f = tf.function(lambda x, rate: to_sample_rate(x, rate, 16000),
                    input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)])
    for rate in RATES + (16000,):
        x = np.random.default_rng(rate).uniform(-1, 1, rate // 5).astype(np.float32)
        g = gcd(rate, 16000)
        expected = scipy_resample_poly(x.astype(np.float64), 16000 // g, rate // g).astype(np.float32)
        got = f(x, np.int32(rate)).numpy()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
        if rate == 16000:
            np.testing.assert_array_equal(got, x)  # the same rate passes through untouched
    assert f.experimental_get_tracing_count() == 1
