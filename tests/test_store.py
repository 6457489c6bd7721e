import re

import h5py
import numpy as np
import pytest

from exvo_keras.data.audio import AudioError
from exvo_keras.store import (Shard, StoreError, StoreWriter, build_store, check_store, parse_shard, partial_path,
                              read_fused, read_store)

IDS = [f"[{i:05d}]" for i in range(50)]
SETTINGS = {"layer": 3, "pool": "mean+std"}


def _embed(ids):
    return np.stack([np.full(4, float(fid.strip("[]")), np.float32) for fid in ids])


def _build(path, embed=_embed, ids=IDS, settings=SETTINGS, corpus="abc"):
    return build_store(path, ids, embed, extractor="toy", settings=settings, corpus_fingerprint=corpus,
                       batch_size=8, progress=False)


def test_layout_is_the_documented_interface(tmp_path):
    path = _build(tmp_path / "toy.h5")
    with h5py.File(path) as f:
        assert f["embeddings"].shape == (50, 4) and f["embeddings"].dtype == np.float32
        assert [s.decode() for s in f["file_ids"][()]] == IDS
        assert f.attrs["extractor"] == "toy" and f.attrs["corpus"] == "abc" and f.attrs["complete"]
    assert not partial_path(path).exists()


def test_rows_are_aligned_to_the_requested_ids(tmp_path):
    path = _build(tmp_path / "toy.h5")
    want = ["[00042]", "[00003]", "[00017]"]
    np.testing.assert_array_equal(read_store(path, want)[:, 0], [42, 3, 17])
    with pytest.raises(StoreError, match="not in the store"):
        read_store(path, ["[99999]"])


def test_interrupted_extraction_resumes_and_is_never_taken_for_complete(tmp_path):
    path = tmp_path / "toy.h5"
    calls = []

    def crashing(ids):
        calls.extend(ids)
        if len(calls) > 20:
            raise KeyboardInterrupt  # a user's Ctrl-C in the middle of a batch
        return _embed(ids)

    with pytest.raises(KeyboardInterrupt):
        _build(path, crashing)
    assert not path.exists() and partial_path(path).exists()
    with pytest.raises(StoreError, match="interrupted run left"):
        read_store(path, IDS)

    calls.clear()
    _build(path, lambda ids: calls.extend(ids) or _embed(ids))
    assert len(calls) == 50 - 16  # the two finished batches of 8 were kept
    np.testing.assert_array_equal(read_store(path, IDS)[:, 0], np.arange(50))


def test_a_partial_from_other_settings_is_not_resumed(tmp_path):
    path = tmp_path / "toy.h5"
    writer = StoreWriter(path, IDS, "toy", {"layer": 1}, "abc")
    writer.write([0, 1], _embed(IDS[:2]) + 100)
    writer.close()
    _build(path)
    assert read_store(path, IDS[:1])[0, 0] == 0  # rows written under other settings were discarded


def test_a_broken_partial_file_is_restarted(tmp_path):
    path = tmp_path / "toy.h5"
    partial_path(path).write_bytes(b"not hdf5")
    _build(path)
    assert check_store(path)["complete"]


def test_refuses_another_corpus_extractor_or_settings_naming_which(tmp_path):
    path = _build(tmp_path / "toy.h5")
    with pytest.raises(StoreError, match="another corpus"):
        read_store(path, IDS, corpus_fingerprint="zzz")
    with pytest.raises(StoreError, match="extractor 'toy', not 'compare'"):
        read_store(path, IDS, extractor="compare")
    with pytest.raises(StoreError, match="layer: store has 3, wanted 4"):
        read_store(path, IDS, settings={"layer": 4, "pool": "mean+std"})
    with pytest.raises(StoreError, match="another corpus"):
        _build(path, corpus="zzz")


def test_bad_files_are_listed_together_and_the_rest_is_kept(tmp_path):
    path = tmp_path / "toy.h5"
    bad = {"[00005]", "[00031]"}

    def embed(ids):
        for fid in ids:
            if fid in bad:
                raise AudioError(f"wav/{fid}.wav", "not a readable audio file")
        return _embed(ids)

    with pytest.raises(StoreError) as err:
        _build(path, embed)
    assert "2 file(s)" in str(err.value) and "[00005]" in str(err.value) and "[00031]" in str(err.value)
    calls = []
    _build(path, lambda ids: calls.extend(ids) or _embed(ids))  # the files were fixed
    assert sorted(calls) == sorted(bad)


def test_early_fusion_concatenates_in_order(tmp_path):
    a = _build(tmp_path / "a.h5")
    b = _build(tmp_path / "b.h5", embed=lambda ids: -_embed(ids)[:, :2])
    fused = read_fused([a, b], ["[00007]", "[00002]"])
    np.testing.assert_array_equal(fused, [[7, 7, 7, 7, -7, -7], [2, 2, 2, 2, -2, -2]])


@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.9])
def test_a_truncated_store_is_a_store_error_naming_the_file_and_the_fix(tmp_path, keep):
    from exvo_keras.store import store_attrs, store_identity

    path = _build(tmp_path / "features" / "compare.h5")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    fix = rf"(?s){re.escape(str(path))}.*delete it and rerun"
    for read in (lambda: store_identity(path), lambda: store_attrs(path), lambda: check_store(path),
                 lambda: read_store(path, IDS), lambda: read_fused([path], IDS)):
        with pytest.raises(StoreError, match=fix):
            read()


def test_a_shard_takes_every_nth_clip_and_is_written_one_way():
    ids = [f"[{k:05d}]" for k in range(7)]
    assert parse_shard("1/3") == parse_shard((1, 3)) == Shard(1, 3) and parse_shard(None) is None
    assert Shard(1, 3).ids(ids) == ids[1::3] and str(Shard(1, 3)) == "1/3"
    assert sorted(sum((Shard(i, 3).ids(ids) for i in range(3)), [])) == ids
    for bad in ("3/3", "-1/2", "1", "a/b", (0, 0)):
        with pytest.raises(ValueError, match="0 <= I < N"):
            parse_shard(bad)


def test_rows_are_read_block_by_block_in_any_order_and_repeated(tmp_path):
    import h5py

    from exvo_keras.store import _rows

    values = np.random.default_rng(0).random((1000, 3, 5)).astype(np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["layers"], f["embeddings"] = values, values[:, 0]
    rows = np.random.default_rng(1).permutation(1000)[:300]
    rows = np.concatenate([rows, rows[:5]])  # a File_ID asked for twice
    with h5py.File(tmp_path / "x.h5", "r") as f:
        for block_bytes in (64, 1000, 1 << 20):  # one row a block, a few, all at once
            np.testing.assert_array_equal(_rows(f["layers"], rows, (1,), block_bytes), values[rows][:, 1])
            np.testing.assert_array_equal(_rows(f["layers"], rows, (slice(None),), block_bytes), values[rows])
            np.testing.assert_array_equal(_rows(f["embeddings"], rows, (), block_bytes), values[rows][:, 0])
