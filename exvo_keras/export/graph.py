"""Graph code that only the exported SavedModels need: wav decoding, padded-batch masks and chunked calls.

Everything here runs inside an exported SavedModel, so it uses `tf.*` ops and nothing else: no numpy or scipy
at run time, no Keras, no tensorflow-io. The functions are traced without AutoGraph (Keras' `ExportArchive`
does that), so all data-dependent control flow is explicit (`tf.cond`, `tf.while_loop`, `tf.map_fn`). The
signal steps themselves (ZFF, resampling, windows, pooling, normalisation) are `exvo_keras.signal`'s, the same
graph functions the package runs.
"""

from __future__ import annotations

import tensorflow as tf

from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.signal.resample import to_sample_rate


def decode_wav_batch(wavs):
    """`[batch]` encoded wav files -> (waveform `[batch, samples]` float32 at 16 kHz, zero-padded; lengths `[batch]`
    int32). First channel of each file; other rates resampled in the graph (`exvo_keras.signal.resample`).

    `tf.audio.decode_wav` reads 16-bit PCM wav only; anything else (24/32-bit, float, compressed) fails the call.
    """
    def one(data):
        audio, rate = tf.audio.decode_wav(data)
        return to_sample_rate(audio[:, 0], rate, SAMPLE_RATE)

    ragged = tf.map_fn(one, wavs, fn_output_signature=tf.RaggedTensorSpec(shape=[None], dtype=tf.float32,
                                                                           ragged_rank=0))
    return ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32)


def valid_lengths(waveform, lengths):
    """Lengths clipped to [0, padded length]: a batch never reads outside itself."""
    return tf.clip_by_value(tf.cast(lengths, tf.int32), 0, tf.shape(waveform)[1])


def sample_mask(waveform, lengths):
    """`[batch, samples]` 1 for the samples of each clip, 0 for padding (float32)."""
    return tf.sequence_mask(lengths, tf.shape(waveform)[1], dtype=tf.float32)


def in_chunks(fn, rows, width: int, chunk: int = 1024):
    """`fn` over `rows` `[n, ...]` in chunks of at most `chunk` rows (bounded memory for long batches) ->
    `[n, width]`. Chunks are of equal size, so at most one row per chunk is padding."""
    n = tf.shape(rows)[0]
    n_chunks = tf.maximum((n + chunk - 1) // chunk, 1)
    size = tf.maximum((n + n_chunks - 1) // n_chunks, 1)
    pad = n_chunks * size - n
    padded = tf.pad(rows, [[0, pad]] + [[0, 0]] * (len(rows.shape) - 1))
    parts = tf.reshape(padded, tf.concat([[n_chunks, size], tf.shape(rows)[1:]], axis=0))
    out = tf.map_fn(fn, parts, parallel_iterations=1,
                    fn_output_signature=tf.TensorSpec([None, width], tf.float32))
    return tf.reshape(out, [-1, width])[:n]
