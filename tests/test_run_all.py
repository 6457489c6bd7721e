"""run_all.sh chains the CLI stages and resumes: checked on a tiny corpus with one seed."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import write_corpus

REPO = Path(__file__).resolve().parents[1]


def _run_all(*args):
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "PATH": f"{Path(sys.prefix) / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(REPO / "run_all.sh"), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=900)


def test_run_all_on_a_real_format_folder_then_resumes(tmp_path):
    data = write_corpus(tmp_path / "corpus", n_per_split=(16, 8, 4), duration=0.3)
    work, results = tmp_path / "work", tmp_path / "results"
    args = ["--data", str(data), "--work", str(work), "--results", str(results), "--seeds", "1", "--profile", "demo"]
    first = _run_all(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    table = (results / "table2.md").read_text()
    compare_rows = [line for line in table.splitlines() if line.startswith("| ComParE |")]
    assert len(compare_rows) == 3 and not any("not run" in line for line in compare_rows)
    # no out-of-domain lists here: those rows say what to supply; the ExVo networks ran
    assert "| Raw(SER) | Sys-1 |" in table and "not run: supply" in table
    assert "| Raw(ExVo)-ER | Sys-2 | 1 |" in table
    table1 = (results / "table1.csv").read_text()
    assert table1.count(",run,") == 4 and "demo" in table1
    assert (results / "figure2.png").stat().st_size > 10_000
    metrics = sorted(work.glob("runs/table2/*/seed_0/metrics.json"))
    assert len(metrics) == 3 + 4 + 6  # ComParE, Raw/Zff(ExVo)-ER, and the three random-init SSL encoders
    assert "| WavLM (random-init encoder) | Sys-2 | 1 |" in table
    stamps = [m.stat().st_mtime_ns for m in metrics]

    second = _run_all(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "complete, skipped" in second.stdout
    assert [m.stat().st_mtime_ns for m in metrics] == stamps  # nothing was trained again


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
