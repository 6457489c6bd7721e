"""The frame CNNs' input: z-normalised 250 ms windows of 10 ms frames (Idiap's recipe, FACTS.md).

A clip is cut into 10 ms frames (160 samples); the window of frame i is frames i-12 ... i+12 (4,000 samples),
frames beyond either end repeating the first or last frame. One window every `hop_frames` frames (1 = the
paper's 10 ms). A clip shorter than one frame is zero-padded to one. Each window is z-normalised (population
std, floored at 1e-3 so that silent windows stay finite).

One implementation in core TensorFlow ops for the training and inference pipelines (a batch of one clip) and the
exported graphs (padded batches): the windows of a clip are the same tensors either way.
"""

from __future__ import annotations

import tensorflow as tf

FRAME_SAMPLES = 160
CONTEXT_FRAMES = 12
WINDOW_SAMPLES = FRAME_SAMPLES * (2 * CONTEXT_FRAMES + 1)
STD_FLOOR = 1e-3


def num_windows(num_samples: int, hop_frames: int = 1) -> int:
    """Windows a clip of `num_samples` gives: one per started hop over its whole 10 ms frames (at least one)."""
    frames = max(num_samples // FRAME_SAMPLES, 1)
    return -(-frames // hop_frames)


def batch_windows(waveform, lengths, hop_frames: int = 1):
    """Every clip's windows, z-normalised.

    Args:
        waveform: `[batch, samples]` float, each clip zero-padded (or padded with anything: only the first
            `lengths[i]` samples of row i are read).
        lengths: `[batch]` int, samples of each clip (at most `samples`).
        hop_frames: one window every this many frames.

    Returns:
        (windows `[windows, 4000]` float32, clip index of each window `[windows]` int32), clip by clip in order,
        `num_windows(lengths[i], hop_frames)` windows for clip i.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    batch, samples = tf.shape(waveform)[0], tf.shape(waveform)[1]
    # Zeros past each clip's end: only a clip shorter than one frame reads any of them.
    x = tf.where(tf.sequence_mask(lengths, samples), waveform, tf.zeros_like(waveform))
    slots = tf.maximum((samples + FRAME_SAMPLES - 1) // FRAME_SAMPLES, 1)
    rows = tf.reshape(tf.pad(x, [[0, 0], [0, slots * FRAME_SAMPLES - samples]]), [-1, FRAME_SAMPLES])

    frames = tf.maximum(lengths // FRAME_SAMPLES, 1)
    counts = (frames + hop_frames - 1) // hop_frames
    clip = tf.repeat(tf.range(batch), counts)
    centres = tf.ragged.range(counts).flat_values * hop_frames
    offsets = tf.range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)
    frame = tf.clip_by_value(centres[:, None] + offsets[None, :], 0, tf.gather(frames, clip)[:, None] - 1)
    windows = tf.reshape(tf.gather(rows, clip[:, None] * slots + frame), [-1, WINDOW_SAMPLES])
    mean = tf.reduce_mean(windows, axis=-1, keepdims=True)
    std = tf.math.reduce_std(windows, axis=-1, keepdims=True)
    return (windows - mean) / tf.maximum(std, STD_FLOOR), clip


def clip_windows(x, hop_frames: int = 1):
    """`[samples]` -> `[windows, 4000]` float32: `batch_windows` of a batch of one clip."""
    x = tf.convert_to_tensor(x, tf.float32)
    windows, _ = batch_windows(x[None, :], tf.shape(x)[:1], hop_frames)
    return windows
