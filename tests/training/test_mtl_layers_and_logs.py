"""Heads on SSL layers (a chosen layer, a learned softmax-weighted sum) and what a head run logs per epoch:
each task's loss and scores in history.json and TensorBoard under the seed's folder."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import layered_rows, learnable_corpus
from exvo_keras.store import build_store
from exvo_keras.training.mtl import HeadTraining, load_head, reference_scores, run_head
from exvo_keras.training.recipes import WEIGHTED_LAYERS
from exvo_keras.workspace import RunFolder

INFORMATIVE = 2  # the one layer of the toy store that carries the labels
LAYERS = 4


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """An 'SSL' store whose layers are noise except layer INFORMATIVE, which holds the labels plus noise."""
    corpus, labels_of = learnable_corpus(tmp_path_factory.mktemp("c") / "corpus")
    store = build_store(corpus.root.parent / "ssl.h5", corpus.file_ids(), layered_rows(labels_of, LAYERS, INFORMATIVE),
                        extractor="ssl", settings={}, corpus=corpus, progress=False)
    return corpus, store


def _cfg(store, **kw):
    return HeadTraining.from_recipe([str(store)], kw.pop("head", "sys1"), kw.pop("recipe", "baseline"),
                                    **{"epochs": 12, "batch_size": 16, "patience": 3, "learning_rate": 1e-2, **kw})


def test_a_chosen_layer_is_what_the_head_reads(layered, tmp_path):
    corpus, store = layered
    good = run_head(tmp_path / "good", corpus, _cfg(store, layer=INFORMATIVE), [0], progress=False)["Val"]
    last = run_head(tmp_path / "last", corpus, _cfg(store), [0], progress=False)["Val"]
    ref = reference_scores(corpus, "Val")
    assert good["s_mtl"]["mean"] > ref["s_mtl"] + 0.05
    assert last["s_mtl"]["mean"] < good["s_mtl"]["mean"] - 0.05  # the default (noise) layer carries nothing
    config = json.loads((tmp_path / "good" / "config.json").read_text())
    assert config["layer"] == INFORMATIVE
    assert "layer" not in json.loads((tmp_path / "last" / "config.json").read_text())  # old folders still match


def test_weighted_layers_learn_to_weight_the_informative_layer(layered, tmp_path):
    corpus, store = layered
    summary = run_head(tmp_path / "weighted", corpus, _cfg(store, layer=WEIGHTED_LAYERS, epochs=20), [0],
                       progress=False)["Val"]
    assert summary["s_mtl"]["mean"] > reference_scores(corpus, "Val")["s_mtl"] + 0.05
    head = load_head(RunFolder(tmp_path / "weighted").seed(0).model)
    assert head.input_layers == LAYERS
    weights = head.get_layer("layer_weights").layer_weights()
    assert weights.argmax() == INFORMATIVE and weights[INFORMATIVE] > 1.5 / LAYERS


def test_with_a_linear_skip_the_skip_reads_the_frozen_mean_of_the_layers(layered, tmp_path):
    corpus, store = layered
    run_head(tmp_path / "skip", corpus, _cfg(store, layer=WEIGHTED_LAYERS, recipe="default", epochs=8), [0],
             progress=False)
    head = load_head(RunFolder(tmp_path / "skip").seed(0).model)
    assert head.linear_skip
    np.testing.assert_allclose(head.get_layer("layer_mean").layer_weights(), 1 / LAYERS, rtol=1e-6)
    # only the hidden layers' weights learn (the epoch kept may be the start, the linear fit itself)
    assert head.get_layer("layer_weights").trainable and not head.get_layer("layer_mean").trainable
    assert [w.name for w in head.trainable_weights].count("logits") == 1


def test_the_linear_head_on_weighted_layers_fits_the_mean_of_the_standardised_layers(layered, tmp_path):
    import keras

    from exvo_keras.store import ALL_LAYERS, read_store

    corpus, store = layered
    run_head(tmp_path / "lin", corpus, _cfg(store, head="linear", layer=WEIGHTED_LAYERS), [0], progress=False)
    head = load_head(RunFolder(tmp_path / "lin").seed(0).model)
    X = read_store(store, corpus.file_ids("Val"), layer=ALL_LAYERS)
    # each layer standardised by its own Train statistics, then the plain mean over layers
    z = (X - head.feature_mean) / head.feature_std
    if head.clip_z is not None:
        z = np.clip(z, -head.clip_z, head.clip_z)
    z = z.mean(axis=1)
    front = keras.Model(head.input, head.get_layer(head.linear_input).output)
    np.testing.assert_allclose(front.predict(X, verbose=0), z, atol=1e-5)
    kernel, bias = head.get_layer("emotion_out").get_weights()
    np.testing.assert_allclose(head.predict(X, verbose=0)["emotion"], z @ kernel + bias, atol=1e-4)
    assert not head.trainable_weights or "logits" not in [w.name for w in head.trainable_weights]


def _event_tags(folder):
    tags = set()
    for path in folder.rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_history_and_tensorboard_hold_each_tasks_curves(layered, tmp_path):
    corpus, store = layered
    run_head(tmp_path / "run", corpus, _cfg(store, layer=INFORMATIVE, recipe="default", epochs=6), [0],
             progress=False)
    seed = RunFolder(tmp_path / "run").seed(0)
    history = json.loads(seed.history.read_text())
    epochs = len(history["loss"])
    per_epoch = [f"{p}{k}" for p in ("", "val_") for k in ("loss", "emotion_loss", "age_loss", "country_loss",
                                                             "emo_ccc", "age_mae", "cou_uar", "s_mtl")]
    for key in per_epoch:
        assert len(history[key]) == epochs, key
    # The tasks' losses are what the total is made of: their mean plus the L2 penalty (default recipe), which the
    # validation loss carries too, so the totals differ from the mean by the same penalty.
    mean = np.mean([history[f"{t}_loss"] for t in ("emotion", "age", "country")], axis=0)
    val_mean = np.mean([history[f"val_{t}_loss"] for t in ("emotion", "age", "country")], axis=0)
    penalty = np.asarray(history["val_loss"]) - val_mean
    assert (penalty > 0).all()
    assert np.all(np.asarray(history["loss"]) - mean > 0)
    # and the scores are on the right scales
    assert all(0 <= v <= 1 for v in history["val_cou_uar"]) and all(v > 0 for v in history["age_mae"])
    train_tags, val_tags = _event_tags(seed.tensorboard / "train"), _event_tags(seed.tensorboard / "validation")
    for tag in ("epoch_loss", "epoch_emotion_loss", "epoch_age_loss", "epoch_country_loss", "epoch_s_mtl"):
        assert tag in train_tags and tag in val_tags, tag


def test_task_losses_average_to_the_total_without_penalties(layered, tmp_path):
    corpus, store = layered
    run_head(tmp_path / "plain", corpus, _cfg(store, layer=INFORMATIVE, epochs=4), [0], progress=False)
    history = json.loads(RunFolder(tmp_path / "plain").seed(0).history.read_text())
    for prefix in ("", "val_"):
        mean = np.mean([history[f"{prefix}{t}_loss"] for t in ("emotion", "age", "country")], axis=0)
        np.testing.assert_allclose(history[f"{prefix}loss"], mean, rtol=1e-5)
