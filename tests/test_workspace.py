"""The work folder's layout is what earlier versions wrote: stores, networks and runs are found where they were."""

import os
from pathlib import Path

from exvo_keras.workspace import NetworkFolder, ReportFolder, RunFolder, Workspace, shard_store, shard_stores


def test_the_layout_on_disk_is_unchanged(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.signals("exvo", "zff") == tmp_path / "signals" / "exvo" / "zff"
    assert ws.store("wavlm") == tmp_path / "features" / "wavlm.h5"
    assert ws.stores(["raw_exvo_er", "wavlm"]) == [tmp_path / "features" / "raw_exvo_er.h5",
                                                   tmp_path / "features" / "wavlm.h5"]
    net = ws.network("raw_exvo_cr")
    assert net.path == tmp_path / "networks" / "raw_exvo_cr"
    assert [net.best.name, net.last.name, net.state.name, net.metrics.name, net.config.name, net.history.name,
            net.tensorboard.name, net.decisions("Val").name] == \
        ["best.keras", "last.keras", "state.json", "metrics.json", "config.json", "history.csv", "tensorboard",
         "decisions_Val.csv"]
    run = ws.run("hybrid-auto")
    assert run.path == tmp_path / "runs" / "hybrid-auto"
    assert [run.config.name, run.summary.name, run.sources.name, run.auto_choice.name] == \
        ["config.json", "summary.json", "sources.json", "auto_choice.json"]
    seed = run.seed(3)
    assert seed.path == run.path / "seed_3" and seed.seed == 3
    assert [seed.model.name, seed.history.name, seed.metrics.name, seed.predictions("Test").name] == \
        ["model.keras", "history.json", "metrics.json", "predictions_Test.csv"]
    out = ReportFolder(tmp_path / "results")
    assert [out.table_markdown(2).name, out.table_csv(1).name, out.comparison_plot.name] == \
        ["table2.md", "table1.csv", "s_mtl_comparison.png"]
    assert out.submission("wavlm-sys2") == tmp_path / "results" / "submissions" / "wavlm-sys2.csv"


def test_folders_are_paths_for_whoever_takes_one(tmp_path):
    ws = Workspace(str(tmp_path))
    assert Workspace(ws) == ws and os.fspath(ws) == str(tmp_path) and str(ws) == str(tmp_path)
    run = RunFolder(ws.run("k"))  # a function handed a folder or a path wraps it the same way
    assert run == ws.run("k") and Path(run) == tmp_path / "runs" / "k" and f"{run}" == str(tmp_path / "runs" / "k")
    assert NetworkFolder(tmp_path / "n").name == "n"


def test_seeds_are_listed_in_seed_order(tmp_path):
    run = RunFolder(tmp_path / "run")
    for seed in (10, 2, 0):
        run.seed(seed).path.mkdir(parents=True)
    (run.path / "seed_notes.txt").write_text("")  # not a folder: not a seed
    assert [s.seed for s in run.seeds()] == [0, 2, 10]
    assert RunFolder(tmp_path / "nowhere").seeds() == []


def test_shard_stores_are_named_beside_their_store(tmp_path):
    store = Workspace(tmp_path).store("hubert")
    assert shard_store(store, 1, 4) == tmp_path / "features" / "hubert.shard1of4.h5"
    store.parent.mkdir()
    for i in (1, 0):
        shard_store(store, i, 2).write_bytes(b"")
    (store.parent / "hubert.shard0of2.h5.partial").write_bytes(b"")
    (store.parent / "hubert.h5").write_bytes(b"")
    (store.parent / "hubert_large.shard0of2.h5").write_bytes(b"")
    assert [p.name for p in shard_stores(store)] == ["hubert.shard0of2.h5", "hubert.shard1of2.h5"]
