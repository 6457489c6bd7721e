import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from exvo_keras.cli import build_parser, main

COMMANDS = ["make-demo", "check-corpus", "extract-compare", "train", "train-mtl", "report", "train-network",
            "extract-network", "extract-ssl", "merge-ssl", "figure2", "list"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m exvo_keras " + command in capsys.readouterr().out


def test_module_entry_point_lists_commands():
    out = subprocess.run([sys.executable, "-m", "exvo_keras", "--help"], capture_output=True, text=True, check=True)
    for command in COMMANDS:
        assert command in out.stdout


def test_defaults_and_choices_come_from_the_package():
    from exvo_keras import registry
    from exvo_keras.training.frame_cnn import FrameTraining
    from exvo_keras.training.recipes import DEFAULT_RECIPE, DEFAULT_SEEDS
    from exvo_keras.workspace import Workspace

    args = build_parser().parse_args(["train", "--data", "d"])
    assert (args.seeds, args.recipe, args.work) == (DEFAULT_SEEDS, DEFAULT_RECIPE, Workspace("work"))
    args = build_parser().parse_args(["train-network", "raw_asr", "--data", "d", "--work", "w"])
    assert (args.profile, args.seed, args.work) == (FrameTraining.profile, FrameTraining.seed, Workspace("w"))
    for name in registry.NETWORKS:
        assert build_parser().parse_args(["extract-network", name, "--data", "d"]).networks == [name]
    assert build_parser().parse_args(["extract-ssl", *registry.SSL_FEATURE_SETS, "--data", "d"]).names == \
        list(registry.SSL_FEATURE_SETS)
    for wrong in (["train-network", "raw_exvo", "--data", "d"], ["extract-ssl", "wavlm2", "--data", "d"],
                  ["train-network", "raw_asr", "--data", "d", "--profile", "fast"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(wrong)


def test_list_prints_the_registry_one_name_a_line(capsys):
    from exvo_keras import registry

    assert main(["list", "networks"]) == 0
    assert capsys.readouterr().out.split() == list(registry.NETWORKS)
    assert main(["list", "embedded-networks"]) == 0
    # run_all.sh embeds these: the networks some table row reads, not the CR networks (Table 1 and hybrids only)
    assert capsys.readouterr().out.split() == ["raw_exvo_er", "zff_exvo_er", "raw_ser", "zff_ser", "raw_asr"]
    assert main(["list", "ssl-feature-sets"]) == 0
    assert capsys.readouterr().out.split() == ["wavlm", "hubert", "wav2vec2"]


def test_demo_to_table_end_to_end(tmp_path, capsys):
    data, work, results = tmp_path / "demo", tmp_path / "work", tmp_path / "results"
    assert main(["make-demo", str(data), "--speakers", "12", "--clips", "2", "-q"]) == 0
    assert main(["check-corpus", str(data), "-q"]) == 0
    # Before extraction, the table names what to supply instead of dropping the rows.
    assert main(["report", "--data", str(data), "--work", str(work), "--out", str(results)]) == 0
    assert "not run: supply" in (results / "table2.md").read_text()

    assert main(["extract-compare", "--data", str(data), "--work", str(work), "--jobs", "1", "-q"]) == 0
    train = ["train", "--data", str(data), "--work", str(work), "--seeds", "2", "--epochs", "2", "-q"]
    assert main(train) == 0
    assert main(["report", "--data", str(data), "--work", str(work), "--out", str(results)]) == 0
    table = pd.read_csv(results / "table2.csv")
    assert list(table["system"])[0].startswith("Reference")
    compare = table[table.system == "ComParE"]
    assert len(compare) == 4 and (compare["status"] == "run").all()
    # the linear reference is deterministic: one fit stands for the seeds
    assert list(compare["seeds"]) == [1 if c == "Linear reference" else 2 for c in compare["config"]]
    auto = table[table.key == "hybrid-auto"].iloc[0]
    # with only ComParE run, the auto hybrid draws every task from a ComParE system
    assert auto["status"] == "run" and auto["profile"].count("from compare-") == 3
    others = table[~table.system.isin(["ComParE"]) & ~table.system.str.startswith("Reference")
                   & (table.key != "hybrid-auto")]
    assert len(others) > 0 and others["status"].str.startswith("not run: supply").all()
    sys1 = table[(table.system == "ComParE") & (table.config == "Sys-1")].iloc[0]
    assert sys1["paper_s_mtl"] == 0.349 and sys1["diff_s_mtl"] == pytest.approx(sys1["ours_s_mtl"] - 0.349)
    md = (results / "table2.md").read_text()
    assert "0.349 ± 0.003" in md and "baseline head" in md

    # A second run reuses every finished stage.
    capsys.readouterr()
    store = work / "features" / "compare.h5"
    stamp = store.stat().st_mtime_ns
    assert main(["extract-compare", "--data", str(data), "--work", str(work), "-q"]) == 0
    assert "only clips that are new or changed since are computed" in capsys.readouterr().out
    assert store.stat().st_mtime_ns == stamp  # every clip unchanged: the store is left as it was


def test_check_corpus_exit_code_and_listing(tmp_path, capsys):
    from conftest import write_corpus

    root = write_corpus(tmp_path / "c")
    (root / "wav" / "00101.wav").unlink()
    assert main(["check-corpus", str(root), "-q"]) == 1
    out = capsys.readouterr().out
    assert "00101.wav: file not found" in out and "1 error(s)" in out


def test_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--work", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: corpus") and "corpus folder not found" in err and "Traceback" not in err


def test_ssl_shards_through_the_cli_equal_one_extraction(tmp_path, capsys):
    from conftest import write_corpus
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.store import read_store

    data = write_corpus(tmp_path / "c", n_per_split=(3, 2, 1), duration=0.3)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["extract-ssl", "hubert", "--data", str(data), "--work", str(one), "-q"]) == 0
    for shard in ("0/2", "1/2"):
        assert main(["extract-ssl", "hubert", "--data", str(data), "--work", str(two), "--shard", shard, "-q"]) == 0
    assert main(["merge-ssl", "hubert", "--data", str(data), "--work", str(two), "-q"]) == 0
    assert "merged 2 shard(s)" in capsys.readouterr().out
    ids = load_corpus(data).file_ids()
    a = read_store(one / "features" / "hubert.h5", ids)
    b = read_store(two / "features" / "hubert.h5", ids)
    assert a.shape == (6, 128)
    np.testing.assert_allclose(a, b, atol=1e-5)
