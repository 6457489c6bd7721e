"""run_all.sh chains the CLI stages and resumes: checked on a tiny corpus with one seed."""

from conftest import run_all as _run_all
from conftest import write_corpus


def test_run_all_on_a_real_format_folder_then_resumes(reproduced):
    data, work, results, args, first = reproduced
    assert first.returncode == 0, first.stderr[-3000:]
    table = (results / "table2.md").read_text()
    compare_rows = [line for line in table.splitlines() if line.startswith("| ComParE |")]
    assert len(compare_rows) == 4 and not any("not run" in line for line in compare_rows)
    assert "| ComParE | Linear reference | 1 |" in table
    # no out-of-domain lists here: those rows say what to supply; the ExVo networks ran
    assert "| Raw(SER) | Sys-1 |" in table and "not run: supply" in table
    assert "| Raw(ExVo)-ER | Sys-2 | 1 |" in table
    assert "| Raw(ExVo)-ER + Zff(ExVo)-ER | Sys-2 | 1 |" in table
    assert "| Raw(ExVo)-ER + Raw(ExVo)-CR | Sys-1 | 1 |" in table  # the paper's hybrid
    assert "| DeepSpectrum | Sys-1 | — |" in table and "--imagenet-weights" in table
    table1 = (results / "table1.csv").read_text()
    # "run" or "run: collapsed to one class ..." (on this tiny corpus some networks do collapse)
    assert table1.count(",run") == 4 and "demo" in table1
    # Test labels are hidden in this corpus: Table 3 lists submissions instead of scores
    table3 = (results / "table3.md").read_text()
    assert "labels hidden" in table3
    assert (results / "submissions" / "raw_exvo_er-sys2.csv").exists()
    for png in ("figure2.png", "s_mtl_comparison.png"):
        assert (results / png).stat().st_size > 10_000
    models = sorted(work.glob("runs/*/seed_0/model.keras"))
    # ComParE ×3 and its linear reference, Raw/Zff(ExVo)-ER ×2 each, the three random-init SSL encoders ×2, and
    # the two fusions that need no out-of-domain network (+Zff(ExVo)-ER, +WavLM) ×2; each with a linear reference;
    # the SSL encoders' weighted-layer rows (×2 and the linear reference on the mean of layers); and the layer
    # sweep's Sys-1 head on each of the demo encoders' 5 hidden states
    layers = 5
    assert len(models) == 4 + 2 * 3 + 3 * 3 + 2 * 3 + 3 * 3 + 3 * layers
    assert "| WavLM (random-init encoder) | Sys-2 | 1 |" in table
    assert "| WavLM, weighted layers (beyond the paper) (random-init encoder) | Sys-1 | 1 |" in table
    for name in ("wavlm", "hubert", "wav2vec2"):
        sweep = (results / f"layer_sweep_{name}.csv").read_text().splitlines()
        assert len(sweep) == 1 + layers and sweep[0].startswith("layer,key,dev_s_mtl,")
    stamps = [m.stat().st_mtime_ns for m in models]

    second = _run_all(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "complete, skipped" in second.stdout
    assert [m.stat().st_mtime_ns for m in models] == stamps  # nothing was trained again


def test_a_second_run_from_scratch_reproduces_the_tables_byte_for_byte(reproduced, tmp_path):
    data, work, results, args, first = reproduced
    assert first.returncode == 0, first.stderr[-3000:]
    again = tmp_path / "results"
    fresh = list(args)
    fresh[fresh.index("--work") + 1] = str(tmp_path / "work")
    fresh[fresh.index("--results") + 1] = str(again)
    fresh[fresh.index("--saved-models") + 1] = str(tmp_path / "saved_models")
    second = _run_all(*fresh)
    assert second.returncode == 0, second.stderr[-3000:]
    tables = sorted(p.name for p in results.glob("table*.*"))
    assert len(tables) == 6
    for name in tables:
        # the work and results folders are named in the notes and submission paths; the rest must be the same bytes
        ours = (again / name).read_text().replace(str(tmp_path / "work"), "WORK").replace(str(again), "RESULTS")
        assert ours == (results / name).read_text().replace(str(work), "WORK").replace(str(results), "RESULTS"), name


def test_run_all_stops_on_a_broken_corpus_naming_the_problem(tmp_path):
    data = write_corpus(tmp_path / "corpus")
    (data / "wav" / "00101.wav").write_bytes(b"junk")
    result = _run_all("--data", str(data), "--work", str(tmp_path / "w"), "--results", str(tmp_path / "r"))
    assert result.returncode != 0
    assert "00101.wav: not a readable audio file" in result.stdout
    assert not (tmp_path / "w").exists()


def test_help():
    result = _run_all("--help")
    assert result.returncode == 0 and "--data" in result.stdout
