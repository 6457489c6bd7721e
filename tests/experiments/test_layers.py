"""Layer sweeps: one head per SSL layer, ranked on dev; a store without layers is refused with the fix."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import layered_rows, learnable_corpus
from exvo_keras.experiments.layers import dev_score, layer_sweep
from exvo_keras.store import StoreError, build_store
from exvo_keras.workspace import ReportFolder, Workspace

INFORMATIVE, LAYERS = 1, 3


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    base = tmp_path_factory.mktemp("sweep")
    corpus, labels_of = learnable_corpus(base / "corpus")
    ws = Workspace(base / "work")
    build_store(ws.store("wavlm"), corpus.file_ids(), layered_rows(labels_of, LAYERS, INFORMATIVE),
                extractor="ssl", settings={}, corpus=corpus, progress=False)
    frame = layer_sweep("wavlm", corpus, ws, [0], out=base / "results", progress=False, epochs=8)
    return corpus, ws, base / "results", frame


def test_one_row_per_layer_and_the_informative_layer_wins_on_dev(swept):
    corpus, ws, out, frame = swept
    assert frame["layer"].tolist() == list(range(LAYERS))
    assert frame.loc[frame["best_on_dev"], "layer"].tolist() == [INFORMATIVE]
    assert frame.loc[INFORMATIVE, "Val_s_mtl"] > frame.drop(index=INFORMATIVE)["Val_s_mtl"].max() + 0.05
    written = pd.read_csv(ReportFolder(out).layer_sweep_csv("wavlm"))
    pd.testing.assert_frame_equal(written, frame, check_dtype=False)
    assert ReportFolder(out).layer_sweep_plot("wavlm").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_dev_score_is_the_one_that_picked_the_epoch(swept):
    corpus, ws, out, frame = swept
    run = ws.run(frame.loc[INFORMATIVE, "key"])
    history = json.loads(run.seed(0).history.read_text())
    best = history["best_epoch"]
    expected = history["start_scores"]["val_s_mtl"] if best == -1 else history["val_s_mtl"][best]
    assert dev_score(run, 0) == pytest.approx(expected) == pytest.approx(max(history["val_s_mtl"] +
                                                                              [history["start_scores"]["val_s_mtl"]]))
    assert frame.loc[INFORMATIVE, "dev_s_mtl"] == pytest.approx(expected)


def test_a_second_sweep_trains_nothing(swept, monkeypatch):
    import exvo_keras.training.mtl as mtl

    corpus, ws, out, frame = swept
    monkeypatch.setattr(mtl.HeadTrainer, "fit", lambda *a, **k: pytest.fail("retrained a finished layer"))
    again = layer_sweep("wavlm", corpus, ws, [0], out=out, progress=False, epochs=8)
    pd.testing.assert_frame_equal(again, frame)


def test_a_store_without_layers_names_the_fix(swept, tmp_path):
    corpus, _, _, _ = swept
    ws = Workspace(tmp_path / "work")
    build_store(ws.store("hubert"), corpus.file_ids(), lambda ids: np.zeros((len(ids), 4)), extractor="ssl",
                settings={}, corpus=corpus, progress=False)
    with pytest.raises(StoreError, match="keeps no layers.*extract-ssl hubert"):
        layer_sweep("hubert", corpus, ws, [0], out=tmp_path / "results", progress=False)
    with pytest.raises(StoreError, match="no such store.*extract-ssl wav2vec2"):
        layer_sweep("wav2vec2", corpus, ws, [0], out=tmp_path / "results", progress=False)
