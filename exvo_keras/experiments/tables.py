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
    "deepspectrum": "ImageNet VGG16 weights (vgg16_weights_tf_dim_ordering_tf_kernels.h5): python -m exvo_keras "
                    "extract-deepspectrum --imagenet-weights FILE --data DATA --work WORK",
    **{name: f"python -m exvo_keras train-network {name} ... then extract-network {name}"
       for name in ("raw_exvo_er", "zff_exvo_er", "raw_exvo_cr", "zff_exvo_cr", "raw_ser", "zff_ser", "raw_asr")},
    **{name: f"python -m exvo_keras extract-ssl {name} --data DATA --work WORK [--ssl-dir DIR]"
       for name in ("wavlm", "hubert", "wav2vec2")},
}

METRICS = ("emo_ccc", "cou_uar", "age_mae", "s_mtl")
METRIC_NAMES = {"emo_ccc": "Emo-CCC", "cou_uar": "Cou-UAR", "age_mae": "Age-MAE", "s_mtl": "S_MTL"}
TASKS = ("emotion", "age", "country")
# the metric that scores each task, and whether lower is better
TASK_METRIC = {"emotion": ("emo_ccc", False), "age": ("age_mae", True), "country": ("cou_uar", False)}
NETWORK_SOURCE = "network:"
AUTO = "auto"


@dataclass(frozen=True)
class Row:
    """One trained system of a results table: feature stores through a multi-task head.

    Args:
        table: the paper's table number (2: scored on Val, 3: scored on Test).
        system: name shown in our table.
        config: "Sys-1", "Sys-2" or "baseline head".
        features: feature-set names; several means early fusion (concatenation in this order).
        head: `exvo_keras.models.mtl.PRESETS` key ("linear": the linear reference, ridge + logistic regression).
        paper: (system, config) of the paper row it reproduces, or None when the paper has no such row.
        recipe: `exvo_keras.training.mtl.RECIPES` key this row always trains with, or None for the command's
            (the default recipe unless `--recipe` says otherwise).

    The same system listed in Tables 2 and 3 has one key, so one run folder: Table 3 scores it on Test.
    """

    table: int
    system: str
    config: str
    features: tuple[str, ...]
    head: str
    paper: tuple[str, str] | None
    recipe: str | None = None

    @property
    def key(self) -> str:
        slug = "+".join(self.features)
        return f"{slug}-{self.head}"

    def store_paths(self, work: Path) -> list[Path]:
        return [feature_store(work, f) for f in self.features]


@dataclass(frozen=True)
class Hybrid:
    """A system that takes each task's predictions from another system (late, per-task combination).

    Args:
        table, system, config, paper: as for `Row`.
        name: its key (run folder name).
        sources: (task, source) for each of "emotion", "age", "country". A source is a `Row` key (that system's
            predictions, seed by seed), "network:<name>" (a frame CNN's own utterance decision, the same for
            every seed; country or emotion class), or "auto": the system best at that task on Val among the
            Table 2 systems that have run (and, for country, the CR networks' decisions).

    Example:
        Hybrid(2, "Raw(ExVo)-ER + Raw(ExVo)-CR", "Sys-1", "hybrid-raw_er-sys1+raw_cr",
               (("emotion", "raw_exvo_er-sys1"), ("age", "raw_exvo_er-sys1"), ("country", "network:raw_exvo_cr")),
               ("Raw(ExVo)-ER + Raw(ExVo)-CR", "Sys-1"))
    """

    table: int
    system: str
    config: str
    name: str
    sources: tuple[tuple[str, str], ...]
    paper: tuple[str, str] | None

    @property
    def key(self) -> str:
        return self.name

    def source_of(self, task: str) -> str:
        return dict(self.sources)[task]


def feature_store(work, name: str) -> Path:
    return Path(work) / "features" / f"{name}.h5"


LINEAR = "Linear reference"


def _sys_rows(system: str, features: tuple[str, ...], table: int = 2) -> tuple[Row, ...]:
    """Sys-1 and Sys-2 on a feature set, and the linear reference on the same features beside them."""
    return tuple(Row(table, system, config, features, head, (system, config))
                 for config, head in (("Sys-1", "sys1"), ("Sys-2", "sys2"))) + (_linear_row(system, features, table),)


def _linear_row(system: str, features: tuple[str, ...], table: int) -> Row:
    return Row(table, system, LINEAR, features, "linear", None)


def _cr_hybrids(cr: str, label: str) -> tuple[Hybrid, ...]:
    system = f"Raw(ExVo)-ER + {label}"
    return tuple(Hybrid(2, system, config, f"hybrid-raw_exvo_er-{head}+{cr}",
                        (("emotion", f"raw_exvo_er-{head}"), ("age", f"raw_exvo_er-{head}"),
                         ("country", NETWORK_SOURCE + cr)), (system, config))
                 for config, head in (("Sys-1", "sys1"), ("Sys-2", "sys2")))


AUTO_HYBRID = Hybrid(2, "Hybrid: each task from its best system on Val", "auto", "hybrid-auto",
                     tuple((t, AUTO) for t in TASKS), None)
WAVLM_HYBRID = Hybrid(3, "Hybrid (WavLM emotion+country; Raw(ExVo)-ER age)", "Sys-2", "hybrid-wavlm-sys2+raw_exvo_er",
                      (("emotion", "wavlm-sys2"), ("age", "raw_exvo_er-sys2"), ("country", "wavlm-sys2")),
                      ("Hybrid (WavLM emotion+country; Raw(ExVo)-ER age)", "Sys-2"))

ROWS = (
    Row(2, "ComParE", "Sys-1", ("compare",), "sys1", ("ComParE", "Sys-1")),
    Row(2, "ComParE", "Sys-2", ("compare",), "sys2", None),
    # The challenge's own head on the same features: the paper's ComParE row is the organisers' baseline.
    Row(2, "ComParE", "baseline head", ("compare",), "baseline", ("ComParE", "Sys-1"), recipe="baseline"),
    _linear_row("ComParE", ("compare",), 2),
    Row(2, "DeepSpectrum", "Sys-1", ("deepspectrum",), "sys1", ("DeepSpectrum", "Sys-1")),
    _linear_row("DeepSpectrum", ("deepspectrum",), 2),
    *_sys_rows("WavLM", ("wavlm",)),
    *_sys_rows("HuBERT", ("hubert",)),
    *_sys_rows("Wav2Vec2", ("wav2vec2",)),
    *_sys_rows("Raw(SER)", ("raw_ser",)),
    *_sys_rows("Zff(SER)", ("zff_ser",)),
    *_sys_rows("Raw(ASR)", ("raw_asr",)),
    *_sys_rows("Raw(ExVo)-ER", ("raw_exvo_er",)),
    *_sys_rows("Zff(ExVo)-ER", ("zff_exvo_er",)),
    *_sys_rows("Raw(ExVo)-ER + Zff(ExVo)-ER", ("raw_exvo_er", "zff_exvo_er")),
    *_sys_rows("Raw(ExVo)-ER + Raw(ASR)", ("raw_exvo_er", "raw_asr")),
    *_sys_rows("Raw(ExVo)-ER + WavLM", ("raw_exvo_er", "wavlm")),
    *_cr_hybrids("raw_exvo_cr", "Raw(ExVo)-CR"),
    *_cr_hybrids("zff_exvo_cr", "Zff(ExVo)-CR"),
    AUTO_HYBRID,
    # Table 3: the same systems (trained on Train, Val for early stopping) scored on Test.
    Row(3, "ComParE", "Sys-1", ("compare",), "sys1", ("ComParE", "Sys-1")),
    Row(3, "ComParE", "baseline head", ("compare",), "baseline", ("ComParE", "Sys-1"), recipe="baseline"),
    _linear_row("ComParE", ("compare",), 3),
    Row(3, "DeepSpectrum", "Sys-1", ("deepspectrum",), "sys1", ("DeepSpectrum", "Sys-1")),
    _linear_row("DeepSpectrum", ("deepspectrum",), 3),
    Row(3, "WavLM", "Sys-2", ("wavlm",), "sys2", ("WavLM", "Sys-2")),
    _linear_row("WavLM", ("wavlm",), 3),
    Row(3, "Raw(ExVo)-ER", "Sys-2", ("raw_exvo_er",), "sys2", ("Raw(ExVo)-ER", "Sys-2")),
    _linear_row("Raw(ExVo)-ER", ("raw_exvo_er",), 3),
    Row(3, "Raw(ASR)", "Sys-2", ("raw_asr",), "sys2", ("Raw(ASR)", "Sys-2")),
    _linear_row("Raw(ASR)", ("raw_asr",), 3),
    # The paper's Raw(AMI) is its ASR network (trained on AMI): our Raw(ASR) store.
    Row(3, "Raw(ExVo)-ER + Raw(ASR)", "Sys-2", ("raw_exvo_er", "raw_asr"), "sys2", ("Raw(ExVo)-ER + Raw(AMI)", "Sys-2")),
    _linear_row("Raw(ExVo)-ER + Raw(ASR)", ("raw_exvo_er", "raw_asr"), 3),
    WAVLM_HYBRID,
    Hybrid(3, AUTO_HYBRID.system, "auto", AUTO_HYBRID.name, AUTO_HYBRID.sources, None),
)

TABLE_SPLIT = {2: "Val", 3: "Test"}

# Table 1: the in-domain networks' own utterance decisions on Val.
TABLE1_NETWORKS = ("raw_exvo_er", "zff_exvo_er", "raw_exvo_cr", "zff_exvo_cr")


def random_init(store) -> bool:
    """Whether a store's features come from a randomly initialised encoder (the demo's stand-in for a checkpoint)."""
    from exvo_keras.store import store_attrs

    return str(store_attrs(store)["settings"].get("weights", "")).startswith("random-init")


def rows_of(table: int) -> list:
    return [r for r in ROWS if r.table == table]


def systems() -> dict:
    """Every registered system by key (a system listed in two tables appears once)."""
    found = {}
    for r in ROWS:
        found.setdefault(r.key, r)
    return found


def row_by_key(key: str):
    try:
        return systems()[key]
    except KeyError:
        raise KeyError(f"no registered system {key!r}; known: {', '.join(systems())}") from None


def missing_inputs(row, work: Path) -> list[str]:
    """What to supply before `row` can run: one line per missing store, with the command that makes it.

    For a hybrid: its sources that have not run (auto sources are resolved when the hybrid runs).
    """
    if isinstance(row, Hybrid):
        missing = []
        for task, source in row.sources:
            if source == AUTO:
                continue
            if source.startswith(NETWORK_SOURCE):
                name = source[len(NETWORK_SOURCE):]
                if not (Path(work) / "networks" / name / "best.keras").exists():
                    missing.append(f"{task}: network {name} (python -m exvo_keras train-network {name})")
            elif not (run_dir(work, row_by_key(source)) / "summary.json").exists():
                missing.append(f"{task}: system {source} (python -m exvo_keras train --rows {source})")
        return missing
    return [f"{p} ({FEATURE_COMMANDS.get(f, 'no extractor registered')})"
            for f, p in zip(row.features, row.store_paths(work)) if not p.exists()]


def run_dir(work, row) -> Path:
    return Path(work) / "runs" / row.key


def mean_scores(work, entries, split: str, metric: str) -> dict[str, float]:
    """{key: mean over seeds of `metric` on `split`} for the entries whose run folder has been scored on `split`."""
    found = {}
    for entry in entries:
        path = run_dir(work, entry) / "summary.json"
        if path.exists():
            summary = json.loads(path.read_text())
            if split in summary:
                found[entry.key] = summary[split][metric]["mean"]
    return found


def system_sources(key: str, work) -> dict[str, str]:
    """{task: source} of a registered system: its own key for every task, or a hybrid's (resolved) sources.

    An auto hybrid's choice is read from its run folder (`sources.json`), so it must have run.
    """
    row = row_by_key(key)
    if isinstance(row, Row):
        return {t: key for t in TASKS}
    sources = dict(row.sources)
    if AUTO in sources.values():
        path = run_dir(work, row) / "sources.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: run the hybrid first (python -m exvo_keras train --rows {key})")
        sources.update(json.loads(path.read_text()))
    return sources


def _status(row, work: Path, split: str, summary: dict | None) -> str:
    if summary is not None and split in summary:
        return "run"
    folder = run_dir(work, row)
    if any(folder.glob(f"seed_*/predictions_{split}.csv")):
        return f"{split} labels hidden: predictions only (see the submission CSV)"
    if summary is not None:
        return f"not scored on {split} yet: rerun python -m exvo_keras train --rows {row.key}"
    missing = missing_inputs(row, work)
    return "not run: supply " + "; ".join(missing) if missing else "not run yet"


def row_profile(row, work: Path) -> str:
    """Where a row's features came from: frame-CNN profile(s), encoder weights, or "-" (ComParE etc.)."""
    from exvo_keras.store import store_attrs

    if isinstance(row, Hybrid):
        path = run_dir(work, row) / "sources.json"
        sources = json.loads(path.read_text()) if path.exists() else dict(row.sources)
        return "; ".join(f"{task} from {source}" for task, source in sources.items())
    profiles = network_profiles(work)
    parts = []
    for feature, path in zip(row.features, row.store_paths(work)):
        if feature in profiles:
            parts.append(f"{feature}: {profiles[feature]} profile")
        elif path.exists():
            weights = store_attrs(path)["settings"].get("weights")
            if weights:
                parts.append(f"{feature}: {weights}")
    return "; ".join(parts) or "-"


def table_frame(table: int, work, reference: dict | None = None, split: str | None = None) -> pd.DataFrame:
    """Our mean ± std over seeds for every row of `table`, beside the paper's numbers and the difference.

    `split` defaults to the table's own (Table 2: Val, Table 3: Test). Columns: system, config, key, status,
    seeds, profile, corpus (fingerprint of the corpus the run was trained on), ours_<metric>(_std),
    paper_<metric>, diff_<metric> for each of METRICS.
    """
    work = Path(work)
    split = split or TABLE_SPLIT[table]
    records = []
    if reference is not None:
        records.append({"system": "Reference: Train means + majority country", "config": "-", "status": "run",
                        **{f"ours_{m}": reference[m] for m in METRICS}})
    for row in rows_of(table):
        rec = {"system": row.system, "config": row.config, "key": row.key}
        folder = run_dir(work, row)
        summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else None
        if isinstance(row, Row) and not missing_inputs(row, work) \
                and any(random_init(p) for p in row.store_paths(work)):
            rec["system"] += " (random-init encoder)"
        rec["status"] = _status(row, work, split, summary)
        if rec["status"] == "run":
            scores = summary[split]
            rec["seeds"] = scores["s_mtl"]["n"]
            for m in METRICS:
                rec[f"ours_{m}"] = scores[m]["mean"]
                rec[f"ours_{m}_std"] = scores[m]["std"]
        if summary is not None:
            rec["profile"] = row_profile(row, work)
            config = folder / "config.json"
            rec["corpus"] = json.loads(config.read_text()).get("corpus") if config.exists() else None
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
           [f"{METRIC_NAMES[m]} paper" for m in METRICS] + ["Δ S_MTL", "Status", "Features from"]
    lines = [f"# {title}", "", note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        seeds = r.get("seeds")
        cells = [str(r["system"]), str(r["config"]), "—" if seeds is None or pd.isna(seeds) else str(int(seeds))]
        cells += [_fmt(r.get(f"ours_{m}"), r.get(f"ours_{m}_std")) for m in METRICS]
        cells += [_fmt(r.get(f"paper_{m}"), r.get("paper_s_mtl_std") if m == "s_mtl" else None) for m in METRICS]
        diff = r.get("diff_s_mtl")
        profile = r.get("profile")
        cells += ["—" if diff is None or pd.isna(diff) else f"{diff:+.3f}", str(r["status"]),
                  "—" if profile is None or pd.isna(profile) else str(profile)]
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


def table1_markdown(frame: pd.DataFrame, note: str) -> str:
    head = ["System", "Classifier", "UAR ours", "WAR ours", "UAR paper", "WAR paper", "Δ UAR", "Profile",
            "Class weights", "Status"]
    lines = ["# Table 1", "", note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        diff = r.get("diff_uar")
        cells = [r["system"], r["classifier"], _fmt(r.get("ours_uar")), _fmt(r.get("ours_war")),
                 _fmt(r["paper_uar"]), _fmt(r["paper_war"]),
                 "—" if diff is None or pd.isna(diff) else f"{diff:+.3f}", str(r.get("profile") or "—"),
                 "—" if pd.isna(r.get("class_weighting")) else str(r["class_weighting"]), str(r["status"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def network_profiles(work) -> dict[str, str]:
    """The profile (paper or demo) each trained network of `work` was trained with."""
    found = {}
    for path in sorted((Path(work) / "networks").glob("*/metrics.json")):
        found[path.parent.name] = json.loads(path.read_text()).get("profile", "?")
    return found
