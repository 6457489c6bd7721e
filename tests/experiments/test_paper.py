"""Tests for the packaged paper tables (exvo_keras.experiments.paper)."""

import math

import pytest

from exvo_keras.experiments import paper


def test_tables_load_with_expected_shape():
    t1, t2, t3 = paper.table1(), paper.table2(), paper.table3()
    assert len(t1) == 4
    assert len(t2) == 28
    assert len(t3) == 7
    assert {"emo_ccc", "cou_uar", "age_mae", "s_mtl", "s_mtl_std"} <= set(t2.columns)
    assert {"emo_ccc", "cou_uar", "age_mae", "s_mtl"} <= set(t3.columns)
    assert set(t2["config"]) == {"Sys-1", "Sys-2"}
    # Every (system, config) pair is a unique key.
    assert not t2.duplicated(["system", "config"]).any()


def test_tables_are_packaged_inside_the_module():
    # Installed copies cannot see the checkout's shared/ folder.
    assert paper.TABLE_DIR.parent.name == "experiments"
    assert "shared" not in paper.TABLE_DIR.parts
    for name in ("table1_validation.csv", "table2_validation.csv", "table3_test.csv"):
        assert (paper.TABLE_DIR / name).is_file()


def test_table1_percentages_converted_and_kept():
    t1 = paper.table1()
    row = t1[t1["system"] == "Zff(ExVo)-CR"].iloc[0]
    assert row["uar_percent"] == pytest.approx(45.65)
    assert row["uar"] == pytest.approx(0.4565)
    assert row["war_percent"] == pytest.approx(51.46)
    assert row["war"] == pytest.approx(0.5146)
    assert ((t1["uar"] >= 0) & (t1["uar"] <= 1)).all()


def test_returned_frames_are_copies():
    t2 = paper.table2()
    t2.loc[0, "s_mtl"] = -1.0
    assert paper.table2().loc[0, "s_mtl"] == pytest.approx(0.349)


def test_paper_row_lookups():
    wavlm = paper.paper_row(2, "WavLM", "Sys-2")
    assert wavlm["emo_ccc"] == pytest.approx(0.548)
    assert wavlm["cou_uar"] == pytest.approx(0.536)
    assert wavlm["age_mae"] == pytest.approx(4.008)
    assert wavlm["s_mtl"] == pytest.approx(0.390)
    assert wavlm["dims"] == 2048 and isinstance(wavlm["dims"], int)

    hybrid = paper.paper_row(2, "Raw(ExVo)-ER + Zff(ExVo)-CR", "Sys-2")
    assert hybrid["s_mtl"] == pytest.approx(0.369)
    assert hybrid["s_mtl_std"] is None

    # Unique system: config may be omitted.
    assert paper.paper_row(3, "ComParE")["s_mtl"] == pytest.approx(0.335)
    deep = paper.paper_row(3, "DeepSpectrum")
    assert deep["s_mtl"] == pytest.approx(0.305)
    assert deep["emo_ccc"] is None and deep["age_mae"] is None

    er = paper.paper_row(1, "Raw(ExVo)-ER")
    assert er["uar"] == pytest.approx(0.2851)
    assert er["classifier"] == "Softmax"


def test_paper_row_missing_returns_none():
    assert paper.paper_row(2, "NoSuchSystem") is None
    assert paper.paper_row(2, "ComParE", "Sys-2") is None  # baseline has Sys-1 only
    assert paper.paper_row(3, "WavLM", "Sys-1") is None


def test_paper_row_errors():
    with pytest.raises(ValueError, match="pass config"):
        paper.paper_row(2, "WavLM")
    with pytest.raises(ValueError, match="no config column"):
        paper.paper_row(1, "Raw(ExVo)-ER", "Sys-1")
    with pytest.raises(ValueError, match="table must be"):
        paper.paper_row(4, "WavLM")


def test_paper_row_values_are_plain_python():
    row = paper.paper_row(2, "HuBERT", "Sys-1")
    for v in row.values():
        assert v is None or type(v) in (int, float, str)
        if isinstance(v, float):
            assert not math.isnan(v)
