import numpy as np
import opensmile
import pytest
import soundfile as sf

from conftest import write_corpus
from exvo_keras.data.corpus import load_corpus
from exvo_keras.features.compare import DIMS, extract_compare
from exvo_keras.store import StoreError, read_store, store_attrs


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
