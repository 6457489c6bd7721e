"""The paper's table rows as data, and the reports that set our numbers beside the paper's.

Each `Row` says which feature stores it reads, which head it trains and which paper row it reproduces. The CLI
(`train`, `report`), run_all.sh and the notebooks all work from this registry, so a row is defined once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from exvo_keras.experiments.paper import paper_row

# feature-set name -> the CLI command that builds its store (shown when a row cannot run yet)
FEATURE_COMMANDS = {
    "compare": "python -m exvo_keras extract-compare --data DATA --work WORK",
    **{name: f"python -m exvo_keras train-network {name} ... then extract-network {name}"
       for name in ("raw_exvo_er", "zff_exvo_er", "raw_exvo_cr", "zff_exvo_cr", "raw_ser", "zff_ser", "raw_asr")},
    **{name: f"python -m exvo_keras extract-ssl {name} --data DATA --work WORK [--ssl-dir DIR]"
       for name in ("wavlm", "hubert", "wav2vec2")},
}

METRICS = ("emo_ccc", "cou_uar", "age_mae", "s_mtl")
METRIC_NAMES = {"emo_ccc": "Emo-CCC", "cou_uar": "Cou-UAR", "age_mae": "Age-MAE", "s_mtl": "S_MTL"}


@dataclass(frozen=True)
class Row:
    """One system of a results table.

    Args:
        table: the paper's table number.
        system: name shown in our table.
        config: "Sys-1", "Sys-2" or "baseline head".
        features: feature-set names; several means early fusion (concatenation in this order).
        head: `exvo_keras.models.mtl.PRESETS` key.
        paper: (system, config) of the paper row it reproduces, or None when the paper has no such row.
    """

    table: int
    system: str
    config: str
    features: tuple[str, ...]
    head: str
    paper: tuple[str, str] | None

    @property
    def key(self) -> str:
        slug = "+".join(self.features)
        return f"{slug}-{self.head}"

    def store_paths(self, work: Path) -> list[Path]:
        return [feature_store(work, f) for f in self.features]


def feature_store(work, name: str) -> Path:
    return Path(work) / "features" / f"{name}.h5"


def _sys_rows(system: str, features: tuple[str, ...]) -> tuple[Row, ...]:
    return tuple(Row(2, system, config, features, head, (system, config))
                 for config, head in (("Sys-1", "sys1"), ("Sys-2", "sys2")))


ROWS = (
    Row(2, "ComParE", "Sys-1", ("compare",), "sys1", ("ComParE", "Sys-1")),
    Row(2, "ComParE", "Sys-2", ("compare",), "sys2", None),
    # The challenge's own head on the same features: the paper's ComParE row is the organisers' baseline.
    Row(2, "ComParE", "baseline head", ("compare",), "baseline", ("ComParE", "Sys-1")),
    *_sys_rows("WavLM", ("wavlm",)),
    *_sys_rows("HuBERT", ("hubert",)),
    *_sys_rows("Wav2Vec2", ("wav2vec2",)),
    *_sys_rows("Raw(SER)", ("raw_ser",)),
    *_sys_rows("Zff(SER)", ("zff_ser",)),
    *_sys_rows("Raw(ASR)", ("raw_asr",)),
    *_sys_rows("Raw(ExVo)-ER", ("raw_exvo_er",)),
    *_sys_rows("Zff(ExVo)-ER", ("zff_exvo_er",)),
)

# Table 1: the in-domain networks' own utterance decisions on Val.
TABLE1_NETWORKS = ("raw_exvo_er", "zff_exvo_er", "raw_exvo_cr", "zff_exvo_cr")


def random_init(store) -> bool:
    """Whether a store's features come from a randomly initialised encoder (the demo's stand-in for a checkpoint)."""
    from exvo_keras.store import store_attrs

    return str(store_attrs(store)["settings"].get("weights", "")).startswith("random-init")


def rows_of(table: int) -> list[Row]:
    return [r for r in ROWS if r.table == table]


def row_by_key(key: str) -> Row:
    for r in ROWS:
        if r.key == key:
            return r
    raise KeyError(f"no registered row {key!r}; known: {', '.join(r.key for r in ROWS)}")


def missing_inputs(row: Row, work: Path) -> list[str]:
    """What to supply before `row` can run: one line per missing store, with the command that makes it."""
    return [f"{p} ({FEATURE_COMMANDS.get(f, 'no extractor registered')})"
            for f, p in zip(row.features, row.store_paths(work)) if not p.exists()]


def run_dir(work, row: Row) -> Path:
    return Path(work) / "runs" / f"table{row.table}" / row.key


def table_frame(table: int, work, reference: dict | None = None, split: str = "Val") -> pd.DataFrame:
    """Our mean ± std over seeds for every row of `table`, beside the paper's numbers and the difference."""
    records = []
    if reference is not None:
        records.append({"system": "Reference: Train means + majority country", "config": "-", "status": "run",
                        **{f"ours_{m}": reference[m] for m in METRICS}})
    for row in rows_of(table):
        rec = {"system": row.system, "config": row.config, "dims": None}
        summary_path = run_dir(work, row) / "summary.json"
        missing = missing_inputs(row, Path(work))
        if not missing and any(random_init(p) for p in row.store_paths(Path(work))):
            rec["system"] += " (random-init encoder)"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())[split]
            rec["status"] = "run"
            rec["seeds"] = summary["s_mtl"]["n"]
            for m in METRICS:
                rec[f"ours_{m}"] = summary[m]["mean"]
                rec[f"ours_{m}_std"] = summary[m]["std"]
        else:
            rec["status"] = "not run: supply " + "; ".join(missing) if missing else "not run yet"
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


def _fmt(value, std=None, digits=3) -> str:
    if value is None or pd.isna(value):
        return "—"
    text = f"{value:.{digits}f}"
    if std is not None and not pd.isna(std):
        text += f" ± {std:.{digits}f}"
    return text


def table_markdown(frame: pd.DataFrame, title: str, note: str) -> str:
    """A markdown table: per metric ours (mean ± std), the paper's and the difference."""
    head = ["System", "Config", "Seeds"] + [f"{METRIC_NAMES[m]} ours" for m in METRICS] + \
           [f"{METRIC_NAMES[m]} paper" for m in METRICS] + ["Δ S_MTL", "Status"]
    lines = [f"# {title}", "", note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        seeds = r.get("seeds")
        cells = [str(r["system"]), str(r["config"]), "—" if seeds is None or pd.isna(seeds) else str(int(seeds))]
        cells += [_fmt(r.get(f"ours_{m}"), r.get(f"ours_{m}_std")) for m in METRICS]
        cells += [_fmt(r.get(f"paper_{m}"), r.get("paper_s_mtl_std") if m == "s_mtl" else None) for m in METRICS]
        diff = r.get("diff_s_mtl")
        cells += ["—" if diff is None or pd.isna(diff) else f"{diff:+.3f}", str(r["status"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table1_frame(work) -> pd.DataFrame:
    """UAR and WAR (Val) of each in-domain network's utterance decisions, beside the paper's."""
    from exvo_keras.experiments.networks import network, run_dir as network_dir
    from exvo_keras.experiments.paper import table1

    paper = table1().set_index("system")
    records = []
    for name in TABLE1_NETWORKS:
        net = network(name)
        rec = {"system": net.label, "classifier": "Softmax"}
        metrics_path = network_dir(work, net) / "metrics.json"
        if metrics_path.exists():
            metrics = json.loads(metrics_path.read_text())
            rec.update(status="run", profile=metrics.get("profile"), ours_uar=metrics["Val"]["uar"],
                       ours_war=metrics["Val"]["war"])
        else:
            rec["status"] = f"not run: python -m exvo_keras train-network {name}"
        rec["paper_uar"] = paper.loc[net.label, "uar"]
        rec["paper_war"] = paper.loc[net.label, "war"]
        if "ours_uar" in rec:
            rec["diff_uar"] = rec["ours_uar"] - rec["paper_uar"]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def table1_markdown(frame: pd.DataFrame, note: str) -> str:
    head = ["System", "Classifier", "UAR ours", "WAR ours", "UAR paper", "WAR paper", "Δ UAR", "Profile", "Status"]
    lines = ["# Table 1", "", note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        diff = r.get("diff_uar")
        cells = [r["system"], r["classifier"], _fmt(r.get("ours_uar")), _fmt(r.get("ours_war")),
                 _fmt(r["paper_uar"]), _fmt(r["paper_war"]),
                 "—" if diff is None or pd.isna(diff) else f"{diff:+.3f}", str(r.get("profile") or "—"),
                 str(r["status"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def network_profiles(work) -> dict[str, str]:
    """The profile (paper or demo) each trained network of `work` was trained with."""
    found = {}
    for path in sorted((Path(work) / "networks").glob("*/metrics.json")):
        found[path.parent.name] = json.loads(path.read_text()).get("profile", "?")
    return found
