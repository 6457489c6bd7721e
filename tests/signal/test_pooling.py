"""Mean/std pooling against numpy: window rows grouped by clip and padded frame sequences with a mask, in float64
with the population std; a group without rows is NaN, not a silent zero."""

import numpy as np
import tensorflow as tf

from exvo_keras.signal.pooling import masked_mean_std, segment_mean_std


def test_segment_pooling_equals_numpy_per_group():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(6), [1, 5, 300, 2, 40, 7])
    order = rng.permutation(groups.size)  # rows of a group need not be adjacent
    values = (100 + 3 * rng.standard_normal((groups.size, 4))).astype(np.float32)[order]
    mean, std = segment_mean_std(values, groups[order], 6)
    assert mean.dtype == tf.float64 and mean.shape == std.shape == (6, 4)
    for g in range(6):
        rows = values[groups[order] == g].astype(np.float64)
        np.testing.assert_allclose(mean[g], rows.mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(std[g], rows.std(axis=0), rtol=1e-12, atol=1e-14)
    assert not np.asarray(std[0]).any()  # one row: std 0 (ddof=0)


def test_a_group_without_rows_is_nan():
    mean, std = segment_mean_std(np.ones((3, 2), np.float32), np.array([0, 0, 2]), 3)
    assert np.isnan(mean[1]).all() and np.isnan(std[1]).all()
    np.testing.assert_array_equal(mean[2], [1.0, 1.0])


def test_masked_pooling_reads_only_the_valid_frames():
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((3, 50, 8)).astype(np.float32)
    valid = np.array([50, 17, 1])
    mask = np.arange(50)[None, :] < valid[:, None]
    frames[~mask] = 1e6  # padding frames must not count
    pooled = masked_mean_std(frames, mask).numpy()
    assert pooled.shape == (3, 16) and pooled.dtype == np.float64
    for i, n in enumerate(valid):
        seq = frames[i, :n].astype(np.float64)
        np.testing.assert_allclose(pooled[i], np.concatenate([seq.mean(0), seq.std(0)]), rtol=1e-12, atol=1e-14)
    whole = frames[0].astype(np.float64)  # no mask: every frame counts
    np.testing.assert_allclose(masked_mean_std(frames[:1]).numpy()[0], np.concatenate([whole.mean(0), whole.std(0)]),
                               rtol=1e-12)
    assert np.isnan(masked_mean_std(frames, np.zeros((3, 50), bool)).numpy()).all()
