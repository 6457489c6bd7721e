import json

import numpy as np
import pytest

from conftest import learnable_corpus
from exvo_keras.store import build_store
from exvo_keras.training.mtl import HeadTraining, best_seed, reference_scores, run_head, seed_metrics
from exvo_keras.training.recipes import DEFAULT_RECIPE, RECIPES
from exvo_keras.workspace import RunFolder


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """A corpus whose 'embeddings' carry the labels plus noise, so a working trainer must beat the reference."""
    corpus, labels_of = learnable_corpus(tmp_path_factory.mktemp("c") / "corpus")
    rng = np.random.default_rng(0)

    def embed(ids):
        clean = labels_of(ids)
        return clean + 0.1 * rng.standard_normal(clean.shape) + 100.0  # offset: the head must standardise

    store = build_store(corpus.root.parent / "toy.h5", corpus.file_ids(), embed, extractor="toy", settings={},
                        corpus_fingerprint=corpus.fingerprint, progress=False)
    return corpus, store


def _cfg(store, **kw):
    # A larger learning rate than the recipe's 1e-3 so a few epochs suffice on the toy data.
    return HeadTraining.from_recipe([str(store)], kw.pop("head", "sys1"), kw.pop("recipe", "baseline"),
                                    **{"epochs": 12, "batch_size": 16, "patience": 3, "learning_rate": 1e-2, **kw})


def test_trained_head_beats_the_reference_and_summarises_seeds(learnable, tmp_path):
    corpus, store = learnable
    summary = run_head(tmp_path / "run", corpus, _cfg(store), seeds=[0, 1], progress=False)["Val"]
    ref = reference_scores(corpus, "Val")
    assert summary["emo_ccc"]["mean"] > 0.3 and summary["cou_uar"]["mean"] > 0.6
    assert summary["age_mae"]["mean"] < ref["age_mae"]
    assert summary["s_mtl"]["n"] == 2
    per_seed = [json.loads((tmp_path / "run" / f"seed_{s}" / "metrics.json").read_text())["Val"]["s_mtl"]
                for s in (0, 1)]
    assert summary["s_mtl"]["mean"] == pytest.approx(np.mean(per_seed))
    assert summary["s_mtl"]["std"] == pytest.approx(np.std(per_seed))
    preds = (tmp_path / "run" / "seed_0" / "predictions_Val.csv").read_text().splitlines()
    assert preds[0].startswith("File_ID,Country,Age,Awe") and len(preds) == 41


def test_recipe_defaults_live_in_the_recipes(learnable):
    corpus, store = learnable
    cfg = HeadTraining.from_recipe([store], "sys2", corpus=corpus)
    assert cfg.recipe == DEFAULT_RECIPE and cfg.epochs == RECIPES[DEFAULT_RECIPE]["epochs"]
    assert cfg.eval_splits == ["Val", "Test"]  # the corpus has Test clips: predicted by default
    assert HeadTraining.from_recipe([store], "sys2", corpus=corpus, eval_splits=["Val"]).eval_splits == ["Val"]
    assert HeadTraining.from_recipe([store], "sys2", None).recipe == DEFAULT_RECIPE


def test_seed_helpers_read_a_path_or_a_run_folder(learnable, tmp_path):
    corpus, store = learnable
    run_head(tmp_path / "run", corpus, _cfg(store, epochs=2), seeds=[0, 1], progress=False)
    (tmp_path / "run" / "seed_7").mkdir()  # a seed that never finished is no seed
    found = seed_metrics(tmp_path / "run")
    assert list(found) == [0, 1] and found == seed_metrics(RunFolder(tmp_path / "run"))
    assert best_seed(tmp_path / "run") == max(found, key=lambda s: found[s]["Val"]["s_mtl"])


def test_a_seed_fixes_the_run_alone_or_after_other_seeds(learnable, tmp_path):
    corpus, store = learnable
    run_head(tmp_path / "a", corpus, _cfg(store), seeds=[3], progress=False)
    run_head(tmp_path / "b", corpus, _cfg(store), seeds=[3], progress=False)
    run_head(tmp_path / "c", corpus, _cfg(store), seeds=[5, 3], progress=False)  # seed 3 reuses seed 5's graphs
    a = (tmp_path / "a" / "seed_3" / "predictions_Val.csv").read_text()
    assert a == (tmp_path / "b" / "seed_3" / "predictions_Val.csv").read_text()
    assert a == (tmp_path / "c" / "seed_3" / "predictions_Val.csv").read_text()
    assert a != (tmp_path / "c" / "seed_5" / "predictions_Val.csv").read_text()


def test_early_stopping_keeps_the_best_epoch(learnable, tmp_path):
    corpus, store = learnable
    cfg = _cfg(store, epochs=6)
    run_head(tmp_path / "r", corpus, cfg, seeds=[0], progress=False)
    history = json.loads((tmp_path / "r" / "seed_0" / "history.json").read_text())
    import keras

    from exvo_keras.store import read_store

    model = keras.saving.load_model(tmp_path / "r" / "seed_0" / "model.keras")
    ids = corpus.file_ids("Val")
    loss = float(model.compute_loss(y=corpus.labels_of(ids), y_pred=model(read_store(store, ids))))
    assert loss == pytest.approx(min(history["val_loss"]), rel=1e-3)


def test_finished_seeds_are_reused_and_a_changed_config_is_refused(learnable, tmp_path):
    corpus, store = learnable
    run = tmp_path / "run"
    run_head(run, corpus, _cfg(store, epochs=2), seeds=[0, 1], progress=False)
    stamp = (run / "seed_0" / "metrics.json").stat().st_mtime_ns
    (run / "seed_1" / "metrics.json").unlink()  # as if interrupted during seed 1
    run_head(run, corpus, _cfg(store, epochs=2), seeds=[0, 1], progress=False)
    assert (run / "seed_0" / "metrics.json").stat().st_mtime_ns == stamp
    assert (run / "seed_1" / "metrics.json").exists()
    with pytest.raises(ValueError, match="differs in epochs"):
        run_head(run, corpus, _cfg(store, epochs=3), seeds=[0], progress=False)


def test_baseline_head_trains_with_uncertainty_weights(learnable, tmp_path):
    corpus, store = learnable
    summary = run_head(tmp_path / "b", corpus, _cfg(store, head="baseline", epochs=6), seeds=[0], progress=False)
    assert summary["Val"]["emo_ccc"]["mean"] > 0.3


def test_linear_head_is_sklearns_ridge_and_logistic_fit(learnable, tmp_path):
    from sklearn.linear_model import LogisticRegression, Ridge

    from exvo_keras.data.corpus import speaker_split
    from exvo_keras.store import read_fused
    from exvo_keras.training.mtl import load_head, predict

    corpus, store = learnable
    run_head(tmp_path / "lin", corpus, _cfg(store, head="linear", recipe="default"), seeds=[0, 1], progress=False)
    history = json.loads((tmp_path / "lin" / "seed_0" / "history.json").read_text())
    assert not (tmp_path / "lin" / "seed_1").exists()  # deterministic: one fit stands for every seed
    fit, dev = speaker_split(corpus, 0.1, seed=0)
    X = read_fused([store], fit, corpus_fingerprint=corpus.fingerprint)
    mean, std = X.mean(0), X.std(0)
    ids = fit + dev
    Z = np.clip((read_fused([store], ids, corpus_fingerprint=corpus.fingerprint) - mean) / std, -5, 5)
    y = corpus.labels_of(ids)
    val = corpus.file_ids("Val")
    Zv = np.clip((read_fused([store], val, corpus_fingerprint=corpus.fingerprint) - mean) / std, -5, 5)
    ours = predict(load_head(tmp_path / "lin" / "seed_0" / "model.keras"),
                   read_fused([store], val, corpus_fingerprint=corpus.fingerprint))
    emo = Ridge(alpha=history["alpha_emotion"]).fit(Z, y["emotion"]).predict(Zv)
    np.testing.assert_allclose(ours["emotion"], emo, atol=2e-4)
    cou = LogisticRegression(C=history["C_country"], class_weight="balanced", max_iter=2000).fit(Z, y["country"])
    np.testing.assert_allclose(ours["country_prob"], cou.predict_proba(Zv), atol=2e-4)


def test_default_recipe_starts_from_the_linear_fit_and_is_deterministic(learnable, tmp_path):
    corpus, store = learnable
    cfg = _cfg(store, recipe="default", learning_rate=1e-3, epochs=8, batch_size=32, patience=8)
    run_head(tmp_path / "a", corpus, cfg, seeds=[0], progress=False)
    run_head(tmp_path / "b", corpus, cfg, seeds=[1, 0], progress=False)
    a = (tmp_path / "a" / "seed_0" / "predictions_Val.csv").read_text()
    assert a == (tmp_path / "b" / "seed_0" / "predictions_Val.csv").read_text()
    history = json.loads((tmp_path / "a" / "seed_0" / "history.json").read_text())
    # The untrained head (the linear fit) is scored first; the kept epoch is never worse on dev than it.
    start, dev = history["start_scores"]["val_s_mtl"], history["val_s_mtl"]
    assert len(dev) == len(history["loss"])
    kept = start if history["best_epoch"] == -1 else dev[history["best_epoch"]]
    assert kept == max([start, *dev])
    assert (tmp_path / "a" / "seed_0" / "metrics.json").exists()


def test_clipped_standardisation_bounds_what_one_wild_feature_does():
    from exvo_keras.models.mtl import MultiTaskHead

    head = MultiTaskHead.from_preset("linear", input_dim=3, feature_mean=np.zeros(3), feature_std=np.full(3, 1e-6),
                                     clip_z=5.0, seed=0)
    small = head(np.array([[5e-6, 0, 0]], "float32"))["age"]
    wild = head(np.array([[1e3, 0, 0]], "float32"))["age"]  # z = 1e9 without the clip
    np.testing.assert_allclose(np.asarray(wild), np.asarray(small), rtol=1e-6)
