"""Framing: 25-frame windows with Idiap's edge padding, window counts and hops, z-normalisation with a std floor,
and a padded batch giving every clip the windows it gets alone."""

import numpy as np
import pytest
import tensorflow as tf

from exvo_keras.signal.framing import (CONTEXT_FRAMES, FRAME_SAMPLES, STD_FLOOR, WINDOW_SAMPLES, batch_windows,
                                       clip_windows, num_windows)


def reference_windows(x, hop=1):
    """Numpy: frames i-12 .. i+12 of every hop-th frame (ends repeated, a short clip zero-padded), z-normalised."""
    x = np.asarray(x, np.float64)
    n = max(x.size // FRAME_SAMPLES, 1)
    x = np.pad(x, (0, max(n * FRAME_SAMPLES - x.size, 0)))[:n * FRAME_SAMPLES]
    frames = x.reshape(n, FRAME_SAMPLES)
    index = np.clip(np.arange(0, n, hop)[:, None] + np.arange(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1), 0, n - 1)
    windows = frames[index].reshape(-1, WINDOW_SAMPLES)
    std = np.maximum(windows.std(axis=1, keepdims=True), STD_FLOOR)
    return (windows - windows.mean(axis=1, keepdims=True)) / std


def test_window_is_25_frames_with_idiap_edge_padding():
    x = np.arange(1000, dtype=np.float32)  # 6 whole frames; the 40 trailing samples are dropped
    w = clip_windows(x).numpy()
    assert w.shape == (6, WINDOW_SAMPLES) == (6, 4000) and w.dtype == np.float32
    frames = x[:960].reshape(6, FRAME_SAMPLES)
    # window 0 = frame 0 repeated 12 times, frames 0..5, then frame 5 repeated 7 times
    expected = np.concatenate([frames[0]] * 12 + list(frames) + [frames[5]] * 7)
    np.testing.assert_allclose(w[0], (expected - expected.mean()) / expected.std(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(w, reference_windows(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("samples,hop", [(16000, 1), (16000, 10), (16159, 1), (16160, 3), (100, 1), (4000, 5),
                                         (0, 1)])
def test_window_counts_and_contents(samples, hop):
    x = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    w = clip_windows(x, hop).numpy()
    assert w.shape[0] == num_windows(samples, hop)
    np.testing.assert_allclose(w, reference_windows(x, hop), rtol=0, atol=2e-5)
    assert num_windows(16000, 1) == 100 and num_windows(16000, 10) == 10


def test_hop_takes_every_kth_window():
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    np.testing.assert_array_equal(clip_windows(x, 4).numpy(), clip_windows(x, 1).numpy()[::4])


def test_windows_are_z_normalised_with_a_std_floor():
    rng = np.random.default_rng(0)
    loud = (3 + 2 * rng.standard_normal(4000)).astype(np.float32)
    w = clip_windows(np.concatenate([loud, np.full(8000, 5.0, np.float32)]), 25).numpy()
    assert abs(w[0].mean()) < 1e-5 and abs(w[0].std() - 1) < 1e-4
    np.testing.assert_array_equal(w[-1], 0.0)  # a silent (constant) window stays finite


def test_a_padded_batch_gives_each_clip_its_own_windows():
    clips = [np.random.default_rng(n).standard_normal(n).astype(np.float32) for n in (100, 160, 3999, 8123, 0)]
    waveform = np.full((len(clips), 9000), 9.0, np.float32)  # padding values must not matter
    for i, c in enumerate(clips):
        waveform[i, :c.size] = c
    lengths = np.array([c.size for c in clips], np.int32)
    windows, clip = tf.function(lambda w, n: batch_windows(w, n, 3))(waveform, lengths)
    expected = [clip_windows(c, 3).numpy() for c in clips]
    np.testing.assert_array_equal(clip.numpy(), np.repeat(np.arange(len(clips)), [len(e) for e in expected]))
    np.testing.assert_array_equal(windows.numpy(), np.concatenate(expected))
