"""Utterance functionals: mean and (population) standard deviation over frames.

Every utterance embedding of the paper is the mean and standard deviation of frame vectors, concatenated as
``[mean, std]`` (so ``2 * dims`` values). Two places compute it:

- :func:`masked_mean_std` (here): on a padded batch of frame sequences ``[batch, frames, dims]`` with a frame
  mask, in the model's graph (Keras ops, so it runs wherever the encoder runs, GPU included). The SSL encoders
  use it: only the pooled ``[batch, 2 * dims]`` comes back from the device.
- :func:`exvo_keras.data.pipeline.pool_by_clip`: on window rows tagged with their clip index (the frame CNNs'
  batches mix windows of several clips), in numpy.

Both take the population standard deviation (divide by the number of frames, ``ddof=0``), as ``np.std``.
"""

from __future__ import annotations

import numpy as np
from keras import ops

POOLING = "mean+std"  # the name stores record; std is the population one (ddof=0)


def masked_mean_std(frames, frame_mask=None):
    """``[batch, frames, dims]`` (+ mask ``[batch, frames]``, 1 = frame, 0 = padding) -> ``[batch, 2 * dims]``.

    Mean and population standard deviation over each sequence's valid frames, concatenated ``[mean, std]``.
    Two passes (the deviations from the mean are squared), which keeps float32 accurate for long sequences.
    A sequence with no valid frame gives NaN, rather than a silent zero.
    """
    frames = ops.convert_to_tensor(frames)
    if frame_mask is None:
        mean = ops.mean(frames, axis=1)
        var = ops.mean(ops.square(frames - ops.expand_dims(mean, 1)), axis=1)
        return ops.concatenate([mean, ops.sqrt(var)], axis=-1)
    mask = ops.expand_dims(ops.cast(frame_mask, frames.dtype), -1)
    count = ops.sum(mask, axis=1)
    mean = ops.sum(frames * mask, axis=1) / count
    var = ops.sum(ops.square((frames - ops.expand_dims(mean, 1)) * mask), axis=1) / count
    return ops.concatenate([mean, ops.sqrt(var)], axis=-1)


def mean_std(frames: np.ndarray) -> np.ndarray:
    """One sequence ``[frames, dims]`` -> ``[2 * dims]`` float32 (numpy, computed in float64)."""
    frames = np.asarray(frames, np.float64)
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)
