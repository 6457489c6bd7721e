"""The frame CNNs' tf.data pipelines: seeded shuffled training batches carrying clip labels, and inference batches
spanning clips in order that pool back per clip."""

import numpy as np

from exvo_keras.data.pipeline import clip_windows, inference_windows, num_windows, training_windows
from exvo_keras.signal.pooling import segment_mean_std


def test_training_windows_carry_their_clip_label_and_are_seeded():
    sigs = [np.full(1600 * (i + 1), float(i), np.float32) + np.linspace(0, 1, 1600 * (i + 1), dtype=np.float32)
            for i in range(6)]
    labels = np.array([5, 4, 3, 2, 1, 0])
    ds = training_windows(lambda i: sigs[i], labels, hop_frames=2, batch_size=8, seed=1)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    ys = np.concatenate(ys)
    assert len(ys) == sum(num_windows(len(s), 2) for s in sigs)
    assert np.bincount(ys, minlength=6).tolist() == [num_windows(len(sigs[5 - k]), 2) for k in range(6)]
    again = np.concatenate([y.numpy() for _, y in training_windows(lambda i: sigs[i], labels, hop_frames=2,
                                                                     batch_size=8, seed=1)])
    np.testing.assert_array_equal(ys, again)
    other = np.concatenate([y.numpy() for _, y in training_windows(lambda i: sigs[i], labels, hop_frames=2,
                                                                     batch_size=8, seed=2)])
    assert not np.array_equal(ys, other)


def test_inference_batches_span_clips_in_order_and_pool_back():
    sigs = [np.random.default_rng(i).standard_normal(800 + 400 * i).astype(np.float32) for i in range(5)]
    batches = list(inference_windows(lambda i: sigs[i], 5, hop_frames=1, batch_size=7))
    index = np.concatenate([i.numpy() for _, i in batches])
    assert (np.diff(index) >= 0).all() and np.bincount(index).tolist() == [num_windows(len(s)) for s in sigs]
    assert any(len(set(i.numpy())) > 1 for _, i in batches)  # windows of several clips share a batch
    windows = np.concatenate([w.numpy() for w, _ in batches])
    np.testing.assert_array_equal(windows, np.concatenate([clip_windows(s).numpy() for s in sigs]))
    values = windows[:, :3]
    mean, std = segment_mean_std(values, index, 5)
    for k in range(5):
        np.testing.assert_allclose(mean[k], values[index == k].mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std[k], values[index == k].std(0), rtol=1e-6, atol=1e-6)


def _cached(tmp_path, sigs):
    from exvo_keras.data.signals import ClipFiles, SignalCache

    cache = SignalCache(tmp_path / "cache", "raw", "test")
    cache.folder.mkdir(parents=True)
    for k, s in enumerate(sigs):
        np.save(cache.path(f"c{k}"), s)
    return ClipFiles(tuple(str(cache.path(f"c{k}")) for k in range(len(sigs))))


def test_cache_files_read_in_the_graph_give_the_loaders_batches_at_any_thread_count(tmp_path):
    sigs = [np.random.default_rng(i).standard_normal(1600 + 700 * i).astype(np.float32) for i in range(7)]
    labels = np.arange(7) % 3
    files = _cached(tmp_path, sigs)
    assert files.lengths() == [len(s) for s in sigs]

    def batches(clips, threads=None):
        ds = training_windows(clips, labels, hop_frames=3, batch_size=16, seed=4, first_epoch=2, threads=threads)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    reference = batches(lambda i: sigs[i])
    for threads in (None, 1, 2):
        got = batches(files, threads)
        assert len(got) == len(reference)
        for (x, y), (x0, y0) in zip(got, reference):
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)


def test_segments_of_cache_files_are_their_slices(tmp_path):
    from exvo_keras.data.signals import ClipFiles

    sigs = [np.random.default_rng(i).standard_normal(9000).astype(np.float32) for i in range(2)]
    whole = _cached(tmp_path, sigs)
    spans = ClipFiles(whole.files * 2, starts=(0, 800, 4000, 100), stops=(3200, -1, 99999, 2500))
    expected = [sigs[0][:3200], sigs[1][800:], sigs[0][4000:], sigs[1][100:2500]]
    assert spans.lengths() == [len(s) for s in expected]
    assert spans.subset([3, 0]).lengths() == [2400, 3200]
    got = np.concatenate([w.numpy() for w, _ in inference_windows(spans, 4, hop_frames=2)])
    np.testing.assert_array_equal(got, np.concatenate([clip_windows(s, 2).numpy() for s in expected]))


def test_a_file_that_is_not_a_cache_file_is_named(tmp_path):
    import pytest
    import tensorflow as tf

    from exvo_keras.data.signals import ClipFiles

    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(3000, np.float64))  # float64: not what a cache holds
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad.npy.*not a signal-cache file"):
        list(inference_windows(ClipFiles((str(bad),)), 1, hop_frames=1))
