"""ComParE 2016 functionals (openSMILE, 6,373 dims): the challenge baseline's feature set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exvo_keras.data.audio import AudioError, load_audio
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


def _functionals(path: str) -> tuple[np.ndarray | None, str | None]:
    """(features, None), or (None, the problem) for any error: only plain values cross back from a worker, and
    one file's failure must not take down the others (build_store lists it)."""
    try:
        return _worker(load_audio(path)), None
    except AudioError as exc:
        return None, exc.problem
    except Exception as exc:  # noqa: BLE001 - a library error on one clip is that clip's failure
        return None, f"feature extraction failed ({type(exc).__name__}: {exc})"


# Not a fact about the file: the pool is replaced and the file retried on its own, which finds the culprit.
_WORKER_DIED = "the worker process died while extracting it"


class _Workers:
    """`jobs` spawned processes running `_functionals`, replaced when one dies (a crash inside openSMILE)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._pool = None

    def map(self, paths: list[str]) -> list[tuple[np.ndarray | None, str | None]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        def submit():
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)
            return [self._pool.submit(_functionals, p) for p in paths]

        try:
            futures = submit()
        except BrokenProcessPool:  # a worker died between batches: no file of this one is to blame
            self.close()
            futures = submit()
        results, broken = [], False
        for future in futures:
            try:
                results.append(future.result())
            except BrokenProcessPool:
                results.append((None, _WORKER_DIED))
                broken = True
            except Exception as exc:  # noqa: BLE001 - whatever goes wrong, it is this file's failure
                results.append((None, f"feature extraction failed ({type(exc).__name__}: {exc})"))
        if broken:
            self.close()
        return results

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def extract_compare(corpus: Corpus, out_path, *, jobs: int = 1, progress: bool = True) -> Path:
    """ComParE functionals of every clip of `corpus` into the store `out_path` (resumable).

    `jobs` > 1 spreads the clips over that many processes (openSMILE is single-threaded). A clip that fails, in
    whatever way, is named in the StoreError at the end; every other row is stored.
    """
    settings = ComParE().settings
    workers = _Workers(jobs) if jobs > 1 else None
    if workers is None:
        _init_worker()
    kept: dict[str, tuple] = {}  # a failed batch's results, for build_store's file-by-file retry of it

    def embed(ids):
        paths = [str(corpus.wav_path(fid)) for fid in ids]
        todo = [p for p in paths if p not in kept]
        kept.update(zip(todo, workers.map(todo) if workers is not None else map(_functionals, todo)))
        results = [kept.pop(p) for p in paths]
        failed = [(p, problem) for p, (_, problem) in zip(paths, results) if problem is not None]
        if failed:
            if len(paths) > 1:
                kept.update((p, r) for p, r in zip(paths, results) if r[1] != _WORKER_DIED)
            raise AudioError(*failed[0])
        return np.stack([features for features, _ in results])

    try:
        return build_store(out_path, corpus.file_ids(), embed, extractor=EXTRACTOR, settings=settings,
                           corpus=corpus, batch_size=32 * jobs, progress=progress, desc="ComParE")
    finally:
        if workers is not None:
            workers.close()
