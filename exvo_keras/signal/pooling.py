"""Mean and population standard deviation of frame vectors: every utterance embedding of the paper.

One implementation, in TensorFlow and float64, for every caller: the frame CNNs' window rows tagged with their
clip (batches mix windows of several clips), the SSL encoders' padded frame sequences with a frame mask, and the
exported graphs. float64 because a clip can have thousands of frames and the std is taken as a second pass over
the deviations; the few values per clip make the cost negligible next to the networks that produce the frames.
Both forms divide by the number of frames (``ddof=0``), as ``np.std``.
"""

from __future__ import annotations

import tensorflow as tf

POOLING = "mean+std"  # the name stores record; std is the population one (ddof=0)


def segment_mean_std(values, segment_ids, num_segments):
    """Rows `[n, dims]` grouped by `segment_ids` `[n]` (int) -> (mean, std), each `[num_segments, dims]` float64.

    A segment without rows gives NaN (0 / 0) rather than a silent zero.
    """
    values = tf.cast(values, tf.float64)
    segment_ids = tf.cast(segment_ids, tf.int32)
    count = tf.math.unsorted_segment_sum(tf.ones_like(values[:, :1]), segment_ids, num_segments)
    mean = tf.math.unsorted_segment_sum(values, segment_ids, num_segments) / count
    deviation = values - tf.gather(mean, segment_ids)
    variance = tf.math.unsorted_segment_sum(deviation * deviation, segment_ids, num_segments) / count
    return mean, tf.sqrt(variance)


def masked_mean_std(frames, frame_mask=None):
    """`[batch, frames, dims]` (+ mask `[batch, frames]`, 1 = frame, 0 = padding) -> `[batch, 2 * dims]` float64,
    ``[mean, std]`` over each sequence's valid frames (NaN for a sequence without any)."""
    frames = tf.convert_to_tensor(frames)
    shape = tf.shape(frames)
    if frame_mask is None:
        frame_mask = tf.ones(shape[:2], tf.bool)
    keep = tf.cast(frame_mask, tf.bool)
    rows = tf.boolean_mask(frames, keep)
    sequence = tf.where(keep)[:, 0]
    mean, std = segment_mean_std(rows, sequence, shape[0])
    return tf.concat([mean, std], axis=-1)
