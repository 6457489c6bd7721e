"""SSL feature extraction: store layout and values against the encoder called clip by clip, batching, resuming,
shards, settings and provenance, bad files, do_normalize from a checkpoint folder."""

import builtins
import json
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

import exvo_keras.features.ssl as ssl_features
from conftest import write_corpus
from exvo_keras.data.corpus import load_corpus
from exvo_keras.features.ssl import extract_ssl, ssl_settings
from exvo_keras.models.ssl import Provenance, checkpoint_for, demo_encoder, load_pretrained
from exvo_keras.store import StoreError, merge_shards, parse_shard, partial_path, read_store, store_attrs
from exvo_keras.workspace import shard_store

FIXTURES = Path(__file__).resolve().parents[1] / "models" / "ssl" / "fixtures"
TOL = 1e-5
_encoders = {}


def encoder(family):
    """Demo encoders built once (their traced pooling functions are reused too); tests must not change them."""
    if family not in _encoders:
        _encoders[family] = demo_encoder(family, seed=0)
    return _encoders[family]


def varied_corpus(root, n_per_split=(4, 2, 2)):
    """The tiny corpus with clips of different lengths (0.1 s to 1.0 s), so batches carry padding."""
    write_corpus(root, n_per_split=n_per_split)
    rng = np.random.default_rng(3)
    for k, path in enumerate(sorted((root / "wav").glob("*.wav"))):
        n = int((0.1 + 0.9 * ((k * 7) % 8) / 7) * 16000)
        t = np.arange(n) / 16000
        sf.write(path, 0.3 * np.sin(2 * np.pi * (120 + 30 * k) * t) + 0.05 * rng.standard_normal(n), 16000,
                 subtype="PCM_16")
    return load_corpus(root)


def reference(model, clip, layer):
    """Mean and population std over frames of the model called on the clip alone (numpy, float64)."""
    out = model({"waveform": clip[None].astype(np.float32), "padding_mask": np.ones((1, clip.size), "int32")})
    frames = np.asarray(out["last_hidden_state"] if layer is None else out["hidden_states"][layer])[0]
    frames = frames.astype(np.float64)
    return np.concatenate([frames.mean(0), frames.std(0)])


def clips_of(corpus):
    return [sf.read(str(corpus.wav_path(f)), dtype="float32")[0] for f in corpus.file_ids()]


@pytest.fixture
def corpus(tmp_path):
    return varied_corpus(tmp_path / "corpus")


@pytest.mark.parametrize("layer", [None, 2])
def test_store_rows_equal_the_encoder_on_each_clip_alone(corpus, tmp_path, layer):
    model = encoder("wavlm")  # pre-norm: "last" (the normalised output) differs from hidden_states[-1]
    path = extract_ssl(corpus, model, tmp_path / "wavlm.h5", layer=layer, batch_seconds=3.0, progress=False)
    attrs = store_attrs(path)
    assert attrs["dims"] == 2 * model.hidden_size == 128
    assert attrs["extractor"] == "ssl"
    assert attrs["settings"]["layer"] == ("last" if layer is None else layer)
    assert attrs["settings"]["weights"] == "random-init seed 0"
    with h5py.File(path, "r") as f:
        assert [s.decode() for s in f["file_ids"][()]] == corpus.file_ids()
    rows = read_store(path, corpus.file_ids(), settings=ssl_settings(model, layer=layer))
    for clip, row in zip(clips_of(corpus), rows):
        assert np.abs(row - reference(model, clip, layer)).max() < TOL


def test_last_layer_mapping_follows_the_norm_layout():
    pre, post = encoder("wavlm"), encoder("wav2vec2")
    assert ssl_settings(pre, layer=-1)["layer"] == 4  # transformers 5: the last layer before the final norm
    assert ssl_settings(pre, layer=None)["layer"] == "last"
    assert ssl_settings(post, layer=-1)["layer"] == "last"  # post-norm: hidden_states[-1] is last_hidden_state
    assert ssl_settings(post, layer=4) == ssl_settings(post)
    with pytest.raises(ValueError, match=r"hidden_states\[0..4\]"):
        ssl_settings(pre, layer=5)


def test_batch_sizes_give_the_same_store(corpus, tmp_path):
    model = encoder("hubert")
    ids = corpus.file_ids()
    alone = read_store(extract_ssl(corpus, model, tmp_path / "a.h5", batch_seconds=0.01, chunk_clips=3,
                                   progress=False), ids)
    batched = read_store(extract_ssl(corpus, model, tmp_path / "b.h5", batch_seconds=100.0, progress=False), ids)
    assert np.abs(alone - batched).max() < TOL


def counting_loads(monkeypatch, fail_after=None):
    """Counts clips run through the encoder; raises RuntimeError once `fail_after` clips were run."""
    loaded = []
    real = ssl_features.pool_clips

    def pool(encoder, clips, **kwargs):
        if fail_after is not None and len(loaded) >= fail_after:
            raise RuntimeError("interrupted")
        loaded.extend(range(len(clips)))
        return real(encoder, clips, **kwargs)

    monkeypatch.setattr(ssl_features, "pool_clips", pool)
    return loaded


def test_an_interrupted_extraction_resumes_with_the_rest(corpus, tmp_path, monkeypatch):
    model = encoder("wav2vec2")
    out = tmp_path / "w.h5"
    loaded = counting_loads(monkeypatch, fail_after=3)
    with pytest.raises(RuntimeError, match="interrupted"):
        extract_ssl(corpus, model, out, chunk_clips=3, progress=False)
    assert partial_path(out).exists() and not out.exists()
    monkeypatch.undo()
    loaded = counting_loads(monkeypatch)
    extract_ssl(corpus, model, out, chunk_clips=3, progress=False)
    assert len(loaded) == len(corpus.file_ids()) - 3
    whole = read_store(extract_ssl(corpus, model, tmp_path / "whole.h5", progress=False), corpus.file_ids())
    assert np.abs(read_store(out, corpus.file_ids()) - whole).max() < TOL


def test_shards_merge_into_the_full_store_and_bad_sets_are_refused(corpus, tmp_path):
    model = encoder("wavlm")
    ids = corpus.file_ids()
    full = extract_ssl(corpus, model, tmp_path / "full.h5", progress=False)
    shards = [extract_ssl(corpus, model, tmp_path / "s.h5", shard=f"{i}/2", progress=False) for i in range(2)]
    assert shards == [tmp_path / "s.shard0of2.h5", tmp_path / "s.shard1of2.h5"]
    with h5py.File(shards[1], "r") as f:
        assert [s.decode() for s in f["file_ids"][()]] == ids[1::2]
    with pytest.raises(StoreError, match="shard: store has '0/2', wanted None"):
        read_store(shards[0], ids[::2], settings=ssl_settings(model))

    merged = merge_shards(shards, tmp_path / "merged.h5", corpus)
    assert store_attrs(merged)["settings"] == store_attrs(full)["settings"]
    got = read_store(merged, ids, corpus_fingerprint=corpus.fingerprint, settings=ssl_settings(model))
    assert np.abs(got - read_store(full, ids)).max() < TOL

    with pytest.raises(StoreError, match=r"miss 4 of the corpus's 8 clips"):
        merge_shards(shards[:1], tmp_path / "m1.h5", corpus)
    copy = tmp_path / "copy.shard0of2.h5"
    shutil.copyfile(shards[0], copy)
    with pytest.raises(StoreError, match="shards overlap: 4 File_ID"):
        merge_shards(shards + [copy], tmp_path / "m2.h5", corpus)
    other = extract_ssl(corpus, model, tmp_path / "o.h5", shard="1/2", layer=1, progress=False)
    with pytest.raises(StoreError, match=r"different settings \(layer: 'last' vs 1\)"):
        merge_shards([shards[0], other], tmp_path / "m3.h5", corpus)
    with pytest.raises(StoreError, match="not a shard store"):
        merge_shards([full, shards[1]], tmp_path / "m4.h5", corpus)
    shards[1].rename(partial_path(shards[1]))  # as an interrupted shard leaves it
    with pytest.raises(StoreError, match=r"s.shard1of2.h5: no such store \(an interrupted run"):
        merge_shards(shards, tmp_path / "m5.h5", corpus)
    assert not (tmp_path / "m5.h5").exists()


def test_a_store_from_another_layer_or_encoder_is_refused(corpus, tmp_path):
    model = encoder("wav2vec2")
    path = extract_ssl(corpus, model, tmp_path / "w.h5", progress=False)
    with pytest.raises(StoreError, match="layer: store has 'last', wanted 2"):
        read_store(path, corpus.file_ids(), settings=ssl_settings(model, layer=2))
    with pytest.raises(StoreError, match="weights: store has 'random-init seed 0', wanted 'random-init seed 1'"):
        extract_ssl(corpus, demo_encoder("wav2vec2", seed=1), path, progress=False)
    with pytest.raises(StoreError, match="model_type: store has 'wav2vec2', wanted 'hubert'"):
        extract_ssl(corpus, encoder("hubert"), path, progress=False)


def test_a_bad_wav_is_named_and_the_others_are_kept(corpus, tmp_path, monkeypatch):
    bad = corpus.wav_path(corpus.file_ids()[2])
    good = bad.read_bytes()
    bad.write_bytes(b"broken")
    model = encoder("wav2vec2")
    out = tmp_path / "w.h5"
    with pytest.raises(StoreError, match=rf"{bad.name}: not a readable audio file"):
        extract_ssl(corpus, model, out, progress=False)
    with h5py.File(partial_path(out), "r") as f:
        assert f["done"][()].tolist() == [i != 2 for i in range(8)]
    bad.write_bytes(good)
    loaded = counting_loads(monkeypatch)
    extract_ssl(corpus, model, out, progress=False)
    assert len(loaded) == 1  # only the mended clip runs through the encoder


def checkpoint(tmp_path, do_normalize):
    """A copy of the large-layout wav2vec2 fixture (LayerNorm after biased convolutions: unlike the base
    layout's group norm, not blind to the input's scale), with a preprocessor_config.json."""
    folder = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "wav2vec2_large", folder, ignore=shutil.ignore_patterns("expected.npz"))
    if do_normalize is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps({
            "do_normalize": do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1, "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False,
            "sampling_rate": 16000}))
    return folder


def test_do_normalize_from_the_checkpoint_normalises_each_clip(corpus, tmp_path, monkeypatch):
    folder = checkpoint(tmp_path, True)
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not available here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    path = extract_ssl(corpus, folder, tmp_path / "n.h5", progress=False)
    monkeypatch.undo()
    settings = store_attrs(path)["settings"]
    assert settings["do_normalize"] is True and settings["weights"].startswith("sha1 ")
    loaded = load_pretrained(folder)  # normalises by itself, as the checkpoint's feature extractor says
    assert loaded.do_normalize and settings == ssl_settings(loaded)  # the same checkpoint, the same settings
    raw = load_pretrained(folder, do_normalize=False)
    rows = read_store(path, corpus.file_ids())
    for clip, row in zip(clips_of(corpus), rows):
        normed = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)  # Wav2Vec2FeatureExtractor's formula
        assert np.abs(row - reference(raw, normed, None)).max() < 1e-4
        assert np.abs(row - reference(loaded, clip, None)).max() < 1e-4
    assert np.abs(rows[0] - reference(raw, clips_of(corpus)[0], None)).max() > 1e-2

    with pytest.raises(StoreError, match="do_normalize: store has True, wanted False"):
        extract_ssl(corpus, folder, path, normalize=False, progress=False)
    (folder / "preprocessor_config.json").unlink()
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        assert ssl_settings(folder)["do_normalize"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ssl_settings(folder, normalize=True)["do_normalize"] is True


def test_checkpoint_folders_by_feature_set_name(tmp_path):
    assert checkpoint_for("wavlm", None) is None
    with pytest.raises(FileNotFoundError, match=r"hubert-large-ll60k does not exist.*facebook/hubert-large-ll60k"):
        checkpoint_for("hubert", tmp_path)
    folder = tmp_path / "wav2vec2-base"
    shutil.copytree(FIXTURES / "wav2vec2_base", folder)
    assert checkpoint_for("wav2vec2", tmp_path) == folder
    with pytest.raises(KeyError, match="unknown SSL feature set"):
        checkpoint_for("whisper", tmp_path)
    assert shard_store(tmp_path / "wavlm.h5", *parse_shard("1/4")).name == "wavlm.shard1of4.h5"
    with pytest.raises(ValueError, match="0 <= I < N"):
        parse_shard("4/4")


def test_provenance_is_written_and_read_back_in_one_form():
    records = [Provenance("demo", False, seed=3), Provenance("checkpoint", True, digest="0123456789abcdef"),
               Provenance("variables", False, digest="fedcba9876543210")]
    assert [p.to_attrs()["weights"] for p in records] == [
        "random-init seed 3", "sha1 0123456789abcdef", "variables sha1 fedcba9876543210"]
    assert [Provenance.from_attrs(p.to_attrs()) for p in records] == records
    assert [p.random_init for p in records] == [True, False, False]
    with pytest.raises(ValueError, match="not a checkpoint digest"):
        Provenance.from_attrs({"weights": "random", "do_normalize": False})


def test_an_encoder_whose_weights_changed_is_no_longer_its_demo(corpus):
    model = demo_encoder("wav2vec2", seed=0)
    assert ssl_settings(model)["weights"] == "random-init seed 0"
    model.feature_projection.bias.assign(model.feature_projection.bias + 1.0)
    assert ssl_settings(model)["weights"].startswith("variables sha1 ")
    with pytest.raises(ValueError, match="built with do_normalize=False"):
        ssl_settings(model, normalize=True)
