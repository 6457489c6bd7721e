"""Store rows keyed by File_ID and the digest of that file's audio: fixing, adding or removing clips recomputes only
what changed, and reading checks the rows it reads against the corpus as it is now."""

import re

import h5py
import numpy as np
import pytest

from exvo_keras.data.audio import AudioError
from exvo_keras.data.corpus import load_corpus
from exvo_keras.store import StoreError, build_store, check_store, partial_path, read_fused, read_store

SETTINGS = {"layer": 3, "pool": "mean+std"}


def _clip_embed(corpus, calls):
    """A cheap stand-in extractor: the clip's first samples, so a changed wav gives a changed row."""
    from exvo_keras.data.audio import load_audio

    def embed(ids):
        calls.extend(ids)
        return np.stack([load_audio(corpus.wav_path(fid))[:4] for fid in ids]).astype(np.float32)
    return embed


def _build_from(corpus, path, calls, extractor="toy", settings=SETTINGS):
    return build_store(path, corpus.file_ids(), _clip_embed(corpus, calls), extractor=extractor,
                       settings=settings, corpus=corpus, batch_size=4, progress=False)


def _rows(path):
    with h5py.File(path) as f:
        ids = [s.decode() for s in f["file_ids"][()]]
        return {fid: row.tobytes() for fid, row in zip(ids, f["embeddings"][()])}


def _rewrite_wav(path, seed=1):
    """New audio of the same length (so the same file size): what fixing a clip in place looks like."""
    import soundfile as sf

    x, sr = sf.read(path)
    sf.write(path, np.random.default_rng(seed).uniform(-0.5, 0.5, x.shape), sr, subtype="PCM_16")


def _drop_rows(root, fids):
    import pandas as pd

    table = pd.read_csv(root / "data_info.csv", dtype=str)
    table[~table["File_ID"].isin(fids)].to_csv(root / "data_info.csv", index=False)


def test_file_digests_are_stored_beside_the_file_ids(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = _build_from(corpus, tiny_corpus.parent / "toy.h5", [])
    with h5py.File(path) as f:
        ids = [s.decode() for s in f["file_ids"][()]]
        digests = [s.decode() for s in f["file_digests"][()]]
        assert f.attrs["corpus"] == corpus.fingerprint and f.attrs["complete"]
    assert ids == corpus.file_ids() and digests == [corpus.file_digest(fid) for fid in ids]
    assert len(set(digests)) == len(ids)


def test_a_changed_wav_recomputes_only_its_row(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = tiny_corpus.parent / "toy.h5"
    calls = []
    _build_from(corpus, path, calls)
    assert len(calls) == len(corpus.file_ids())
    before = _rows(path)

    changed = corpus.file_ids()[3]
    _rewrite_wav(corpus.wav_path(changed))
    corpus = load_corpus(tiny_corpus)
    calls.clear()
    _build_from(corpus, path, calls)
    assert calls == [changed]
    after = _rows(path)
    assert after[changed] != before[changed]
    assert {k: v for k, v in after.items() if k != changed} == {k: v for k, v in before.items() if k != changed}
    assert not partial_path(path).exists()

    calls.clear()
    _build_from(corpus, path, calls)  # up to date: nothing to do
    assert calls == []


def test_removing_rows_reuses_every_remaining_row_and_new_rows_are_computed_alone(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = tiny_corpus.parent / "toy.h5"
    _build_from(corpus, path, [])
    before = _rows(path)

    removed = corpus.file_ids()[::3]
    _drop_rows(tiny_corpus, removed)
    corpus = load_corpus(tiny_corpus)
    calls = []
    _build_from(corpus, path, calls)
    assert calls == []
    assert _rows(path) == {k: v for k, v in before.items() if k not in removed}
    assert read_store(path, corpus.file_ids(), corpus=corpus).shape == (len(corpus.file_ids()), 4)


def test_an_interrupted_run_resumes_after_rows_were_removed_and_a_file_fixed(tiny_corpus):
    """The reported case: bad rows dropped from the table after a run that stopped on them kept nothing."""
    corpus = load_corpus(tiny_corpus)
    path = tiny_corpus.parent / "toy.h5"
    ids = corpus.file_ids()
    bad = {ids[1], ids[8]}
    embed = _clip_embed(corpus, [])

    def failing(batch):
        for fid in batch:
            if fid in bad:
                raise AudioError(str(corpus.wav_path(fid)), "not a readable audio file")
        return embed(batch)

    with pytest.raises(StoreError, match="2 file"):
        build_store(path, ids, failing, extractor="toy", settings=SETTINGS, corpus=corpus, batch_size=4,
                    progress=False)
    _drop_rows(tiny_corpus, [ids[1]])  # one bad row removed,
    _rewrite_wav(corpus.wav_path(ids[8]))  # the other fixed,
    _rewrite_wav(corpus.wav_path(ids[5]), seed=2)  # and a good one changed meanwhile
    corpus = load_corpus(tiny_corpus)
    calls = []
    _build_from(corpus, path, calls)
    assert sorted(calls) == sorted([ids[8], ids[5]])
    assert _rows(path).keys() == set(corpus.file_ids())


def test_a_file_changed_after_an_interruption_is_recomputed_with_the_rows_left(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = tiny_corpus.parent / "toy.h5"
    ids = corpus.file_ids()
    calls = []
    embed = _clip_embed(corpus, calls)

    def crashing(batch):
        if len(calls) >= 8:
            raise KeyboardInterrupt
        return embed(batch)

    with pytest.raises(KeyboardInterrupt):
        build_store(path, ids, crashing, extractor="toy", settings=SETTINGS, corpus=corpus, batch_size=4,
                    progress=False)
    assert calls == ids[:8] and partial_path(path).exists()
    _rewrite_wav(corpus.wav_path(ids[2]))
    corpus = load_corpus(tiny_corpus)
    calls.clear()
    _build_from(corpus, path, calls)
    assert sorted(calls) == sorted([ids[2], *ids[8:]])
    whole = tiny_corpus.parent / "whole.h5"
    _build_from(corpus, whole, [])
    assert _rows(path) == _rows(whole)


def test_reading_checks_the_digests_of_the_rows_it_reads(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = _build_from(corpus, tiny_corpus.parent / "features" / "compare.h5", [], extractor="compare")
    changed = corpus.file_ids()[2]
    _rewrite_wav(corpus.wav_path(changed))
    corpus = load_corpus(tiny_corpus)  # its fingerprint changed: the whole-corpus check refused every row

    unchanged = [fid for fid in corpus.file_ids() if fid != changed]
    assert read_store(path, unchanged, corpus=corpus).shape == (len(unchanged), 4)
    assert read_fused([path, path], unchanged, corpus=corpus).shape == (len(unchanged), 8)
    with pytest.raises(StoreError, match=rf"(?s){path}: 1 of 14 row.*changed.*{re.escape(changed)}.*"
                                         rf"python -m exvo_keras extract-compare --data {tiny_corpus}"):
        read_store(path, corpus.file_ids(), corpus=corpus)
    with pytest.raises(StoreError, match=re.escape(changed)):
        check_store(path, corpus=corpus)


def test_a_store_of_another_corpus_is_refused(tmp_path):
    from conftest import write_corpus

    one = load_corpus(write_corpus(tmp_path / "one", seed=0))
    other = load_corpus(write_corpus(tmp_path / "other", seed=7))  # same File_IDs and sizes, other audio
    assert one.file_ids() == other.file_ids()
    path = _build_from(one, tmp_path / "toy.h5", [])
    before = _rows(path)
    with pytest.raises(StoreError, match="another corpus"):
        read_store(path, other.file_ids(), corpus=other)
    with pytest.raises(StoreError, match="another corpus"):
        read_store(path, other.file_ids()[:1], corpus=other)
    with pytest.raises(StoreError, match="another corpus"):
        check_store(path, corpus=other)
    calls = []
    with pytest.raises(StoreError, match="another corpus.*delete it"):
        _build_from(other, path, calls)
    assert calls == [] and _rows(path) == before


def _without_digests(path):
    """What the code before per-file digests wrote."""
    with h5py.File(path, "a") as f:
        del f["file_digests"]


def test_a_store_without_digests_is_used_while_the_corpus_is_unchanged_and_upgraded_in_place(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = _build_from(corpus, tiny_corpus.parent / "toy.h5", [])
    before = _rows(path)
    _without_digests(path)
    assert read_store(path, corpus.file_ids(), corpus=corpus).shape == (len(corpus.file_ids()), 4)
    calls = []
    _build_from(corpus, path, calls)  # the whole-corpus fingerprint vouches for every row: digests added
    assert calls == [] and _rows(path) == before
    with h5py.File(path) as f:
        assert "file_digests" in f


def test_a_store_without_digests_of_a_changed_corpus_says_to_rebuild(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    path = _build_from(corpus, tiny_corpus.parent / "features" / "compare.h5", [], extractor="compare")
    _without_digests(path)
    _rewrite_wav(corpus.wav_path(corpus.file_ids()[0]))
    corpus = load_corpus(tiny_corpus)
    with pytest.raises(StoreError, match=r"(?s)before.*per-file digests.*delete it and rerun.*extract-compare"):
        read_store(path, corpus.file_ids()[1:], corpus=corpus)
    with pytest.raises(StoreError, match=r"(?s)before.*per-file digests.*delete it"):
        _build_from(corpus, path, [], extractor="compare")
