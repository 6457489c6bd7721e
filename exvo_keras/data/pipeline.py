"""tf.data pipelines of the frame CNNs' 250 ms windows (`exvo_keras.signal.framing`), one clip at a time.

Python only hands over one clip at a time; framing and z-normalisation run as TensorFlow ops on the whole clip,
the same ops the exported graphs run on a padded batch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

# FRAME_SAMPLES is re-exported for callers that size clips by frames.
from exvo_keras.signal.framing import FRAME_SAMPLES, clip_windows, num_windows

__all__ = ["FRAME_SAMPLES", "clip_windows", "inference_windows", "num_windows", "training_windows"]


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
