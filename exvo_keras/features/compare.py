"""ComParE 2016 functionals (openSMILE, 6,373 dims): the challenge baseline's feature set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exvo_keras.data.audio import load_audio
from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.store import build_store

EXTRACTOR = "compare"
DIMS = 6373


class ComParE:
    """ComParE_2016 functionals of one 16 kHz mono clip.

    Example:
        >>> feats = ComParE()(np.zeros(16000, np.float32))  # doctest: +SKIP
        >>> feats.shape                                     # doctest: +SKIP
        (6373,)
    """

    def __init__(self):
        import opensmile  # heavy import, only where ComParE is used

        self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                                      feature_level=opensmile.FeatureLevel.Functionals)
        self.settings = {"feature_set": "ComParE_2016", "level": "Functionals", "sample_rate": SAMPLE_RATE,
                         "opensmile": opensmile.__version__}

    @property
    def feature_names(self) -> list[str]:
        return list(self._smile.feature_names)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._smile.process_signal(x, SAMPLE_RATE).to_numpy(np.float32)[0]


_worker: ComParE | None = None


def _init_worker():
    global _worker
    _worker = ComParE()


def _functionals(path: str) -> np.ndarray:
    return _worker(load_audio(path))


def extract_compare(corpus: Corpus, out_path, *, jobs: int = 1, progress: bool = True) -> Path:
    """ComParE functionals of every clip of `corpus` into the store `out_path` (resumable).

    `jobs` > 1 spreads the clips over that many processes (openSMILE is single-threaded).
    """
    settings = ComParE().settings
    pool = None
    if jobs > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_init_worker)
        mapper = pool.map
    else:
        _init_worker()
        mapper = map

    def embed(ids):
        return np.stack(list(mapper(_functionals, [str(corpus.wav_path(fid)) for fid in ids])))

    try:
        return build_store(out_path, corpus.file_ids(), embed, extractor=EXTRACTOR, settings=settings,
                           corpus_fingerprint=corpus.fingerprint, corpus_root=str(corpus.root),
                           batch_size=32 * jobs, progress=progress, desc="ComParE")
    finally:
        if pool is not None:
            pool.terminate()
