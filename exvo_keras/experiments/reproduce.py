"""Training the registered systems of a table: the stage that `train`, run_all.sh and the notebooks share.

Trained systems (`Row`) first, each over N seeds with `run_head` (resumable: finished seeds are kept); then the
hybrids, which combine those systems' predictions. A system whose inputs are missing is reported, with what to
supply, and skipped; the others still run.
"""

from __future__ import annotations

from typing import Callable, Sequence

from exvo_keras.data.corpus import Corpus
from exvo_keras.experiments.fusion import run_hybrid
from exvo_keras.experiments.tables import missing_inputs
from exvo_keras.registry import METRICS, Hybrid, Row, rows_of, systems
from exvo_keras.training.mtl import run_head
from exvo_keras.training.recipes import HeadTraining, default_eval_splits
from exvo_keras.workspace import Workspace


def selected(table: int | None = None, keys: Sequence[str] | None = None) -> list:
    """The systems of a table (each once), or those named by key; trained systems before hybrids."""
    if keys:
        registry = systems()
        unknown = [k for k in keys if k not in registry]
        if unknown:
            raise ValueError(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(registry)}")
        entries = [registry[k] for k in keys]
    else:
        entries = list({r.key: r for r in rows_of(table)}.values())
        if table == 3:
            # Table 3's hybrids may draw on any Table 2 system (the auto hybrid does): train those too.
            entries = list({**{r.key: r for r in rows_of(2) if isinstance(r, Row)},
                            **{r.key: r for r in entries}}.values())
    return [e for e in entries if isinstance(e, Row)] + [e for e in entries if isinstance(e, Hybrid)]


def train_systems(entries: Sequence, corpus: Corpus, ws: Workspace, seeds: Sequence[int], *, progress: bool = True,
                  log: Callable[[str], None] = print, **options) -> dict[str, dict | str]:
    """Trains (or resumes) each system and builds each hybrid.

    `options` are `HeadTraining.from_recipe` overrides (`recipe` among them) for every trained system.
    Returns {key: summary over seeds, or a line starting "not run:" (inputs missing) or "failed:" (an error
    such as a run folder made with other settings; the other systems still run)}.
    """
    results = {}
    for entry in entries:
        name = f"{entry.system} {entry.config}"
        if isinstance(entry, Row):
            missing = missing_inputs(entry, ws)
            if missing:
                results[entry.key] = "not run: supply " + "; ".join(missing)
                log(f"{name}: {results[entry.key]}")
                continue
            # A row that names its recipe (the baseline row) keeps it whatever the command's default.
            cfg = HeadTraining.from_recipe(ws.stores(entry.features), entry.head, corpus=corpus,
                                           **{**options, "recipe": entry.recipe or options.get("recipe"),
                                              **({"layer": entry.layer} if entry.layer is not None else {})})
            try:
                results[entry.key] = run_head(ws.run(entry.key), corpus, cfg, seeds, progress=progress)
            except ValueError as exc:  # e.g. a run folder made with other settings: the other systems still run
                results[entry.key] = f"failed: {exc}"
                log(f"{name}: {results[entry.key]}")
                continue
        else:
            splits = options.get("eval_splits") or default_eval_splits(corpus)
            try:
                results[entry.key] = run_hybrid(entry, corpus, ws, seeds, splits)
            except FileNotFoundError as exc:
                results[entry.key] = f"not run: {exc}"
                log(f"{name}: {results[entry.key]}")
                continue
        if results[entry.key]:
            log(summary_line(name, results[entry.key]))
    return results


def summary_line(name: str, summary: dict) -> str:
    parts = []
    for split, metrics in summary.items():
        scores = ", ".join(f"{m} {metrics[m]['mean']:.3f}±{metrics[m]['std']:.3f}"
                           for m in METRICS)
        parts.append(f"[{split}, {metrics['s_mtl']['n']} seeds] {scores}")
    return f"{name} " + "; ".join(parts)
