"""Per-clip input normalisation of the SSL encoders (Hugging Face's ``do_normalize``).

One implementation for extraction, `SSLEncoder` and the exported graphs: over each clip's own samples,
``(x - mean) / sqrt(var + eps)``, computed in float64 (a 60 s clip is about a million samples), padding kept at
zero so that a padded batch gives each clip what it would get alone.
"""

from __future__ import annotations

import tensorflow as tf

EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


def normalize_clips(waveform, mask, eps: float = EPS):
    """`[batch, samples]` float, mask `[batch, samples]` (1 = sample, 0 = padding) -> float32 of the same shape."""
    mask = tf.cast(mask, tf.float64)
    x = tf.cast(waveform, tf.float64) * mask
    count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
    mean = tf.reduce_sum(x, axis=1, keepdims=True) / count
    variance = tf.reduce_sum(tf.square((x - mean) * mask), axis=1, keepdims=True) / count
    return tf.cast((x - mean) / tf.sqrt(variance + eps) * mask, tf.float32)
