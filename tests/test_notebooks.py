"""The walkthrough notebooks: kept without outputs in git, and executed top to bottom on a tiny reproduction."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOKS = ("table1", "table2", "table3", "figure2")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    book = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, reproduced, tmp_path, monkeypatch):
    data, work, _, _, first = reproduced
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results"
    for key, value in {"EXVO_DATA": data, "EXVO_WORK": work, "EXVO_RESULTS": results, "EXVO_SEEDS": 1}.items():
        monkeypatch.setenv(key, str(value))
    book = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} shows no figure"
    if name.startswith("table"):
        markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
        assert markdown and markdown[0].startswith(f"# Table {name[-1]}")
        assert (results / f"{name}.md").exists()
