"""Layer sweeps: a head on each hidden layer of an SSL store in turn, as SUPERB probes an upstream.

Paralinguistic tasks often peak at a middle layer rather than the last (FACTS.md), and a store keeps every
layer from one pass (`exvo_keras.features.ssl`), so a sweep trains heads only: one run folder per layer
(`WORK/runs/<name>@<k>-<head>`, resumable like any run), then one row per layer in
`results/layer_sweep_<name>.csv` and a plot beside it.

Choose a layer by the `dev_s_mtl` column: the score on the speaker-independent 10 % of Train that picked each
head's epoch. The Val columns are what the chosen layer would report, so picking by them would be picking on the
split you report.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from exvo_keras.data.corpus import Corpus
from exvo_keras.registry import METRICS, system_key
from exvo_keras.runs import atomic_write_text, read_json
from exvo_keras.workspace import ReportFolder, RunFolder, Workspace

DEFAULT_SWEEP_HEAD = "sys1"


def dev_score(run: RunFolder, seed: int) -> float:
    """The seed's S_MTL on the dev rows that made its choice (`exvo_keras.training.mtl.held_out_score`)."""
    from exvo_keras.training.mtl import held_out_score

    return held_out_score(read_json(run.seed(seed).history) or {})


def layer_sweep(name: str, corpus: Corpus, work, seeds: Sequence[int], *, head: str = DEFAULT_SWEEP_HEAD,
                out="results", progress: bool = True, **options) -> pd.DataFrame:
    """Trains `head` on every layer of SSL feature set `name`'s store; writes and returns one row per layer.

    Args:
        name: an SSL feature set ("wavlm", "hubert", "wav2vec2") whose store keeps every layer.
        corpus: the corpus the store was made from.
        work: the work folder (`Workspace` or path).
        seeds: seeds per layer; the row holds their mean.
        head: head preset (default sys1; "linear" for a linear probe).
        out: report folder for `layer_sweep_<name>.csv` and `.png`.
        options: `HeadTraining.from_recipe` overrides (recipe, epochs, ...).

    Returns:
        columns layer, key, dev_s_mtl, and Val_<metric> for each of METRICS (mean over seeds), the best layer
        by dev_s_mtl flagged in `best_on_dev`.

    Example:
        >>> layer_sweep("wavlm", corpus, "work", seeds=[0])  # doctest: +SKIP
    """
    from exvo_keras.progress import progress_bar
    from exvo_keras.store import StoreError, layer_count
    from exvo_keras.training.mtl import run_head
    from exvo_keras.training.recipes import HeadTraining

    ws = Workspace(work)
    store = ws.store(name)
    if not store.exists():
        raise StoreError(f"{store}: no such store; extract it first (python -m exvo_keras extract-ssl {name} "
                         f"--data {corpus.root} --work {ws.root})")
    count = layer_count(store, data=corpus.root)
    records = []
    for layer in progress_bar(range(count), desc=f"{name} layers", unit="layer", enabled=progress):
        key = system_key((name,), head, layer)
        cfg = HeadTraining.from_recipe([store], head, corpus=corpus, **{**options, "layer": layer})
        if cfg.early_stopping != "dev":
            raise ValueError(f"a layer sweep ranks layers on dev; early_stopping={cfg.early_stopping!r} would pick "
                             "each head's epoch on the split it reports (use the default recipe, or "
                             "--early-stopping dev)")
        run = ws.run(key)
        summary = run_head(run, corpus, cfg, seeds, progress=False)
        record = {"layer": layer, "key": key,
                  "dev_s_mtl": float(np.mean([dev_score(run, s) for s in (seeds if head != "linear" else seeds[:1])]))}
        record.update({f"Val_{m}": summary.get("Val", {}).get(m, {}).get("mean", float("nan")) for m in METRICS})
        records.append(record)
    frame = pd.DataFrame(records)
    frame["best_on_dev"] = False
    if frame["dev_s_mtl"].notna().any():
        frame.loc[frame["dev_s_mtl"].idxmax(), "best_on_dev"] = True  # the first of equal scores: the shallowest
    report = ReportFolder(out)
    report.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report.layer_sweep_csv(name), frame.to_csv(index=False))
    plot_layer_sweep(frame, name, report.layer_sweep_plot(name))
    return frame


def plot_layer_sweep(frame: pd.DataFrame, name: str, path):
    """S_MTL per layer on dev (what to choose by) and Val, and Val's three task scores; returns the PNG's path."""
    from exvo_keras.experiments.plots import new_figure, save_figure

    fig = new_figure((9, 3.2))
    left, right = fig.subplots(1, 2)
    left.plot(frame["layer"], frame["dev_s_mtl"], "o-", label="dev (choose by this)")
    left.plot(frame["layer"], frame["Val_s_mtl"], "s--", label="Val")
    left.set(xlabel="layer (hidden_states index)", ylabel="S_MTL", title=f"{name}: S_MTL per layer")
    left.legend(fontsize=8)
    for metric, label in (("Val_emo_ccc", "Emo-CCC"), ("Val_cou_uar", "Cou-UAR")):
        right.plot(frame["layer"], frame[metric], "o-", label=label)
    twin = right.twinx()
    twin.plot(frame["layer"], frame["Val_age_mae"], "^:", color="grey")
    twin.set_ylabel("Age-MAE, years (dotted)")
    right.set(xlabel="layer", title="Val per task")
    right.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)
