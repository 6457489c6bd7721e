"""Hybrids: each task's predictions taken from another system, seed by seed.

Early fusion needs nothing here: a `Row` with several feature sets trains one head on their concatenation
(`exvo_keras.store.read_fused`). A hybrid (`exvo_keras.registry.Hybrid`) trains nothing: for every
seed it copies the emotion columns, the age column and the country columns of the systems it names, so each
of its per-task scores is exactly that system's. This is how the paper's hybrids behave (FACTS.md: their
per-task numbers equal their sources'). A frame CNN's own utterance decision serves as a country source; it has
one decision per clip, shared by every seed.

Run folder `WORK/runs/<hybrid key>/`: `sources.json` (the resolved sources), `auto_choice.json` (what "auto"
chose, with the Val score that decided),
`seed_<k>/predictions_<Split>.csv` and `metrics.json`, `summary.json`, as a trained system's folder. A hybrid
is rebuilt from its sources every time it runs (seconds), so it never goes stale when a source is retrained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments.networks import network_decisions
from exvo_keras.experiments.tables import mean_scores
from exvo_keras.registry import (AUTO, TABLE1_NETWORKS, TASK_METRIC, Hybrid, NetworkSource, Row, Source,
                                 SystemSource, network, rows_of)
from exvo_keras.runs import atomic_write_json, atomic_write_text, read_json
from exvo_keras.training.mtl import best_seed, score_predictions, seed_metrics, summarise
from exvo_keras.workspace import Workspace

COUNTRY_COLUMNS = ["Country"] + [f"p_{c}" for c in COUNTRIES]
TASK_COLUMNS = {"emotion": list(EMOTIONS), "age": ["Age"], "country": COUNTRY_COLUMNS}


def candidates(ws: Workspace, task: str, split: str = "Val") -> dict[Source, float]:
    """{source: mean score on `split` of `task`} of every Table 2 system of the paper's kinds that has run (and,
    for country, the in-domain CR networks' own decisions, scored in Table 1). The rows beyond the paper (heads on
    chosen or weighted SSL layers) are left out, so the auto hybrid stays comparable with the paper's systems."""
    metric, _ = TASK_METRIC[task]
    scores = mean_scores(ws, [r for r in rows_of(2) if isinstance(r, Row) and r.layer is None], split, metric)
    found: dict[Source, float] = {SystemSource(key): score for key, score in scores.items()}
    if task == "country" and split == "Val":
        for name in TABLE1_NETWORKS:
            if network(name).task != "country":
                continue
            metrics = read_json(ws.network(name).metrics)
            if metrics is not None:
                found[NetworkSource(name)] = metrics["Val"]["uar"]
    return found


def choose_sources(ws: Workspace, tasks: Sequence[str], split: str = "Val") -> dict[str, dict]:
    """For each task, the candidate with the best mean score on `split`: {task: {source, metric, score}}."""
    chosen = {}
    for task in tasks:
        found = candidates(ws, task, split)
        if not found:
            raise FileNotFoundError(f"no system has run on {split} yet to choose the {task} source from; "
                                    "train the Table 2 systems first (python -m exvo_keras train --table 2)")
        metric, lower = TASK_METRIC[task]
        best = (min if lower else max)(found, key=found.get)
        chosen[task] = {"source": best, "metric": metric, "score": found[best]}
    return chosen


def resolve_sources(hybrid: Hybrid, ws: Workspace) -> tuple[dict[str, Source], dict]:
    """({task: source}, what "auto" chose with its Val score) for a hybrid."""
    sources = dict(hybrid.sources)
    auto = [t for t, s in sources.items() if s == AUTO]
    chosen = choose_sources(ws, auto) if auto else {}
    sources.update({t: c["source"] for t, c in chosen.items()})
    return sources, chosen


def _network_columns(source: NetworkSource, corpus: Corpus, ws: Workspace, split: str,
                     ids: list[str]) -> pd.DataFrame:
    net = network(source.network)
    if net.task != "country":
        raise ValueError(f"{net.label} decides {net.task}; only a country network's decision can be a source")
    decisions = network_decisions(net, corpus, ws, split).set_index("File_ID").loc[ids]
    country = decisions["predicted"].to_numpy()
    # A decision, not a distribution: the chosen country gets probability 1.
    one_hot = np.eye(len(COUNTRIES))[country]
    return pd.DataFrame({"Country": country, **{f"p_{c}": one_hot[:, i] for i, c in enumerate(COUNTRIES)}},
                        index=ids)


def _source_seeds(source: Source, ws: Workspace) -> set[int] | None:
    """Finished seeds of a system source; None for a network decision (valid for every seed)."""
    if isinstance(source, NetworkSource):
        return None
    folder = ws.run(source.key)
    seeds = set(seed_metrics(folder))
    if not seeds:
        raise FileNotFoundError(f"{folder.path}: system {source} has no finished seed; train it first "
                                f"(python -m exvo_keras train --rows {source})")
    return seeds


def combine(sources: dict[str, Source], corpus: Corpus, ws: Workspace, split: str, seed: int) -> pd.DataFrame:
    """One seed's hybrid predictions on `split`, in the trained systems' prediction columns."""
    ids = corpus.file_ids(split)
    frame = pd.DataFrame({"File_ID": ids}).set_index("File_ID", drop=False)
    for task, source in sources.items():
        if isinstance(source, NetworkSource):
            part = _network_columns(source, corpus, ws, split, ids)
        else:
            path = ws.run(source.key).seed(seed).predictions(split)
            if not path.exists():
                raise FileNotFoundError(f"{path}: system {source} has no {split} predictions for seed {seed}; "
                                        f"rerun python -m exvo_keras train --rows {source}")
            part = pd.read_csv(path, dtype={"File_ID": str}).set_index("File_ID").loc[ids]
        for column in TASK_COLUMNS[task]:
            frame[column] = part[column].to_numpy()
    columns = ["File_ID", "Country", "Age", *EMOTIONS, *COUNTRY_COLUMNS[1:]]
    return frame[columns].reset_index(drop=True)


def run_hybrid(hybrid: Hybrid, corpus: Corpus, ws: Workspace, seeds: Sequence[int], splits: Sequence[str]) -> dict:
    """Builds and scores a hybrid for every seed its system sources share with `seeds`; returns the summary.

    Everything is combined and scored before anything is written, and `sources.json` is written with the
    summary, so a failure (a source without the split's predictions) leaves the previous state intact.
    """
    sources, chosen = resolve_sources(hybrid, ws)
    usable = set(seeds)
    for source in set(sources.values()):
        found = _source_seeds(source, ws)
        if found is not None:
            usable &= found
    if not usable:
        raise FileNotFoundError(f"{hybrid.key}: its sources share none of the seeds {list(seeds)}")
    scored = [s for s in splits if corpus.has_labels(s)]
    built = {}
    for seed in sorted(usable):
        frames = {split: combine(sources, corpus, ws, split, seed) for split in splits}
        built[seed] = (frames, {s: score_predictions(frames[s], corpus.labels(s)) for s in scored})

    folder = ws.run(hybrid.key)
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.summary.unlink(missing_ok=True)
    for seed, (frames, metrics) in built.items():
        seed_dir = folder.seed(seed)
        seed_dir.path.mkdir(exist_ok=True)
        for split, frame in frames.items():
            atomic_write_text(seed_dir.predictions(split), frame.to_csv(index=False))
        atomic_write_json(seed_dir.metrics, metrics)
    # seeds from an earlier run that the sources no longer share would be mixed into the summary by readers
    for stale in set(seed_metrics(folder)) - usable:
        folder.seed(stale).metrics.unlink()
    if chosen:
        atomic_write_json(folder.auto_choice, {t: {**c, "source": str(c["source"])} for t, c in chosen.items()})
    atomic_write_json(folder.sources, {t: str(s) for t, s in sources.items()})
    per_seed = [metrics for _, metrics in built.values()]
    summary = summarise(per_seed) if per_seed[0] else {}
    atomic_write_json(folder.summary, summary)
    return summary


def write_submission(row, ws: Workspace, out: Path, split: str = "Test") -> Path:
    """The challenge's submission CSV (File_ID, Country, Age, ten emotions) of a system's best seed on Val."""
    folder = ws.run(row.key)
    seed = best_seed(folder, "Val")
    frame = pd.read_csv(folder.seed(seed).predictions(split), dtype={"File_ID": str})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, frame[["File_ID", "Country", "Age", *EMOTIONS]].to_csv(index=False))
    return out
