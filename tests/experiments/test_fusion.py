"""Early fusion, hybrids, Test scoring and the table reports, on toy stores under the registry's real keys."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import read_rows, write_corpus
from exvo_keras.data.corpus import load_corpus
from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments.fusion import choose_sources, run_hybrid
from exvo_keras.experiments.report import table_report
from exvo_keras.experiments.reproduce import selected, train_systems
from exvo_keras.registry import AUTO_HYBRID, TASKS, Hybrid, NetworkSource, SystemSource
from exvo_keras.metrics import uar
from exvo_keras.store import build_store, read_store
from exvo_keras.workspace import Workspace

FAST = dict(epochs=4, batch_size=16, learning_rate=1e-2, patience=2)
SEEDS = [0, 1]


def _store(corpus, work, name, informative, noise, seed):
    """A toy store: the labels named in `informative` plus noise, so systems differ per task."""
    table = corpus.table
    rng = np.random.default_rng(seed)

    def embed(ids):
        rows = table.loc[ids]
        parts = [rng.standard_normal((len(ids), 4))]
        if "emotion" in informative:
            parts.append(rows[list(EMOTIONS)].fillna(0.5).to_numpy())
        if "age" in informative:
            parts.append(rows[["Age"]].fillna(30).to_numpy() / 10)
        if "country" in informative:
            parts.append(np.eye(4)[rows["Country"].fillna(0).astype(int)])
        x = np.concatenate(parts, axis=1)
        return x + noise * rng.standard_normal(x.shape)

    return build_store(work.store(name), corpus.file_ids(), embed, extractor="toy", settings={},
                       corpus_fingerprint=corpus.fingerprint, progress=False)


def _label_test(root):
    """Gives the Test split labels through test_labels.csv, as the demo corpus does."""
    info = pd.read_csv(root / "data_info.csv")
    test = info[info["Split"] == "Test"].copy()
    rng = np.random.default_rng(7)
    emo = rng.random((len(test), len(EMOTIONS)))
    emo /= emo.max(axis=1, keepdims=True)
    test[list(EMOTIONS)] = emo
    test["Age"] = rng.integers(18, 40, len(test))
    test["Country"] = np.arange(len(test)) % 4
    test["Country_string"] = [COUNTRIES[c] for c in test["Country"]]
    test.to_csv(root / "test_labels.csv", index=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two trained systems (one good at emotion, one at age and country), an early-fusion row and a CR
    network's decisions, in a work folder laid out as the registry expects."""
    base = tmp_path_factory.mktemp("fusion")
    root = write_corpus(base / "corpus", n_per_split=(60, 24, 12), duration=0.1)
    _label_test(root)
    corpus = load_corpus(root)
    work = Workspace(base / "work")
    _store(corpus, work, "compare", {"emotion"}, 0.05, 0)
    _store(corpus, work, "raw_exvo_er", {"age", "country"}, 0.05, 1)
    _store(corpus, work, "zff_exvo_er", set(), 0.0, 2)
    keys = ["compare-sys1", "raw_exvo_er-sys2", "raw_exvo_er+zff_exvo_er-sys1"]
    train_systems(selected(keys=keys), corpus, work, SEEDS, progress=False, log=lambda s: None, **FAST)
    # the Raw(ExVo)-CR network's own decisions: right on every other clip
    folder = work.root / "networks" / "raw_exvo_cr"
    folder.mkdir(parents=True)
    for split in ("Val", "Test"):
        truth = corpus.labels(split)["country"]
        pred = np.where(np.arange(len(truth)) % 2 == 0, truth, (truth + 1) % 4)
        pd.DataFrame({"File_ID": corpus.file_ids(split), "predicted": pred, "true": truth,
                      "corpus": corpus.fingerprint}).to_csv(
            folder / f"decisions_{split}.csv", index=False)
        if split == "Val":
            (folder / "metrics.json").write_text(json.dumps({"Val": {"uar": uar(truth, pred)}}))
    (folder / "best.keras").write_bytes(b"")  # only its presence is checked before the decisions are read
    return corpus, work


def _seed_metrics(work, key, seed):
    return json.loads(work.run(key).seed(seed).metrics.read_text())


def test_a_hybrid_scores_each_task_exactly_as_its_source(trained):
    corpus, work = trained
    hybrid = Hybrid(2, "toy", "Sys-1", "hybrid-toy",
                    (("emotion", "compare-sys1"), ("age", "raw_exvo_er-sys2"), ("country", "network:raw_exvo_cr")),
                    None)
    summary = run_hybrid(hybrid, corpus, work, SEEDS, ["Val", "Test"])
    assert summary["Val"]["s_mtl"]["n"] == len(SEEDS)
    for seed in SEEDS:
        mine = json.loads((work.root / "runs" / "hybrid-toy" / f"seed_{seed}" / "metrics.json").read_text())
        emo = _seed_metrics(work, "compare-sys1", seed)
        age = _seed_metrics(work, "raw_exvo_er-sys2", seed)
        for split in ("Val", "Test"):
            # equal up to summation order (numpy sums a column slice and a whole frame in other orders)
            assert mine[split]["emo_ccc"] == pytest.approx(emo[split]["emo_ccc"], rel=1e-12, abs=0)
            assert mine[split]["age_mae"] == pytest.approx(age[split]["age_mae"], rel=1e-12, abs=0)
            decisions = pd.read_csv(work.root / "networks" / "raw_exvo_cr" / f"decisions_{split}.csv")
            assert mine[split]["cou_uar"] == pytest.approx(uar(decisions["true"], decisions["predicted"]))
            # the combined S_MTL is not any source's: it is recomputed from the three
            assert mine[split]["s_mtl"] == pytest.approx(
                3 / (1 / mine[split]["emo_ccc"] + mine[split]["age_mae"] + 1 / mine[split]["cou_uar"]))
    preds = pd.read_csv(work.root / "runs" / "hybrid-toy" / "seed_0" / "predictions_Val.csv")
    source = pd.read_csv(work.run("compare-sys1").seed(0).predictions("Val"))
    np.testing.assert_array_equal(preds[list(EMOTIONS)].to_numpy(), source[list(EMOTIONS)].to_numpy())


def test_auto_hybrid_takes_each_task_from_its_best_system_on_val(trained):
    corpus, work = trained
    chosen = choose_sources(work, TASKS)
    scores = {k: json.loads(work.run(k).summary.read_text())["Val"]
              for k in ("compare-sys1", "raw_exvo_er-sys2", "raw_exvo_er+zff_exvo_er-sys1")}
    assert chosen["emotion"]["source"] == SystemSource(max(scores, key=lambda k: scores[k]["emo_ccc"]["mean"]))
    assert chosen["age"]["source"] == SystemSource(min(scores, key=lambda k: scores[k]["age_mae"]["mean"]))
    best_country = max(scores, key=lambda k: scores[k]["cou_uar"]["mean"])
    network_uar = json.loads((work.root / "networks" / "raw_exvo_cr" / "metrics.json").read_text())["Val"]["uar"]
    expected = SystemSource(best_country) if scores[best_country]["cou_uar"]["mean"] > network_uar \
        else NetworkSource("raw_exvo_cr")
    assert chosen["country"]["source"] == expected
    # toy stores: emotion lives only in compare, age only in the raw_exvo_er stores
    assert chosen["emotion"]["source"] == SystemSource("compare-sys1")
    assert chosen["age"]["source"] != SystemSource("compare-sys1")
    run_hybrid(AUTO_HYBRID, corpus, work, SEEDS, ["Val"])
    # stored in their written form: a system key or "network:<name>"
    recorded = json.loads((work.root / "runs" / "hybrid-auto" / "sources.json").read_text())
    assert recorded == {t: str(c["source"]) for t, c in chosen.items()}
    assert json.loads((work.root / "runs" / "hybrid-auto" / "auto_choice.json").read_text())["emotion"] == \
        {"source": "compare-sys1", "metric": "emo_ccc", "score": chosen["emotion"]["score"]}


def test_early_fusion_concatenates_the_stores(trained):
    corpus, work = trained
    ids = corpus.file_ids("Val")
    fused = np.concatenate([read_store(work.store(n), ids) for n in ("raw_exvo_er", "zff_exvo_er")], axis=1)
    import keras

    seed_0 = work.run("raw_exvo_er+zff_exvo_er-sys1").seed(0)
    model = keras.saving.load_model(seed_0.model)
    assert model.input_shape[-1] == fused.shape[1]
    preds = pd.read_csv(seed_0.predictions("Val"))
    out = model.predict(fused, verbose=0)
    np.testing.assert_allclose(preds[list(EMOTIONS)].to_numpy(), out["emotion"], atol=1e-5)


def test_asking_for_another_split_predicts_it_without_training_again(trained):
    corpus, work = trained
    seed_0 = work.run("compare-sys1").seed(0)
    stamp = seed_0.model.stat().st_mtime_ns
    seed_0.predictions("Test").unlink()
    metrics = json.loads(seed_0.metrics.read_text())
    del metrics["Test"]
    seed_0.metrics.write_text(json.dumps(metrics))
    summary = train_systems(selected(keys=["compare-sys1"]), corpus, work, SEEDS, progress=False,
                            log=lambda s: None, **FAST)["compare-sys1"]
    assert seed_0.model.stat().st_mtime_ns == stamp
    assert seed_0.predictions("Test").exists()
    assert summary["Test"]["s_mtl"]["n"] == len(SEEDS)


def test_table3_scores_test_and_lists_what_is_missing(trained, tmp_path):
    corpus, work = trained
    frame, md = table_report(3, corpus, work, tmp_path)
    row = frame[frame["key"] == "raw_exvo_er-sys2"].iloc[0]
    test = json.loads(work.run("raw_exvo_er-sys2").summary.read_text())["Test"]
    assert row["status"] == "run" and row["ours_s_mtl"] == test["s_mtl"]["mean"]
    assert row["paper_s_mtl"] == pytest.approx(0.319)
    deep = frame[frame["key"] == "deepspectrum-sys1"].iloc[0]
    assert deep["status"].startswith("not run: supply") and "imagenet-weights" in deep["status"]
    wavlm = frame[frame["key"] == "hybrid-wavlm-sys2+raw_exvo_er"].iloc[0]
    assert "wavlm-sys2" in wavlm["status"]
    assert (tmp_path / "table3.md").read_text() == md and (tmp_path / "table3.csv").exists()
    # every paper row of Table 3 is present, run or not
    from exvo_keras.experiments.paper import table3

    assert len(table3()) <= len(frame) - 1


def test_hidden_test_labels_give_submission_files_instead_of_scores(tmp_path):
    root = write_corpus(tmp_path / "corpus", n_per_split=(40, 16, 6), duration=0.1)
    corpus = load_corpus(root)
    work = Workspace(tmp_path / "work")
    _store(corpus, work, "raw_exvo_er", {"emotion", "age"}, 0.1, 0)
    train_systems(selected(keys=["raw_exvo_er-sys2"]), corpus, work, [0], progress=False, log=lambda s: None,
                  **FAST)
    frame, md = table_report(3, corpus, work, tmp_path / "results")
    row = frame[frame["key"] == "raw_exvo_er-sys2"].iloc[0]
    assert "labels hidden" in row["status"] and pd.isna(row.get("ours_s_mtl"))
    header, rows = read_rows(tmp_path / "results" / "submissions" / "raw_exvo_er-sys2.csv")
    assert header == ["File_ID", "Country", "Age", *EMOTIONS]
    assert [r["File_ID"] for r in rows] == corpus.file_ids("Test")
    assert {int(r["Country"]) for r in rows} <= {0, 1, 2, 3}

    # a seed trained again (its metrics.json gone) predicts Test afresh instead of keeping an older file
    seed_dir = work.run("raw_exvo_er-sys2").seed(0)
    original = seed_dir.predictions("Test").read_text()
    seed_dir.predictions("Test").write_text("stale")
    seed_dir.metrics.unlink()
    train_systems(selected(keys=["raw_exvo_er-sys2"]), corpus, work, [0], progress=False, log=lambda s: None,
                  **FAST)
    assert seed_dir.predictions("Test").read_text() == original


def test_one_failing_system_does_not_stop_the_others(trained, capsys):
    from exvo_keras.cli import main

    corpus, work = trained
    folder = work.run("compare-sys2")
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.config.write_text(json.dumps({"made": "elsewhere"}))
    results = train_systems(selected(keys=["compare-sys2", "compare-sys1"]), corpus, work, SEEDS, progress=False,
                            log=lambda s: None, **FAST)
    assert results["compare-sys2"].startswith("failed:") and "another configuration" in results["compare-sys2"]
    assert isinstance(results["compare-sys1"], dict)
    args = ["train", "--data", str(corpus.root), "--work", str(work), "--rows", "compare-sys2", "--seeds", "1", "-q"]
    assert main(args) == 1 and "compare-sys2" in capsys.readouterr().err


def test_every_paper_row_has_a_registered_row():
    from exvo_keras.experiments.paper import table2, table3
    from exvo_keras.registry import rows_of

    for number, paper in ((2, table2()), (3, table3())):
        ours = {r.paper for r in rows_of(number) if r.paper}
        for _, p in paper.iterrows():
            assert (p["system"], p["config"]) in ours, (number, p["system"], p["config"])
