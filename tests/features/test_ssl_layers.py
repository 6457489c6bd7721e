"""All-layer SSL stores: every hidden state's embedding from one pass equals a single-layer extraction of that
layer, shards and resumes keep the layers, and stores made before layers were kept stay readable or say why not."""

import h5py
import numpy as np
import pytest

from exvo_keras.features.ssl import extract_ssl, ssl_settings
from exvo_keras.store import (ALL_LAYERS, StoreError, merge_shards, partial_path, read_fused, read_store,
                              store_attrs, store_layers)
from exvo_keras.workspace import shard_store
from test_ssl_features import encoder, varied_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return varied_corpus(tmp_path_factory.mktemp("layers") / "corpus")


@pytest.fixture(scope="module")
def all_layers(corpus, tmp_path_factory):
    return extract_ssl(corpus, encoder("wavlm"), tmp_path_factory.mktemp("all") / "wavlm.h5", batch_seconds=3.0,
                       progress=False)


@pytest.mark.parametrize("family", ["wavlm", "wav2vec2"])  # pre-norm and post-norm
def test_every_layer_equals_its_own_single_layer_extraction(corpus, tmp_path, family):
    model = encoder(family)
    ids = corpus.file_ids()
    store = extract_ssl(corpus, model, tmp_path / "all.h5", batch_seconds=3.0, progress=False)
    count = model.num_hidden_layers + 1
    assert store_layers(store) == count
    assert store_attrs(store)["settings"]["layers"] == ALL_LAYERS
    every = read_store(store, ids, layer=ALL_LAYERS)
    assert every.shape == (len(ids), count, 2 * model.hidden_size)
    for k in range(count):
        single = extract_ssl(corpus, model, tmp_path / f"layer{k}.h5", layer=k, all_layers=False,
                             batch_seconds=3.0, progress=False)
        assert store_layers(single) == 0
        expected = read_store(single, ids, settings=ssl_settings(model, layer=k, all_layers=False))
        np.testing.assert_array_equal(read_store(store, ids, layer=k), expected)
        np.testing.assert_array_equal(every[:, k], expected)
    # negative indices count from the end, as hidden_states[-1]
    np.testing.assert_array_equal(read_store(store, ids, layer=-1), every[:, -1])
    # the default embeddings are the extraction of "last", untouched by keeping the layers
    last = extract_ssl(corpus, model, tmp_path / "last.h5", all_layers=False, batch_seconds=3.0, progress=False)
    np.testing.assert_array_equal(read_store(store, ids), read_store(last, ids))


def test_a_layer_outside_the_store_is_refused(all_layers, corpus):
    top = encoder("wavlm").num_hidden_layers
    with pytest.raises(StoreError, match=rf"layer {top + 1}: the store holds layers 0\.\.{top} "):
        read_store(all_layers, corpus.file_ids(), layer=top + 1)


def test_shards_merge_with_their_layers(corpus, tmp_path, all_layers):
    model = encoder("wavlm")
    target = tmp_path / "wavlm.h5"
    shards = [extract_ssl(corpus, model, target, shard=f"{i}/2", batch_seconds=3.0, progress=False) for i in (0, 1)]
    assert shards == [shard_store(target, i, 2) for i in (0, 1)]
    merged = merge_shards(shards, target, corpus)
    ids = corpus.file_ids()
    for i, shard in enumerate(shards):
        np.testing.assert_array_equal(read_store(merged, ids[i::2], layer=ALL_LAYERS),
                                      read_store(shard, ids[i::2], layer=ALL_LAYERS))
    # other batch-mates pad differently: equal to float32 rounding, as the embeddings are
    np.testing.assert_allclose(read_store(merged, ids, layer=ALL_LAYERS),
                               read_store(all_layers, ids, layer=ALL_LAYERS), atol=1e-6)


def _interrupted_after_one_chunk(monkeypatch, corpus, model, path, **kwargs):
    """An extraction of 3-clip chunks stopped (as by Ctrl-C) after its first chunk is written."""
    import exvo_keras.features.ssl as ssl_features

    real = ssl_features.pool_clips
    calls = {"n": 0}

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(*args, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(ssl_features, "pool_clips", failing)
        with pytest.raises(KeyboardInterrupt):
            extract_ssl(corpus, model, path, chunk_clips=3, batch_seconds=3.0, progress=False, **kwargs)


def test_an_interrupted_extraction_keeps_the_layers_it_had(corpus, tmp_path, all_layers, monkeypatch):
    model = encoder("wavlm")
    _interrupted_after_one_chunk(monkeypatch, corpus, model, tmp_path / "wavlm.h5")
    with h5py.File(partial_path(tmp_path / "wavlm.h5"), "r") as f:
        assert f["done"][()].sum() == 3 and f["layers"].shape[1] == model.num_hidden_layers + 1
    resumed = extract_ssl(corpus, model, tmp_path / "wavlm.h5", chunk_clips=3, batch_seconds=3.0, progress=False)
    whole = extract_ssl(corpus, model, tmp_path / "whole.h5", chunk_clips=3, batch_seconds=3.0, progress=False)
    ids = corpus.file_ids()
    np.testing.assert_array_equal(read_store(resumed, ids, layer=ALL_LAYERS), read_store(whole, ids, layer=ALL_LAYERS))


def _single_layer_store_as_made_before(corpus, path):
    """A store as extraction wrote it before stores kept every layer: no `layers`, no "layers" setting."""
    model = encoder("wavlm")
    extract_ssl(corpus, model, path, all_layers=False, batch_seconds=3.0, progress=False)
    return model


def test_a_store_from_before_layers_serves_its_layer_and_names_the_fix(corpus, tmp_path, all_layers):
    path = tmp_path / "features" / "wavlm.h5"
    model = _single_layer_store_as_made_before(corpus, path)
    ids = corpus.file_ids()
    np.testing.assert_array_equal(read_fused([path], ids), read_store(all_layers, ids))
    with pytest.raises(StoreError, match="made before SSL stores kept every layer.*extract-ssl wavlm"):
        read_fused([path], ids, layer=1)
    # extracting again as now (every layer) says what it is and what to do, rather than "other settings"
    with pytest.raises(StoreError, match="holds only layer 'last', without every layer beside it.*keep using it "
                                         "as it is, extract with --default-layer-only"):
        extract_ssl(corpus, model, path, batch_seconds=3.0, progress=False)
    assert extract_ssl(corpus, model, path, all_layers=False, progress=False) == path  # kept, nothing recomputed


def test_layer_choices_fuse_only_layered_stores(corpus, tmp_path, all_layers):
    ids = corpus.file_ids()
    other = tmp_path / "other.h5"
    with h5py.File(all_layers, "r") as f:
        embeddings = f["embeddings"][()]
    from exvo_keras.store import build_store

    build_store(other, ids, lambda batch: embeddings[[ids.index(i) for i in batch]] * 2, extractor="compare",
                settings={}, corpus=corpus, progress=False)
    fused = read_fused([other, all_layers], ids, layer=1)
    np.testing.assert_array_equal(fused, np.concatenate([embeddings * 2, read_store(all_layers, ids, layer=1)], 1))
    with pytest.raises(StoreError, match="none of .* holds layers"):
        read_fused([other], ids, layer=1)
    with pytest.raises(StoreError, match="weighted sum of layers reads one store"):
        read_fused([other, all_layers], ids, layer=ALL_LAYERS)


def test_keeping_the_layers_leaves_a_stores_identity_to_the_heads_alone(corpus, tmp_path, all_layers):
    from exvo_keras.store import store_identity

    single = tmp_path / "wavlm.h5"
    _single_layer_store_as_made_before(corpus, single)
    # a store re-extracted with its layers is still the input heads trained on the old one were trained on
    assert store_identity(single) == store_identity(all_layers)


def test_an_interrupted_extraction_from_before_layers_is_not_overwritten(corpus, tmp_path, monkeypatch):
    model = encoder("wavlm")
    path = tmp_path / "wavlm.h5"
    _interrupted_after_one_chunk(monkeypatch, corpus, model, path, all_layers=False)
    with pytest.raises(StoreError, match="interrupted extraction of only layer 'last'.*finish it as it was"):
        extract_ssl(corpus, model, path, chunk_clips=3, batch_seconds=3.0, progress=False)
    with h5py.File(partial_path(path), "r") as f:
        assert f["done"][()].sum() == 3  # the rows computed before are still there
    assert extract_ssl(corpus, model, path, all_layers=False, chunk_clips=3, batch_seconds=3.0,
                       progress=False) == path
