import subprocess
import sys
import time

import h5py
import numpy as np
import opensmile
import pytest
import soundfile as sf

from conftest import REPO, write_corpus
from exvo_keras.data.corpus import load_corpus
from exvo_keras.features import compare
from exvo_keras.features.compare import DIMS, extract_compare
from exvo_keras.store import StoreError, partial_path, read_store, store_attrs


def test_store_matches_opensmile_run_on_the_files_itself(tmp_path):
    root = write_corpus(tmp_path / "c", n_per_split=(2, 1, 1), duration=0.6)
    corpus = load_corpus(root)
    path = extract_compare(corpus, tmp_path / "compare.h5", progress=False)
    ids = corpus.file_ids()
    emb = read_store(path, ids, corpus_fingerprint=corpus.fingerprint, extractor="compare")
    assert emb.shape == (4, DIMS)
    # The outside reference: openSMILE decoding the wav itself, not our audio loader.
    smile = opensmile.Smile(opensmile.FeatureSet.ComParE_2016, opensmile.FeatureLevel.Functionals)
    ref = smile.process_file(str(corpus.wav_path(ids[2]))).to_numpy(np.float32)[0]
    np.testing.assert_allclose(emb[2], ref, rtol=1e-4, atol=1e-4)
    assert store_attrs(path)["settings"]["feature_set"] == "ComParE_2016"


def test_two_processes_give_the_same_store(tmp_path):
    root = write_corpus(tmp_path / "c", n_per_split=(3, 1, 1), duration=0.3)
    corpus = load_corpus(root)
    one = read_store(extract_compare(corpus, tmp_path / "a.h5", progress=False), corpus.file_ids())
    two = read_store(extract_compare(corpus, tmp_path / "b.h5", jobs=2, progress=False), corpus.file_ids())
    np.testing.assert_array_equal(one, two)


def test_a_corrupt_clip_is_named_and_the_others_are_kept(tmp_path):
    root = write_corpus(tmp_path / "c", n_per_split=(3, 1, 1), duration=0.3)
    (root / "wav" / "00102.wav").write_bytes(b"broken")
    corpus = load_corpus(root)
    with pytest.raises(StoreError, match="00102.wav: not a readable audio file"):
        extract_compare(corpus, tmp_path / "c.h5", progress=False)
    sf.write(root / "wav" / "00102.wav", np.zeros(4800), 16000, subtype="PCM_16")
    corpus = load_corpus(root)  # the audio changed, so the corpus fingerprint did too: a fresh store
    assert read_store(extract_compare(corpus, tmp_path / "c.h5", progress=False), corpus.file_ids()).shape == (5, DIMS)



def test_parallel_run_with_a_corrupt_clip_ends_stores_the_others_and_names_it(tmp_path):
    # Before AudioError pickled, the worker's error killed the Pool's result thread and the run hung forever.
    root = write_corpus(tmp_path / "c", n_per_split=(3, 2, 1), duration=0.3)
    (root / "wav" / "00102.wav").write_bytes(b"broken")
    out = tmp_path / "c.h5"
    done = subprocess.run([sys.executable, "-m", "exvo_keras", "extract-compare", "--data", str(root), "--out",
                           str(out), "--jobs", "2", "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "1 file(s) could not be read" in done.stderr
    assert "00102.wav: not a readable audio file" in done.stderr
    with h5py.File(partial_path(out), "r") as f:
        stored, rows, ids = f["done"][()], f["embeddings"][()], [i.decode() for i in f["file_ids"][()]]
    assert [fid for fid, d in zip(ids, stored) if not d] == ["[00102]"]
    smile = opensmile.Smile(opensmile.FeatureSet.ComParE_2016, opensmile.FeatureLevel.Functionals)
    for fid in ("[00101]", "[00106]"):
        expected = smile.process_file(str(root / "wav" / f"{fid[1:-1]}.wav")).to_numpy(np.float32)[0]
        np.testing.assert_allclose(rows[ids.index(fid)], expected, rtol=1e-4, atol=1e-4)


class _FailsOnLongClips:
    """Stands in for openSMILE: raises a non-AudioError, as a library bug on one clip would."""

    settings = {"feature_set": "fake"}

    def __call__(self, x):
        if x.size > 5000:
            raise RuntimeError("opensmile exploded")
        return np.full(3, x.size, np.float32)


def test_any_extraction_error_is_a_failure_of_that_file(tmp_path, monkeypatch):
    root = write_corpus(tmp_path / "c", n_per_split=(3, 1, 1), duration=0.3)
    sf.write(root / "wav" / "00103.wav", np.zeros(8000), 16000, subtype="PCM_16")
    monkeypatch.setattr(compare, "ComParE", _FailsOnLongClips)
    corpus = load_corpus(root)
    with pytest.raises(StoreError) as err:
        extract_compare(corpus, tmp_path / "c.h5", progress=False)
    assert "1 file(s) could not be read" in str(err.value)
    assert "00103.wav: feature extraction failed (RuntimeError: opensmile exploded)" in str(err.value)
    with h5py.File(partial_path(tmp_path / "c.h5"), "r") as f:
        assert f["done"][()].tolist() == [True, True, False, True, True]


def test_a_worker_process_that_dies_fails_its_files_and_a_fresh_pool_takes_over(tmp_path):
    # A crash inside openSMILE kills the process, not just the call: with multiprocessing.Pool that hung the run.
    import os
    import signal
    import threading

    root = write_corpus(tmp_path / "c", n_per_split=(24, 4, 4), duration=0.5)
    paths = sorted(str(p) for p in (root / "wav").glob("*.wav"))
    workers = compare._Workers(2)
    try:
        for kill_after in (0.3, 0.0):  # mid-batch, and between batches
            workers.map(paths[:2])
            victim = next(iter(workers._pool._processes))
            threading.Timer(kill_after, os.kill, (victim, signal.SIGKILL)).start()
            time.sleep(0.1 if kill_after == 0 else 0)
            results = workers.map(paths)
            assert {problem for _, problem in results} <= {None, compare._WORKER_DIED}
            results = workers.map(paths)
            assert all(problem is None for _, problem in results)
            assert np.stack([features for features, _ in results]).shape == (len(paths), DIMS)
    finally:
        workers.close()
