"""Per-clip signal caches: the decoded 16 kHz waveform ("raw") or its zero-frequency-filtered version ("zff").

Decoding, resampling and above all ZFF (float64, a few ms per second of audio) are done once per corpus, not
once per epoch. A cache is a folder of `<File_ID stem>.npy` float32 files written atomically one by one, plus
`cache.json` naming the corpus and settings, so an interrupted build resumes file by file and a cache made from
another corpus or other settings is refused.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.progress import progress_bar

KINDS = ("raw", "zff")
INFO = "cache.json"


class SignalCacheError(ValueError):
    """A cache that belongs to another corpus or settings, or has missing clips."""


@functools.lru_cache(maxsize=None)
def _transform(kind: str):
    """The graph function that turns a decoded 16 kHz clip into this kind of signal (float32), or None."""
    if kind == "raw":
        return None
    if kind == "zff":
        import tensorflow as tf

        from exvo_keras.signal.zff import zero_frequency_filter

        return lambda x: tf.cast(zero_frequency_filter(x, SAMPLE_RATE), tf.float32)
    raise ValueError(f"unknown signal kind {kind!r}; expected one of {KINDS}")


def read_cached(path):
    """A cache file as graph ops (tf.data pipelines): string scalar tensor -> float32 `[samples]`.

    Reads the `.npy` files `SignalCache` writes (format 1.0, little-endian float32, 1-D) without numpy, so
    that tf.data can read them on its own threads; any other file fails with its name in the error.
    """
    import tensorflow as tf

    contents = tf.io.read_file(path)
    header_size = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, 8, 2), tf.uint16)[0], tf.int32)
    header = tf.strings.substr(contents, 10, header_size)
    tf.debugging.Assert(
        tf.logical_and(tf.equal(tf.strings.substr(contents, 0, 8), _NPY_MAGIC),
                       tf.strings.regex_full_match(header, _NPY_HEADER)),
        [path, "is not a signal-cache file (1-D little-endian float32 .npy); delete it to rebuild"])
    return tf.io.decode_raw(tf.strings.substr(contents, 10 + header_size, -1), tf.float32, little_endian=True)


_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_NPY_HEADER = r"\{'descr': '<f4', 'fortran_order': False, 'shape': \(\d+,\), \}\s*"


@dataclass(frozen=True)
class ClipFiles:
    """Clips stored in signal-cache files: clip i is samples `starts[i]:stops[i]` of `files[i]` (a stop of -1
    reads to the end), so segment lists need no copies of their files."""

    files: tuple[str, ...]
    starts: tuple[int, ...] | None = None
    stops: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, index: Sequence[int]) -> "ClipFiles":
        pick = lambda values: None if values is None else tuple(values[int(i)] for i in index)  # noqa: E731
        return ClipFiles(pick(self.files), pick(self.starts), pick(self.stops))

    def lengths(self) -> list[int]:
        """Each clip's samples, from the files' headers (nothing is read)."""
        out = []
        for i, path in enumerate(self.files):
            n = int(np.load(path, mmap_mode="r").shape[0])
            start = 0 if self.starts is None else self.starts[i]
            stop = n if self.stops is None or self.stops[i] < 0 else min(self.stops[i], n)
            out.append(max(stop - min(start, n), 0))
        return out

    def reader(self):
        """Graph function: clip position (int tensor) -> float32 signal."""
        import tensorflow as tf

        files = tf.constant(list(self.files))
        if self.starts is None:
            return lambda i: read_cached(files[i])
        starts, stops = tf.constant(self.starts, tf.int64), tf.constant(self.stops, tf.int64)

        def read(i):
            x = read_cached(files[i])
            stop = tf.where(stops[i] < 0, tf.size(x, out_type=tf.int64), stops[i])
            return x[starts[i]:stop]

        return read


class SignalCache:
    """A folder of per-clip signals.

    Args:
        folder: cache folder (created on first build).
        kind: "raw" or "zff".
        source: identifies where the clips come from (a corpus fingerprint, or a list file's fingerprint).

    Example:
        >>> cache = SignalCache("work/signals/zff", "zff", corpus.fingerprint)       # doctest: +SKIP
        >>> cache.build({fid: corpus.wav_path(fid) for fid in corpus.file_ids()})   # doctest: +SKIP
        >>> x = cache.load("[00042]")                                               # doctest: +SKIP
    """

    def __init__(self, folder, kind: str, source: str):
        _transform(kind)  # validates kind
        self.folder = Path(folder)
        self.kind = kind
        self.info = {"kind": kind, "source": source, "sample_rate": SAMPLE_RATE}
        info_path = self.folder / INFO
        if info_path.exists():
            found = json.loads(info_path.read_text())
            if found != self.info:
                diff = ", ".join(f"{k}: cache has {found.get(k)!r}, wanted {v!r}" for k, v in self.info.items()
                                 if found.get(k) != v)
                raise SignalCacheError(f"{self.folder}: made for other clips or settings ({diff}); delete it to "
                                       "rebuild")

    def path(self, key: str) -> Path:
        # File_IDs lose their brackets; list paths (ood/ser/wav/a.wav) become flat file names
        stem = str(key).strip("[]").replace("/", "__").replace("\\", "__")
        return self.folder / f"{stem}.npy"

    def missing(self, keys: Sequence[str]) -> list[str]:
        return [k for k in keys if not self.path(k).exists()]

    def build(self, sources: dict[str, Path], *, progress: bool = True, threads: int | None = None) -> None:
        """Computes the clips not cached yet, decoding and filtering in parallel (`threads`: the pipeline's own
        thread pool; None: TensorFlow's, all cores). Bad audio files are listed together at the end; the rest
        is kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        info_path = self.folder / INFO
        if not info_path.exists():
            info_path.write_text(json.dumps(self.info))
        from exvo_keras.data.tf_audio import decoded_clips

        todo = self.missing(list(sources))
        failures = []
        clips = decoded_clips([sources[k] for k in todo], transform=_transform(self.kind), threads=threads)
        for clip in progress_bar(clips, total=len(todo), desc=f"{self.kind} signals", unit="clip",
                                 enabled=progress and bool(todo)):
            if clip.error is not None:
                failures.append(str(clip.error))
                continue
            target = self.path(todo[clip.index])
            tmp = target.with_name(target.name + ".tmp.npy")
            np.save(tmp, np.ascontiguousarray(clip.signal, np.float32))
            os.replace(tmp, target)
        if failures:
            raise SignalCacheError(f"{len(failures)} file(s) could not be read; the other clips are cached in "
                                   f"{self.folder}:\n" + "\n".join(f"  - {f}" for f in failures))

    def load(self, key: str) -> np.ndarray:
        path = self.path(key)
        if not path.exists():
            raise SignalCacheError(f"{path}: clip {key} not cached (build the cache first)")
        return np.load(path)
