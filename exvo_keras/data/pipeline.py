"""tf.data pipelines of 250 ms windows for the frame CNNs (Idiap's recipe, FACTS.md).

A clip is cut into 10 ms frames (160 samples); the window of frame i is frames i-12 … i+12 (4,000 samples),
frames beyond either end repeating the first or last frame. One window every `hop_frames` frames (1 = the
paper's 10 ms). Each window is z-normalised (std floored at 1e-3). All of it runs as TensorFlow ops on whole
clips; Python only hands over one clip at a time.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

FRAME_SAMPLES = 160
CONTEXT_FRAMES = 12
WINDOW_SAMPLES = FRAME_SAMPLES * (2 * CONTEXT_FRAMES + 1)
STD_FLOOR = 1e-3


def num_windows(num_samples: int, hop_frames: int = 1) -> int:
    """Windows a clip of `num_samples` gives: one per started hop over its whole 10 ms frames (at least one)."""
    frames = max(num_samples // FRAME_SAMPLES, 1)
    return -(-frames // hop_frames)


def frame_windows(x, hop_frames: int = 1) -> tf.Tensor:
    """`[samples]` -> `[windows, 4000]`, edges padded by repeating the first/last 10 ms frame."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = tf.maximum(tf.shape(x)[0] // FRAME_SAMPLES, 1)
    # a clip shorter than one frame is zero-padded to one frame
    x = tf.pad(x, [[0, tf.maximum(n * FRAME_SAMPLES - tf.shape(x)[0], 0)]])
    frames = tf.reshape(x[: n * FRAME_SAMPLES], [n, FRAME_SAMPLES])
    centres = tf.range(0, n, hop_frames)
    offsets = tf.range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)
    index = tf.clip_by_value(centres[:, None] + offsets[None, :], 0, n - 1)
    return tf.reshape(tf.gather(frames, index), [-1, WINDOW_SAMPLES])


def normalise_windows(windows: tf.Tensor) -> tf.Tensor:
    """Zero mean, unit variance per window; the std floor keeps silent windows from blowing up."""
    mean = tf.reduce_mean(windows, axis=-1, keepdims=True)
    std = tf.math.reduce_std(windows, axis=-1, keepdims=True)
    return (windows - mean) / tf.maximum(std, STD_FLOOR)


def clip_windows(x, hop_frames: int = 1) -> tf.Tensor:
    return normalise_windows(frame_windows(x, hop_frames))


def _clips(load: Callable[[int], np.ndarray], order: Callable[[], Sequence[int]]):
    def generate():
        for i in order():
            yield load(int(i)), np.int32(i)
    return tf.data.Dataset.from_generator(
        generate, output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)))


def training_windows(load: Callable[[int], np.ndarray], labels: np.ndarray, *, hop_frames: int, batch_size: int,
                     seed: int, shuffle_buffer: int = 20000, lengths: Sequence[int] | None = None,
                     first_epoch: int = 0) -> tf.data.Dataset:
    """Shuffled batches of (window, label) over all clips, reshuffled every epoch from `seed`.

    Args:
        load: clip index -> float32 signal (e.g. from a SignalCache).
        labels: class label of each clip; every window of a clip carries it.
        hop_frames: one window every this many 10 ms frames.
        batch_size: windows per batch (256 in the recipe).
        seed: fixes the clip order and the window shuffle of every epoch.
        shuffle_buffer: windows mixed across clips (memory: 16 kB each).
        lengths: the clips' lengths in samples, if known: the dataset then declares its number of batches, so
            Keras shows whole-epoch progress instead of discovering the end of the data.
        first_epoch: the epoch the first iteration is (a resumed run continues the clip orders it would have had).
    """
    labels = np.asarray(labels, np.int32)
    epoch = {"n": first_epoch}

    def order():
        # a new clip order each epoch, reproducible from the seed
        rng = np.random.default_rng([seed, epoch["n"]])
        epoch["n"] += 1
        return rng.permutation(len(labels))

    label_table = tf.constant(labels)

    def to_windows(x, i):
        w = clip_windows(x, hop_frames)
        return tf.data.Dataset.from_tensor_slices((w, tf.fill([tf.shape(w)[0]], label_table[i])))

    ds = _clips(load, order).flat_map(to_windows)
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if lengths is not None:
        windows = sum(num_windows(int(n), hop_frames) for n in lengths)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-windows // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def inference_windows(load: Callable[[int], np.ndarray], count: int, *, hop_frames: int,
                      batch_size: int = 1024) -> tf.data.Dataset:
    """Batches of (window, clip index) over clips 0..count-1 in order, windows of several clips per batch."""
    def to_windows(x, i):
        w = clip_windows(x, hop_frames)
        return tf.data.Dataset.from_tensor_slices((w, tf.fill([tf.shape(w)[0]], i)))

    return _clips(load, lambda: range(count)).flat_map(to_windows).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def pool_by_clip(values: np.ndarray, clip_index: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation of window rows grouped by clip: `[count, dims]` each."""
    values = np.asarray(values, np.float64)
    n = np.bincount(clip_index, minlength=count).astype(np.float64)[:, None]
    if (n == 0).any():
        raise ValueError(f"clips without windows: {np.flatnonzero(n[:, 0] == 0)[:5]}")
    total = np.zeros((count, values.shape[1]))
    np.add.at(total, clip_index, values)
    mean = total / n
    sq = np.zeros_like(total)
    np.add.at(sq, clip_index, (values - mean[clip_index]) ** 2)
    return mean, np.sqrt(sq / n)
