"""Audio files decoded inside tf.data: tensorflow-io's readers, in parallel, with errors that name the file.

The only module that imports tensorflow-io, so that it can be replaced alone (its last release, 0.37.1, loads
on TensorFlow 2.17 only). Stages that read a corpus's audio at scale (the signal caches, SSL extraction,
predict) take their clips from :func:`decoded_clips`: files are decoded, reduced to their first channel,
checked and resampled to 16 kHz by `map(num_parallel_calls=AUTOTUNE)`, in TensorFlow's threads, not one by one
in Python.

What decodes where
    tensorflow-io reads WAV (16-bit, 24-bit and float), FLAC (16/24-bit), Ogg Vorbis and MP3 as libsndfile does
    (measured: identical samples for WAV and FLAC, within 6e-8 for Vorbis and 3.6e-7 for MP3). It misreads
    32-bit integer WAV (as float) and 8-bit WAV (unscaled), and a truncated WAV is whatever it reads; so each
    file's header is read first (soundfile, ~0.1 ms), and every other format or subtype, and any file whose
    header promises more frames than it holds, goes through `exvo_keras.data.audio.load_audio` inside the same
    map (`tf.numpy_function`), as does any file tensorflow-io fails on. Errors therefore read exactly as the
    soundfile path's `AudioError`s do.

Resampling
    `exvo_keras.signal.resample` (scipy's polyphase filter in TensorFlow), not `tfio.audio.resample`: the
    project has one resampler, shared with the loader and the exported graphs, and tensorflow-io's differs from
    polyphase resampling by more than the signal itself (measured: 0.57 on noise of peak 0.31, 22.05 -> 16 kHz).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

from exvo_keras.data.audio import MIN_DURATION_S, AudioError, audio_header, load_audio
from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.signal.resample import to_sample_rate

__all__ = ["TFIO_SUBTYPES", "Decoded", "decode_dataset", "decoded_clips"]

# How tensorflow-io decodes each (format, subtype) exactly as libsndfile does (see the module doc): its
# decoder and sample type, and the factor that brings those samples to libsndfile's float scale. Its decoders
# want the sample type fixed when the graph is built, so the route is chosen per file from its header.
_DECODERS = {
    ("WAV", "PCM_16"): (functools.partial(tfio.audio.decode_wav, dtype=tf.int16), 2.0 ** 15),
    ("WAV", "PCM_24"): (functools.partial(tfio.audio.decode_wav, dtype=tf.int32), 2.0 ** 31),
    ("WAV", "FLOAT"): (functools.partial(tfio.audio.decode_wav, dtype=tf.float32), 1.0),
    ("FLAC", "PCM_16"): (functools.partial(tfio.audio.decode_flac, dtype=tf.int16), 2.0 ** 15),
    ("FLAC", "PCM_24"): (functools.partial(tfio.audio.decode_flac, dtype=tf.int32), 2.0 ** 31),
    ("OGG", "VORBIS"): (tfio.audio.decode_vorbis, 1.0),
    ("MP3", "MPEG_LAYER_III"): (tfio.audio.decode_mp3, 1.0),
}
TFIO_SUBTYPES = frozenset(_DECODERS)
_ROUTES = list(_DECODERS)  # route i + 1 is _ROUTES[i]; route 0 is soundfile
SOUNDFILE = 0


@dataclass(frozen=True)
class Decoded:
    """One file out of :func:`decoded_clips`: its position in the input, and its signal or why there is none."""

    index: int
    signal: np.ndarray | None
    error: AudioError | None = None


def _tfio_read(path, route):
    """A file through tensorflow-io's decoder for its route: its first channel, float32 at the file's rate."""
    contents = tf.io.read_file(path)

    def decoder(decode, scale):
        return lambda: tf.cast(decode(contents)[:, 0], tf.float32) / scale

    return tf.switch_case(route - 1, [decoder(*_DECODERS[key]) for key in _ROUTES])


def _soundfile_read(path, sample_rate: int, min_duration: float):
    def read(p):
        # The rate is the target's: load_audio resamples (with the same resampler) and checks the length.
        return load_audio(p.decode(), sample_rate, min_duration)

    x = tf.numpy_function(read, [path], tf.float32, stateful=False)
    return tf.ensure_shape(x, [None])


def decode_dataset(paths: Sequence, *, sample_rate: int = SAMPLE_RATE, min_duration: float = MIN_DURATION_S,
                   transform: Callable[[tf.Tensor], tf.Tensor] | None = None,
                   threads: int | None = None) -> tf.data.Dataset:
    """(position, float32 signal at `sample_rate`) for each file, in order, decoded in parallel.

    A file that cannot be used makes its element an error (a `tf.errors.OpError`), after which the dataset goes
    on with the next file; :func:`decoded_clips` turns those into named `AudioError`s.

    Args:
        paths: audio files.
        sample_rate: rate of the returned signals.
        min_duration: shortest clip accepted, in seconds (as `load_audio`).
        transform: graph function applied to each signal in the same parallel map (e.g. ZFF).
        threads: size of the dataset's own thread pool (None: TensorFlow's shared pool, all cores).
    """
    paths = [str(p) for p in paths]
    headers = [_tfio_route(p) for p in paths]
    routes = np.array([route for route, _ in headers], np.int32)
    rates = np.array([rate for _, rate in headers], np.int32)
    decode = _decode_function(sample_rate, min_duration, transform)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int32), paths, routes, rates))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if threads is not None:
        options = tf.data.Options()
        options.threading.private_threadpool_size = int(threads)
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


@functools.lru_cache(maxsize=16)
def _decode_function(sample_rate: int, min_duration: float, transform):
    """The per-file graph, traced once per setting and reused by every dataset (tracing costs ~0.7 s)."""
    min_samples = int(np.ceil(min_duration * sample_rate))

    def decode(position, path, route, rate):
        def by_tfio():
            x = _tfio_read(path, route)
            tf.debugging.Assert(tf.size(x) > 0, [path, "no audio samples"])
            tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)), [path, "non-finite samples"])
            y = to_sample_rate(x, rate, sample_rate)
            tf.debugging.Assert(tf.size(y) >= min_samples, [path, "clip too short"])
            return y

        x = tf.cond(route != SOUNDFILE, by_tfio, lambda: _soundfile_read(path, sample_rate, min_duration))
        return position, (x if transform is None else transform(x))

    scalar = tf.TensorSpec([], tf.int32)
    return tf.function(decode, input_signature=[scalar, tf.TensorSpec([], tf.string), scalar, scalar])


def decoded_clips(paths: Sequence, *, sample_rate: int = SAMPLE_RATE, min_duration: float = MIN_DURATION_S,
                  transform: Callable[[tf.Tensor], tf.Tensor] | None = None,
                  threads: int | None = None) -> Iterator[Decoded]:
    """Every file of `paths` in order, decoded by :func:`decode_dataset`, as numpy; a bad file gives a
    :class:`Decoded` with the `AudioError` that `load_audio` raises for it (the name and the problem), and the
    files after it are still decoded.

    Example:
        >>> for clip in decoded_clips(["a.wav", "b.flac"]):          # doctest: +SKIP
        ...     print(clip.index, clip.signal.shape if clip.error is None else clip.error)
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return
    iterator = iter(decode_dataset(paths, sample_rate=sample_rate, min_duration=min_duration,
                                   transform=transform, threads=threads))
    for expected in range(len(paths)):
        try:
            position, x = next(iterator)
        except tf.errors.OpError:
            # Elements come in order, so the failed one is the next expected; soundfile says why (or, where
            # only tensorflow-io failed on it, decodes it).
            yield _retry(paths[expected], expected, sample_rate, min_duration, transform)
            continue
        assert int(position) == expected, (int(position), expected)
        yield Decoded(expected, x.numpy())


def _retry(path: Path, index: int, sample_rate: int, min_duration: float, transform) -> Decoded:
    try:
        x = load_audio(path, sample_rate, min_duration)
    except AudioError as error:
        return Decoded(index, None, error)
    # A file only tensorflow-io failed on; a transform that fails on it again is a bug to report, not skip.
    return Decoded(index, x if transform is None else np.asarray(transform(tf.constant(x))))


def _tfio_route(path: str) -> tuple[int, int]:
    """(route, the file's sample rate) from its header: SOUNDFILE, also for a truncated file or one soundfile
    cannot open (its error then comes from the soundfile path)."""
    try:
        header = audio_header(path)
    except AudioError:
        return SOUNDFILE, 0
    key = (header.format, header.subtype)
    if key not in _DECODERS or header.declared_frames != header.frames:
        return SOUNDFILE, header.sample_rate
    return _ROUTES.index(key) + 1, header.sample_rate


class DecodedStream:
    """Clips decoded ahead by one dataset for a whole stage, handed out in the order planned.

    Stages that write a store chunk by chunk (`exvo_keras.store.build_store`) would otherwise start a dataset
    per chunk, and each costs ~0.2 s to start. The clips of the chunk taken last are kept, so that a chunk
    retried clip by clip (after a bad file) decodes nothing twice.

    Args:
        path_of: key -> audio file.
        **decode: keyword arguments of :func:`decoded_clips` (sample_rate, min_duration, transform, threads).
    """

    def __init__(self, path_of: Callable[[str], Path], **decode):
        self.path_of, self.decode = path_of, decode
        self._planned: list[str] = []
        self._iterator: Iterator[Decoded] | None = None
        self._next = 0
        self._recent: dict[str, Decoded] = {}

    def plan(self, keys: Sequence[str]) -> None:
        """Starts decoding `keys` in this order."""
        self._planned = list(keys)
        self._iterator = decoded_clips([self.path_of(k) for k in self._planned], **self.decode)
        self._next = 0

    def take(self, keys: Sequence[str]) -> list[Decoded]:
        """The clips of `keys`; keys that are not the next planned ones are decoded on their own."""
        keys = list(keys)
        if all(k in self._recent for k in keys):
            return [self._recent[k] for k in keys]
        planned = self._planned[self._next:self._next + len(keys)]
        if self._iterator is not None and planned == keys:
            clips = [next(self._iterator) for _ in keys]
            self._next += len(keys)
        else:
            clips = list(decoded_clips([self.path_of(k) for k in keys], **self.decode))
        self._recent = dict(zip(keys, clips))
        return clips
