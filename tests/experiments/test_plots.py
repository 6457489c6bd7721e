"""The report's plots: on hand-made run folders (history.json, predictions written by `predictions_frame`), checked
against sklearn and `exvo_keras.metrics`, and the report's choice of which system to draw."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import write_corpus
from exvo_keras.data.corpus import load_corpus
from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments import plots
from exvo_keras.metrics import score_all, uar
from exvo_keras.registry import METRICS, WAVLM_HYBRID
from exvo_keras.training.mtl import predictions_frame
from exvo_keras.workspace import Workspace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FULL_HISTORY = {
    **{k: [1.0, 0.8, 0.7, 0.65] for k in ("loss", "val_loss", "emotion_loss", "age_loss", "country_loss",
                                           "val_emotion_loss", "val_age_loss", "val_country_loss")},
    **{k: [0.1, 0.2, 0.25, 0.3] for k in ("emo_ccc", "cou_uar", "s_mtl", "val_emo_ccc", "val_cou_uar", "val_s_mtl")},
    "age_mae": [9.0, 7.0, 6.5, 6.0], "val_age_mae": [9.5, 8.0, 7.5, 7.6],
    "start_scores": {"val_emo_ccc": 0.0, "val_age_mae": 10.0, "val_cou_uar": 0.25, "val_s_mtl": 0.0},
    "best_epoch": 2,
}
OLD_HISTORY = {"loss": [1.0, 0.9, 0.85], "val_loss": [1.1, 1.0, 1.02]}
# the linear head's history.json: the penalties it chose, no epochs
LINEAR_HISTORY = {"dev_emo_ccc": {"0.1": 0.2, "1.0": 0.25}, "dev_age_mae": {"0.1": -7.0}, "dev_cou_uar": {"1": 0.3}}


def assert_png(path):
    assert path.exists() and path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as image:
        image.verify()


def png_width(path):
    with Image.open(path) as image:
        return image.size[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # Test labels hidden, as in the real ExVo
    return load_corpus(write_corpus(tmp_path_factory.mktemp("plots") / "corpus", n_per_split=(6, 12, 4)))


def fake_run(ws, key, corpus, seed_scores, history=FULL_HISTORY, splits=("Val",), seed=0, history_seeds=None):
    """A finished run folder: per seed metrics.json with Val scores (every metric = `seed_scores[seed]`),
    random predictions on `splits`, history.json (unless None; only in `history_seeds` if given); summary.json
    with the mean over seeds."""
    rng = np.random.default_rng(seed)
    folder = ws.run(key)
    for s, score in seed_scores.items():
        seed_dir = folder.seed(s)
        seed_dir.path.mkdir(parents=True)
        for split in splits:
            ids = corpus.file_ids(split)
            n = len(ids)
            pred = {"emotion": rng.random((n, len(EMOTIONS))), "age": rng.uniform(18, 40, n),
                    "country_prob": rng.dirichlet(np.ones(len(COUNTRIES)), n)}
            seed_dir.predictions(split).write_text(predictions_frame(ids, pred).to_csv(index=False))
        if history is not None and (history_seeds is None or s in history_seeds):
            seed_dir.history.write_text(json.dumps(history))
        seed_dir.metrics.write_text(json.dumps({"Val": {m: score for m in METRICS}}))
    mean = float(np.mean(list(seed_scores.values())))
    folder.summary.write_text(json.dumps({"Val": {m: {"mean": mean, "std": 0.0, "n": len(seed_scores)}
                                                  for m in METRICS}}))
    return folder


def test_confusion_counts_equal_sklearns_and_their_rows_give_the_uar():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 200)  # the last country never occurs
    pred = rng.integers(0, 4, 200)
    counts = plots.confusion_counts(true, pred)
    np.testing.assert_array_equal(counts, confusion_matrix(true, pred, labels=range(len(COUNTRIES))))
    shares = plots.row_normalised(counts)
    assert np.isnan(shares[3]).all()
    assert np.nanmean(np.diag(shares)) == pytest.approx(uar(true, pred))
    with pytest.raises(ValueError):
        plots.confusion_counts([0, 4], [0, 1])
    with pytest.raises(ValueError):
        plots.confusion_counts([0, 1], [0, 1.5])


def test_emotion_ccc_is_the_metrics_per_emotion_ccc():
    rng = np.random.default_rng(1)
    true = rng.random((50, len(EMOTIONS)))
    pred = 0.5 * true + 0.5 * rng.random((50, len(EMOTIONS)))
    scores = score_all(true, pred, np.ones(50), np.ones(50), np.zeros(50, int), np.zeros(50, int))
    ccc = plots.emotion_ccc(true, pred)
    assert list(ccc.index) == list(EMOTIONS)
    np.testing.assert_allclose(ccc.to_numpy(), [scores[f"ccc_{e}"] for e in EMOTIONS], rtol=0, atol=1e-12)
    assert ccc.mean() == pytest.approx(scores["emo_ccc"])


def test_training_curves_of_full_old_and_linear_histories(tmp_path):
    series = plots.epoch_series(FULL_HISTORY)
    assert "best_epoch" not in series and "start_scores" not in series and len(series) == 16
    full = plots.plot_training_curves(FULL_HISTORY, tmp_path / "full.png", "full")
    old = plots.plot_training_curves(OLD_HISTORY, tmp_path / "old.png")
    assert_png(full)
    assert_png(old)
    # four panels in two columns against the old runs' single loss panel
    assert png_width(full) > png_width(old)
    assert plots.plot_training_curves(LINEAR_HISTORY, tmp_path / "linear.png") is None
    assert not (tmp_path / "linear.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.png", "old.png"]  # no temporary file left


def test_network_curves_take_either_name_of_the_learning_rate(tmp_path):
    base = pd.DataFrame({"epoch": [0, 1, 2, 2], "loss": [2.0, 1.5, 1.3, 1.2], "accuracy": [0.2, 0.3, 0.35, 0.4],
                         "val_loss": [2.1, 1.7, 1.6, 1.6], "val_accuracy": [0.2, 0.25, 0.3, 0.3]})
    rate = [0.1, 0.1, 0.05, 0.05]
    with_lr = plots.plot_network_curves(base.assign(lr=rate), tmp_path / "lr.png")
    with_name = plots.plot_network_curves(base.assign(learning_rate=rate), tmp_path / "learning_rate.png")
    without = plots.plot_network_curves(base, tmp_path / "none.png")
    for path in (with_lr, with_name, without):
        assert_png(path)
    # the rate gets its own panel under either name
    assert png_width(with_lr) == png_width(with_name) > png_width(without)
    assert plots.plot_network_curves(base.iloc[:0], tmp_path / "empty.png") is None


def test_system_plots_draw_the_best_seed_of_a_run(corpus, tmp_path):
    ws = Workspace(tmp_path / "work")
    # only seed 1, the better one on Val, has a history: drawing seed 0 would leave the curves out
    fake_run(ws, "compare-sys2", corpus, {0: 0.1, 1: 0.3, 2: 0.2}, history=OLD_HISTORY, history_seeds={1})
    drawn = plots.system_plots("compare-sys2", corpus, ws, tmp_path / "results", table=2)
    assert list(drawn) == list(plots.KINDS)
    for kind, path in drawn.items():
        assert path == tmp_path / "results" / "plots" / f"table2_compare-sys2_{kind}.png"
        assert_png(path)
    # a seed without its split's predictions still gets its curves
    assert list(plots.system_plots("compare-sys2", corpus, ws, tmp_path / "other", table=2, seed=1,
                                   split="Train")) == ["training"]


def test_a_linear_head_and_a_hybrid_draw_what_they_have(corpus, tmp_path):
    ws = Workspace(tmp_path / "work")
    fake_run(ws, "compare-linear", corpus, {0: 0.2}, history=LINEAR_HISTORY)
    fake_run(ws, WAVLM_HYBRID.key, corpus, {0: 0.2}, history=None, splits=("Val", "Test"))
    out = tmp_path / "results"
    assert list(plots.system_plots("compare-linear", corpus, ws, out, table=2)) == ["country", "age", "emotion"]
    # Test labels are hidden: a hybrid, with no history either, has nothing to draw there
    assert plots.system_plots(WAVLM_HYBRID.key, corpus, ws, out, table=3) == {}
    assert list(plots.system_plots(WAVLM_HYBRID.key, corpus, ws, out, table=3, split="Val")) == [
        "country", "age", "emotion"]


def test_the_report_draws_the_row_with_the_best_val_s_mtl(corpus, tmp_path):
    from exvo_keras.experiments.report import table_report

    ws = Workspace(tmp_path / "work")
    fake_run(ws, "compare-sys1", corpus, {0: 0.30, 1: 0.20}, seed=1)   # mean 0.25
    fake_run(ws, "compare-sys2", corpus, {0: 0.27, 1: 0.29}, seed=2)   # mean 0.28: the best row
    # the auto hybrid, best on Val by construction, is never the pick, nor drawn in Table 3
    fake_run(ws, "hybrid-auto", corpus, {0: 0.9}, history=None, splits=("Val", "Test"))
    assert plots.best_system(2, ws) == "compare-sys2"
    out = tmp_path / "results"
    stale = out / "plots" / "table2_compare-sys1_age.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_MAGIC)
    frame, md = table_report(2, corpus, ws, out)
    names = sorted(p.name for p in (out / "plots").glob("table2_*.png"))
    assert names == sorted(f"table2_compare-sys2_{kind}.png" for kind in plots.KINDS)
    assert "## Plots" in md and "### `compare-sys2`" in md and "compare-sys1`" not in md
    assert "![emotion](plots/table2_compare-sys2_emotion.png)" in (out / "table2.md").read_text()
    # Table 3 draws its own best row and the paper's hybrid once it has Test predictions
    fake_run(ws, "wavlm-sys2", corpus, {0: 0.1})
    fake_run(ws, WAVLM_HYBRID.key, corpus, {0: 0.5}, history=None, splits=("Val", "Test"))
    assert plots.table_systems(3, ws) == ["compare-sys1", WAVLM_HYBRID.key]


def test_table1_draws_the_best_network_of_each_task(corpus, tmp_path):
    ws = Workspace(tmp_path / "work")
    val = corpus.file_ids("Val")
    true = corpus.labels("Val")["country"]
    for name, score in (("raw_exvo_cr", 0.3), ("zff_exvo_cr", 0.4)):
        folder = ws.network(name)
        folder.path.mkdir(parents=True)
        folder.metrics.write_text(json.dumps({"Val": {"uar": score, "war": score}}))
        pd.DataFrame({"epoch": range(3), "loss": [2.0, 1.8, 1.7], "accuracy": [0.3, 0.4, 0.5],
                      "val_loss": [2.0, 1.9, 1.95], "val_accuracy": [0.3, 0.3, 0.4], "lr": 0.1}).to_csv(
            folder.history, index=False)
        pd.DataFrame({"File_ID": val, "predicted": np.roll(true, 1), "true": true,
                      "corpus": corpus.fingerprint}).to_csv(folder.decisions("Val"), index=False)
    assert plots.best_networks(ws) == ["zff_exvo_cr"]
    drawn = plots.table_plots(1, corpus, ws, tmp_path / "results")
    assert list(drawn) == ["zff_exvo_cr"] and list(drawn["zff_exvo_cr"]) == ["training", "confusion"]
    for path in drawn["zff_exvo_cr"].values():
        assert_png(path)
