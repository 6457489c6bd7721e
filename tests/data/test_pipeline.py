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
