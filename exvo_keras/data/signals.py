"""Per-clip signal caches: the decoded 16 kHz waveform ("raw") or its zero-frequency-filtered version ("zff").

Decoding, resampling and above all ZFF (float64, a few ms per second of audio) are done once per corpus, not
once per epoch. A cache is a folder of `<File_ID stem>.npy` float32 files written atomically one by one, plus
`cache.json` naming the corpus and settings, so an interrupted build resumes file by file and a cache made from
another corpus or other settings is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from exvo_keras.data.audio import AudioError, load_audio
from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.progress import progress_bar

KINDS = ("raw", "zff")
INFO = "cache.json"


class SignalCacheError(ValueError):
    """A cache that belongs to another corpus or settings, or has missing clips."""


def _transform(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    if kind == "raw":
        return lambda x: x
    if kind == "zff":
        from exvo_keras.signal import zff

        return lambda x: zff(x, SAMPLE_RATE).astype(np.float32)
    raise ValueError(f"unknown signal kind {kind!r}; expected one of {KINDS}")


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

    def build(self, sources: dict[str, Path], *, progress: bool = True) -> None:
        """Computes the clips not cached yet. Bad audio files are listed together at the end; the rest is kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        info_path = self.folder / INFO
        if not info_path.exists():
            info_path.write_text(json.dumps(self.info))
        transform = _transform(self.kind)
        todo = self.missing(list(sources))
        failures = []
        for key in progress_bar(todo, desc=f"{self.kind} signals", unit="clip", enabled=progress and bool(todo)):
            try:
                x = transform(load_audio(sources[key]))
            except AudioError as exc:
                failures.append(str(exc))
                continue
            target = self.path(key)
            tmp = target.with_name(target.name + ".tmp.npy")
            np.save(tmp, x)
            os.replace(tmp, target)
        if failures:
            raise SignalCacheError(f"{len(failures)} file(s) could not be read; the other clips are cached in "
                                   f"{self.folder}:\n" + "\n".join(f"  - {f}" for f in failures))

    def load(self, key: str) -> np.ndarray:
        path = self.path(key)
        if not path.exists():
            raise SignalCacheError(f"{path}: clip {key} not cached (build the cache first)")
        return np.load(path)
