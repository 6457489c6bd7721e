"""tf.data pipelines of the frame CNNs' 250 ms windows (`exvo_keras.signal.framing`), clips read in parallel.

Clips come from signal-cache files (:class:`ClipFiles`, read by graph ops) or, for signals held in memory, from
a Python loader (`tf.numpy_function`); either way reading, framing and z-normalisation run in
`map(num_parallel_calls=AUTOTUNE)` on TensorFlow's threads, as many clips at a time as there are cores, with the
same ops the exported graphs run on a padded batch. Output order is deterministic (`deterministic=True`): a
seed fixes every batch, whatever the number of threads.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from exvo_keras.data.signals import ClipFiles
# FRAME_SAMPLES is re-exported for callers that size clips by frames.
from exvo_keras.signal.framing import FRAME_SAMPLES, clip_windows, num_windows

__all__ = ["FRAME_SAMPLES", "ClipFiles", "clip_windows", "inference_windows", "num_windows", "training_windows"]


def _reader(clips) -> Callable[[tf.Tensor], tf.Tensor]:
    if isinstance(clips, ClipFiles):
        return clips.reader()

    def read(i):
        x = tf.numpy_function(lambda k: np.asarray(clips(int(k)), np.float32), [i], tf.float32, stateful=False)
        return tf.ensure_shape(x, [None])

    return read


def _windows_of(clips, hop_frames: int, tags, threads: int | None):
    """A dataset of clip positions -> (windows, tag of each window), clip by clip in order."""
    read = _reader(clips)
    tags = tf.constant(tags)

    def windows(i):
        w = clip_windows(read(i), hop_frames)
        return w, tf.fill([tf.shape(w)[0]], tags[i])

    def apply(positions: tf.data.Dataset) -> tf.data.Dataset:
        ds = positions.map(windows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
        if threads is not None:
            options = tf.data.Options()
            options.threading.private_threadpool_size = int(threads)
            ds = ds.with_options(options)
        return ds

    return apply


def training_windows(clips, labels: np.ndarray, *, hop_frames: int, batch_size: int, seed: int,
                     shuffle_buffer: int = 20000, lengths: Sequence[int] | None = None, first_epoch: int = 0,
                     threads: int | None = None, reshuffle: bool = True) -> tf.data.Dataset:
    """Shuffled batches of (window, label) over all clips, reshuffled every epoch from `seed`.

    Args:
        clips: the clips: `ClipFiles` (read in the graph), or clip index -> float32 signal (e.g. signals in
            memory).
        labels: class label of each clip; every window of a clip carries it.
        hop_frames: one window every this many 10 ms frames.
        batch_size: windows per batch (256 in the recipe).
        seed: fixes the clip order and the window shuffle of every epoch.
        shuffle_buffer: windows mixed across clips (memory: 16 kB each).
        lengths: the clips' lengths in samples, if known: the dataset then declares its number of batches, so
            Keras shows whole-epoch progress instead of discovering the end of the data.
        first_epoch: the epoch the first iteration is (a resumed run continues the clip orders it would have had).
        threads: size of the dataset's own thread pool (None: TensorFlow's shared pool, all cores).
        reshuffle: False gives every iteration `first_epoch`'s clip order (a validation set: the same batches
            each epoch without holding its windows in memory, which `.cache()` would at 16 kB a window).
    """
    labels = np.asarray(labels, np.int32)
    epoch = {"n": first_epoch}

    def order():
        # One clip order per epoch, reproducible from the seed; Python hands over one array an epoch, nothing
        # per clip or window.
        rng = np.random.default_rng([seed, epoch["n"]])
        epoch["n"] += int(reshuffle)
        yield rng.permutation(len(labels)).astype(np.int32)

    positions = tf.data.Dataset.from_generator(order, output_signature=tf.TensorSpec([None], tf.int32)).unbatch()
    ds = positions.apply(_windows_of(clips, hop_frames, labels, threads))
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if lengths is not None:
        windows = sum(num_windows(int(n), hop_frames) for n in lengths)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-windows // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def inference_windows(clips, count: int, *, hop_frames: int, batch_size: int = 1024,
                      threads: int | None = None) -> tf.data.Dataset:
    """Batches of (window, clip index) over clips 0..count-1 in order, windows of several clips per batch."""
    positions = tf.data.Dataset.range(count).map(lambda i: tf.cast(i, tf.int32))
    ds = positions.apply(_windows_of(clips, hop_frames, np.arange(count, dtype=np.int32), threads))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
