"""Reports: `results/table1|2|3.md` and `.csv` beside the paper, submission CSVs, the S_MTL comparison plot, and
each table's best system up close in `results/plots/` (`exvo_keras.experiments.plots`), linked from its markdown.

Used by the `report` command, run_all.sh and the notebooks, so every table is written one way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from exvo_keras.data.corpus import Corpus
from exvo_keras.experiments.fusion import write_submission
from exvo_keras.experiments.plots import new_figure, save_figure, table_plots
from exvo_keras.experiments.tables import network_profiles, table1_frame, table_frame
from exvo_keras.registry import METRICS, SYSTEM_NOTES, TABLE_SPLIT, rows_of
from exvo_keras.runs import atomic_write_text
from exvo_keras.training.mtl import reference_scores
from exvo_keras.workspace import ReportFolder, Workspace

METRIC_NAMES = {"emo_ccc": "Emo-CCC", "cou_uar": "Cou-UAR", "age_mae": "Age-MAE", "s_mtl": "S_MTL"}


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


def _profile_note(ws: Workspace) -> str:
    profiles = network_profiles(ws)
    if not profiles:
        return "No frame CNNs trained yet."
    return "Frame CNNs trained with profile(s): " + ", ".join(f"{k} {v}" for k, v in profiles.items()) + "."


def write_submissions(table: int, ws: Workspace, out: ReportFolder) -> dict[str, Path]:
    """For each row predicted on the table's split without labels: the challenge submission CSV of its best
    Val seed, `out/submissions/<key>.csv`."""
    split = TABLE_SPLIT[table]
    written = {}
    for row in rows_of(table):
        seeds = ws.run(row.key).seeds()
        if any(s.predictions(split).exists() for s in seeds) and any(s.metrics.exists() for s in seeds):
            written[row.key] = write_submission(row, ws, out.submission(row.key), split)
    return written


def plots_markdown(table: int, drawn: dict[str, dict[str, Path]], out: ReportFolder) -> str:
    """The section of a table's markdown that shows the plots `table_plots` drew (nothing when none were)."""
    if not drawn:
        return ""
    if table == 1:
        what = ("The in-domain network with the best Val UAR per task: training curves and the confusion matrix of "
                "its utterance decisions on Val.")
    else:
        which = "The trained system with the best mean S_MTL on Val" + (" and the paper's hybrid" if table == 3 else "")
        what = (f"{which}, at its best seed on Val: training curves, then on {TABLE_SPLIT[table]} (when labelled) the "
                "country confusion matrix, age predicted against true and the CCC per emotion.")
    lines = ["", "## Plots", "", what, ""]
    for key, paths in drawn.items():
        lines += [f"### `{key}`", ""]
        lines += [f"![{kind}]({path.relative_to(out.path).as_posix()})" for kind, path in paths.items()] + [""]
    return "\n".join(lines)


def table_report(table: int, corpus: Corpus, ws: Workspace, out) -> tuple[pd.DataFrame, str]:
    """Writes `out/tableN.md` and `out/tableN.csv` and returns (frame, markdown).

    Table 3 on a corpus whose Test labels are hidden: every predicted system gets a submission CSV instead
    of scores, and its row says so.
    """
    out = ReportFolder(out)
    out.path.mkdir(parents=True, exist_ok=True)
    where = f"corpus `{corpus.root}` (fingerprint {corpus.fingerprint})"
    if table == 1:
        frame = table1_frame(ws)
        note = (f"Validation split of {where}; decision per utterance = argmax of the mean window posterior. "
                f"{_profile_note(ws)}")
        md = table1_markdown(frame, note)
    else:
        split = TABLE_SPLIT[table]
        labelled = corpus.has_labels(split)
        frame = table_frame(table, ws, reference=reference_scores(corpus, split) if labelled else None)
        note = (f"{'Validation' if split == 'Val' else 'Test'} split of {where}; systems trained on Train with "
                f"early stopping on Val; ours are mean ± std over seeds of the run folders in "
                f"`{ws.runs}`; Δ is ours minus the paper's. S_MTL = 3 / (1/CCC + MAE + 1/UAR). "
                f"{_profile_note(ws)}")
        if not corpus.file_ids(split):
            note += f" This corpus has no {split} clips, so no system can be scored on it."
        elif not labelled:
            submissions = write_submissions(table, ws, out)
            note += (f" The {split} labels of this corpus are hidden: each predicted system's challenge submission "
                     f"(best Val seed) is in `{out.submissions}` ({len(submissions)} files).")
            frame["submission"] = frame["key"].map(lambda k: str(submissions[k]) if k in submissions else None)
        if any(r.key == "hybrid-auto" for r in rows_of(table)):
            note += (" The auto hybrid picks each task's system on Val, so its Val score is optimistic; its Test score "
                     "(Table 3) is the fair one.")
        note += "".join(f" {SYSTEM_NOTES[r.system]}" for r in {r.system: r for r in rows_of(table)}.values()
                        if r.system in SYSTEM_NOTES)
        md = table_markdown(frame, f"Table {table}", note)
    md += plots_markdown(table, table_plots(table, corpus, ws, out), out)
    atomic_write_text(out.table_markdown(table), md)
    atomic_write_text(out.table_csv(table), frame.to_csv(index=False))
    return frame, md


def plot_table1(frame: pd.DataFrame, out) -> Path:
    """Table 1 as bars: our UAR and WAR on Val beside the paper's, per network."""
    fig = new_figure((7, 3.2))
    ax = fig.subplots()
    x = np.arange(len(frame))
    for i, (column, label, color) in enumerate((("ours_uar", "UAR ours", "tab:blue"),
                                                 ("paper_uar", "UAR paper", "tab:gray"),
                                                 ("ours_war", "WAR ours", "tab:cyan"),
                                                 ("paper_war", "WAR paper", "silver"))):
        values = frame[column].astype(float).fillna(0) if column in frame else np.zeros(len(frame))
        ax.bar(x + (i - 1.5) * 0.2, values, 0.2, label=label, color=color)
    ax.set_xticks(x, frame["system"], fontsize=8)
    ax.set_ylabel("Val")
    ax.set_title("Table 1: utterance decisions of the in-domain networks", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, out, dpi=120)


def plot_comparison(frames: dict[int, pd.DataFrame], out) -> Path:
    """One panel per table: our S_MTL (mean ± std over seeds) beside the paper's, row by row."""
    panels = {t: f[f["key"].notna()] for t, f in frames.items()}
    heights = [max(len(f), 1) for f in panels.values()]
    fig = new_figure((9, 0.32 * sum(heights) + 1.5 * len(panels)))
    axes = fig.subplots(len(panels), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (table, frame) in zip(axes[:, 0], panels.items()):
        y = np.arange(len(frame))
        labels = [f"{s} {c}" for s, c in zip(frame["system"], frame["config"])]
        ours = frame.get("ours_s_mtl", pd.Series(np.nan, index=frame.index)).astype(float)
        ours_std = frame.get("ours_s_mtl_std", pd.Series(np.nan, index=frame.index)).astype(float)
        paper = frame.get("paper_s_mtl", pd.Series(np.nan, index=frame.index)).astype(float)
        ax.barh(y - 0.2, ours.fillna(0), 0.4, xerr=ours_std.fillna(0), label="ours", color="tab:blue")
        ax.barh(y + 0.2, paper.fillna(0), 0.4, label="paper", color="tab:gray")
        for i, (o, status) in enumerate(zip(ours, frame["status"])):
            if np.isnan(o):
                ax.text(0.005, i - 0.2, str(status).split(":")[0], va="center", fontsize=6, color="tab:red")
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("S_MTL")
        ax.set_title(f"Table {table} ({TABLE_SPLIT[table]})", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out, dpi=120)


def all_reports(corpus: Corpus, ws: Workspace, out) -> dict[int, pd.DataFrame]:
    """Tables 1, 2 and 3 and the comparison plot into `out`."""
    frames = {t: table_report(t, corpus, ws, out)[0] for t in (1, 2, 3)}
    plot_comparison({2: frames[2], 3: frames[3]}, ReportFolder(out).comparison_plot)
    return frames
