"""The tables' numbers: each registered system's state and scores in a workspace, beside the paper's.

`table_frame` and `table1_frame` are what `report` renders (`exvo_keras.experiments.report`) and the notebooks
show; `missing_inputs`, `mean_scores` and `system_sources` serve the stages that train, combine and export the
systems. The rows themselves are data in `exvo_keras.registry`.
"""

from __future__ import annotations

import pandas as pd

from exvo_keras.experiments.paper import paper_row, table1
from exvo_keras.registry import (AUTO, FEATURE_COMMANDS, METRICS, SSL_FEATURE_SETS, TABLE1_NETWORKS, TABLE_SPLIT,
                                 TASKS, Hybrid, NetworkSource, Row, Source, SystemSource, network, parse_source,
                                 row_by_key, rows_of)
from exvo_keras.runs import read_json
from exvo_keras.workspace import Workspace


def random_init(store) -> bool:
    """Whether a store's features come from a randomly initialised encoder (the demo's stand-in for a checkpoint)."""
    from exvo_keras.features.ssl import EXTRACTOR
    from exvo_keras.models.ssl import Provenance
    from exvo_keras.store import store_attrs

    attrs = store_attrs(store)
    # Only an SSL store records an encoder's provenance (DeepSpectrum's "weights" is the VGG16 file's digest).
    return attrs.get("extractor") == EXTRACTOR and Provenance.from_attrs(attrs["settings"]).random_init


def missing_inputs(row, ws: Workspace) -> list[str]:
    """What to supply before `row` can run: one line per missing store, with the command that makes it.

    For a hybrid: its sources that have not run (auto sources are resolved when the hybrid runs).
    """
    if isinstance(row, Hybrid):
        missing = []
        for task, source in row.sources:
            if isinstance(source, NetworkSource):
                if not ws.network(source.network).best.exists():
                    missing.append(f"{task}: network {source.network} "
                                   f"(python -m exvo_keras train-network {source.network})")
            elif isinstance(source, SystemSource) and not ws.run(source.key).summary.exists():
                missing.append(f"{task}: system {source} (python -m exvo_keras train --rows {source})")
        return missing
    missing = [f"{p} ({FEATURE_COMMANDS.get(f, 'no extractor registered')})"
               for f, p in zip(row.features, ws.stores(row.features)) if not p.exists()]
    if row.layer is not None:
        from exvo_keras.store import StoreError, layer_count

        for f, p in zip(row.features, ws.stores(row.features)):
            try:
                if p.exists() and f in SSL_FEATURE_SETS:
                    layer_count(p)
            except StoreError as exc:  # kept no layers (named with the fix), or unreadable
                missing.append(str(exc))
    return missing


def mean_scores(ws: Workspace, entries, split: str, metric: str) -> dict[str, float]:
    """{key: mean over seeds of `metric` on `split`} for the entries whose run folder has been scored on `split`."""
    found = {}
    for entry in entries:
        summary = read_json(ws.run(entry.key).summary)
        if summary is not None and split in summary:
            found[entry.key] = summary[split][metric]["mean"]
    return found


def system_sources(key: str, ws: Workspace) -> dict[str, Source]:
    """{task: source} of a registered system: itself for every task, or a hybrid's (resolved) sources.

    An auto hybrid's choice is read from its run folder (`sources.json`), so it must have run.
    """
    row = row_by_key(key)
    if isinstance(row, Row):
        return {t: SystemSource(key) for t in TASKS}
    sources = dict(row.sources)
    if AUTO in sources.values():
        path = ws.run(key).sources
        if not path.exists():
            raise FileNotFoundError(f"{path}: run the hybrid first (python -m exvo_keras train --rows {key})")
        sources.update({t: parse_source(s) for t, s in read_json(path).items()})
    return sources


def _status(row, ws: Workspace, split: str, summary: dict | None) -> str:
    if summary is not None and split in summary:
        return "run"
    if any(seed.predictions(split).exists() for seed in ws.run(row.key).seeds()):
        return f"{split} labels hidden: predictions only (see the submission CSV)"
    if summary is not None:
        return f"not scored on {split} yet: rerun python -m exvo_keras train --rows {row.key}"
    missing = missing_inputs(row, ws)
    return "not run: supply " + "; ".join(missing) if missing else "not run yet"


def row_profile(row, ws: Workspace) -> str:
    """Where a row's features came from: frame-CNN profile(s), encoder weights, or "-" (ComParE etc.)."""
    from exvo_keras.store import store_attrs

    if isinstance(row, Hybrid):
        sources = read_json(ws.run(row.key).sources) or dict(row.sources)
        return "; ".join(f"{task} from {source}" for task, source in sources.items())
    profiles = network_profiles(ws)
    parts = []
    for feature, path in zip(row.features, ws.stores(row.features)):
        if feature in profiles:
            parts.append(f"{feature}: {profiles[feature]} profile")
        elif path.exists():
            weights = store_attrs(path)["settings"].get("weights")
            if weights:
                parts.append(f"{feature}: {weights}")
    return "; ".join(parts) or "-"


def table_frame(table: int, ws: Workspace, reference: dict | None = None, split: str | None = None) -> pd.DataFrame:
    """Our mean ± std over seeds for every row of `table`, beside the paper's numbers and the difference.

    `split` defaults to the table's own (Table 2: Val, Table 3: Test). Columns: system, config, key, status,
    seeds, profile, corpus (fingerprint of the corpus the run was trained on), ours_<metric>(_std),
    paper_<metric>, diff_<metric> for each of METRICS.
    """
    split = split or TABLE_SPLIT[table]
    records = []
    if reference is not None:
        records.append({"system": "Reference: Train means + majority country", "config": "-", "status": "run",
                        **{f"ours_{m}": reference[m] for m in METRICS}})
    for row in rows_of(table):
        rec = {"system": row.system, "config": row.config, "key": row.key}
        folder = ws.run(row.key)
        summary = read_json(folder.summary)
        if isinstance(row, Row) and not missing_inputs(row, ws) \
                and any(random_init(p) for p in ws.stores(row.features)):
            rec["system"] += " (random-init encoder)"
        rec["status"] = _status(row, ws, split, summary)
        if rec["status"] == "run":
            scores = summary[split]
            rec["seeds"] = scores["s_mtl"]["n"]
            for m in METRICS:
                rec[f"ours_{m}"] = scores[m]["mean"]
                rec[f"ours_{m}_std"] = scores[m]["std"]
        if summary is not None:
            rec["profile"] = row_profile(row, ws)
            rec["corpus"] = (read_json(folder.config) or {}).get("corpus")
        paper = paper_row(table, *row.paper) if row.paper else None
        if paper:
            rec["dims"] = paper.get("dims")
            for m in METRICS:
                rec[f"paper_{m}"] = paper.get(m)
                if rec.get(f"ours_{m}") is not None and paper.get(m) is not None:
                    rec[f"diff_{m}"] = rec[f"ours_{m}"] - paper[m]
            rec["paper_s_mtl_std"] = paper.get("s_mtl_std")
        records.append(rec)
    return pd.DataFrame.from_records(records)


def table1_frame(ws: Workspace) -> pd.DataFrame:
    """UAR and WAR (Val) of each in-domain network's utterance decisions, beside the paper's."""
    paper = table1().set_index("system")
    records = []
    for name in TABLE1_NETWORKS:
        net = network(name)
        rec = {"system": net.label, "classifier": "Softmax"}
        metrics = read_json(ws.network(name).metrics)
        if metrics is not None:
            collapsed = metrics["Val"].get("collapsed")
            rec.update(status="run: collapsed to one class (UAR = 1 / classes)" if collapsed else "run",
                       profile=metrics.get("profile"), ours_uar=metrics["Val"]["uar"], ours_war=metrics["Val"]["war"],
                       class_weighting=metrics.get("class_weighting")
                       or ("supplied weights" if metrics.get("weights") else "none"))
        else:
            rec["status"] = f"not run: python -m exvo_keras train-network {name}"
        rec["paper_uar"] = paper.loc[net.label, "uar"]
        rec["paper_war"] = paper.loc[net.label, "war"]
        if "ours_uar" in rec:
            rec["diff_uar"] = rec["ours_uar"] - rec["paper_uar"]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def network_profiles(ws: Workspace) -> dict[str, str]:
    """The profile (paper or demo) each trained network of the workspace was trained with."""
    return {folder.name: read_json(folder.metrics).get("profile", "?") for folder in ws.scored_networks()}
