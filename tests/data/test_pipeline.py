import numpy as np
import pytest

from exvo_keras.data.pipeline import (FRAME_SAMPLES, WINDOW_SAMPLES, frame_windows, inference_windows,
                                      normalise_windows, num_windows, pool_by_clip, training_windows)


def test_window_is_25_frames_with_idiap_edge_padding():
    x = np.arange(1000, dtype=np.float32)  # 6 whole frames; the 40 trailing samples are dropped
    w = frame_windows(x).numpy()
    assert w.shape == (6, WINDOW_SAMPLES) == (6, 4000)
    frames = x[:960].reshape(6, FRAME_SAMPLES)
    # window 0 = frame 0 repeated 12 times, frames 0..5, then frame 5 repeated 7 times
    expected = np.concatenate([frames[0]] * 12 + list(frames) + [frames[5]] * 7)
    np.testing.assert_array_equal(w[0], expected)
    # window 3 is centred on frame 3
    np.testing.assert_array_equal(w[3][12 * FRAME_SAMPLES:13 * FRAME_SAMPLES], frames[3])


@pytest.mark.parametrize("samples,hop", [(16000, 1), (16000, 10), (16159, 1), (16160, 3), (100, 1), (4000, 5)])
def test_window_counts(samples, hop):
    w = frame_windows(np.zeros(samples, np.float32), hop).numpy()
    assert w.shape[0] == num_windows(samples, hop)
    assert num_windows(16000, 1) == 100 and num_windows(16000, 10) == 10


def test_hop_takes_every_kth_window():
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    np.testing.assert_array_equal(frame_windows(x, 4).numpy(), frame_windows(x, 1).numpy()[::4])


def test_windows_are_z_normalised_with_a_std_floor():
    rng = np.random.default_rng(0)
    w = normalise_windows(np.stack([3 + 2 * rng.standard_normal(4000), np.full(4000, 5.0)]).astype(np.float32))
    w = w.numpy()
    assert abs(w[0].mean()) < 1e-5 and abs(w[0].std() - 1) < 1e-4
    np.testing.assert_array_equal(w[1], 0.0)  # a silent window stays finite


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
    values = np.concatenate([w.numpy()[:, :3] for w, _ in batches])
    mean, std = pool_by_clip(values, index, 5)
    for k in range(5):
        np.testing.assert_allclose(mean[k], values[index == k].mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std[k], values[index == k].std(0), rtol=1e-6, atol=1e-6)
