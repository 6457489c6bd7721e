"""Plots of one system up close: training curves, country confusion matrix, age predicted against true, CCC per
emotion; and a frame CNN's training curves and confusion matrix.

`table_plots` draws them for a table's best system (`table_systems`) into `<report folder>/plots/`, named
`table<N>_<key>_<kind>.png`; `report.table_report` calls it and links the PNGs from the table's markdown, and the
notebooks call it to show them. The numbers behind a plot come from functions that return them
(`confusion_counts`, `emotion_ccc`), scored with `exvo_keras.metrics`, so a plot shows what the tables score.

Figures are bare matplotlib Figures on the Agg canvas, not pyplot: no global figure state, and nothing depends on
the backend of whoever imports this (a notebook kernel keeps its own).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments.tables import mean_scores
from exvo_keras.metrics import ccc_per_column, mae, uar
from exvo_keras.registry import AUTO, TABLE1_NETWORKS, TABLE_SPLIT, Hybrid, Row, network, rows_of, systems
from exvo_keras.runs import read_json
from exvo_keras.training.mtl import kept_epoch
from exvo_keras.workspace import ReportFolder, Workspace

# What a system's plots are called, in the order they are drawn (a frame CNN's: "training", "confusion").
KINDS = ("training", "country", "age", "emotion")

NAMES = {"loss": "total", "emotion_loss": "emotion", "age_loss": "age", "country_loss": "country",
         "emo_ccc": "Emo-CCC", "cou_uar": "Cou-UAR", "s_mtl": "S_MTL", "age_mae": "Age-MAE"}
# (panel title, history keys drawn in it); each key's "val_" form is drawn beside it, dashed
HEAD_PANELS = (("Loss", ("loss",)),
               ("Loss per task", ("emotion_loss", "age_loss", "country_loss")),
               ("Scores (higher is better)", ("emo_ccc", "cou_uar", "s_mtl")),
               ("Age-MAE in years (lower is better)", ("age_mae",)))


# Files -----------------------------------------------------------------------------------------------------------

def new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out, dpi: int = 100) -> Path:
    """Writes `fig` as a PNG at `out`, whole or not at all (a reader never sees half a file); returns `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a unique temporary name: two reports drawing into one folder do not write over each other's half-files
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a report is meant to be shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


# Training curves -------------------------------------------------------------------------------------------------

def epoch_series(history: Mapping) -> dict[str, np.ndarray]:
    """The per-epoch lists of a head's history.json, by key: none for the linear head, whose history is the
    penalties it chose (dicts), and no `best_epoch` or `start_scores` (single values)."""
    found = {}
    for key, values in history.items():
        if isinstance(values, list) and values and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            found[key] = np.asarray(values, np.float64)
    return found


def _kept_epoch(history: Mapping) -> tuple[int, str] | None:
    """(x, label) of the epoch whose weights were kept, on the 1-based epoch axis (0: before training)."""
    best = kept_epoch(history)
    if best is None:
        return None
    if "best_epoch" not in history:
        return best + 1, "lowest val_loss"
    return best + 1, (f"kept: epoch {best + 1}" if best >= 0 else "kept: the untrained head")


def plot_training_curves(history: Mapping, out, title: str = "") -> Path | None:
    """A head's history.json as curves per epoch: losses, per-task losses, scores and age MAE; solid on the training
    rows, dashed on the held-out rows early stopping watched, the kept epoch dotted. Panels without data are left
    out; None (nothing written) for a history without per-epoch lists (the linear head's)."""
    series = epoch_series(history)
    start = history.get("start_scores")
    start = start if isinstance(start, Mapping) else {}
    panels = [(name, keys) for name, keys in HEAD_PANELS if any(k in series or f"val_{k}" in series for k in keys)]
    if not panels:
        return None
    kept = _kept_epoch(history)
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    fig = new_figure((4.6 * cols, 2.8 * rows + (0.3 if title else 0)))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (name, keys) in zip(axes, panels):
        for i, key in enumerate(keys):
            if key in series:
                ax.plot(np.arange(1, len(series[key]) + 1), series[key], color=f"C{i}", label=f"{NAMES[key]} train")
            held = series.get(f"val_{key}")
            if held is not None:
                x, y = np.arange(1, len(held) + 1), held
                if isinstance(start.get(f"val_{key}"), (int, float)):
                    x, y = np.r_[0, x], np.r_[start[f"val_{key}"], y]
                ax.plot(x, y, color=f"C{i}", linestyle="--", label=f"{NAMES[key]} held-out")
        drawn = np.concatenate([series[k] for key in keys for k in (key, f"val_{key}") if k in series])
        if name.startswith("Loss") and (drawn > 0).all() and drawn.max() > 10 * drawn.min():
            # an overfitting head's held-out loss can be orders of magnitude above its training loss (measured
            # 3337 against 3.6 for ComParE Sys-1 on the CLI test's tiny demo), which flattens the training curve
            ax.set_yscale("log")
        if kept is not None:
            ax.axvline(kept[0], color="k", linestyle=":", linewidth=1, label=kept[1])
        _epoch_axis(ax, name)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out)


def _epoch_axis(ax, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(which="both", labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)


def plot_network_curves(history: pd.DataFrame, out, title: str = "") -> Path | None:
    """A frame CNN's history.csv (epoch, loss, accuracy, val_loss, val_accuracy, and the learning rate as
    `learning_rate` or `lr`) as curves per epoch, the rate on a log scale, the epoch of best.keras (lowest val_loss)
    dotted. None (nothing written) when it has no epochs."""
    frame = history
    if "epoch" in frame:
        # a resumed run appends to the file; should an epoch appear twice, its last row is the one that counts
        frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
    x = frame["epoch"].to_numpy() + 1 if "epoch" in frame else np.arange(1, len(frame) + 1)
    rate = next((c for c in ("learning_rate", "lr") if c in frame), None)
    panels = [(name, col) for name, col in (("Loss", "loss"), ("Accuracy (frames)", "accuracy"))
              if col in frame or f"val_{col}" in frame]
    if rate is not None:
        panels.append(("Learning rate", rate))
    if frame.empty or not panels:
        return None
    best = x[int(np.nanargmin(frame["val_loss"].to_numpy(np.float64)))] if "val_loss" in frame else None
    fig = new_figure((3.6 * len(panels), 2.8 + (0.3 if title else 0)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, col) in zip(axes, panels):
        if col == rate:
            values = frame[col].to_numpy(np.float64)
            ax.plot(x, values, color="C2", label="learning rate")
            if (values > 0).all():
                ax.set_yscale("log")
        else:
            for column, style, label in ((col, "-", "train"), (f"val_{col}", "--", "held-out")):
                if column in frame:
                    ax.plot(x, frame[column].to_numpy(np.float64), color="C0", linestyle=style, label=label)
        if best is not None:
            ax.axvline(best, color="k", linestyle=":", linewidth=1, label="best.keras")
        _epoch_axis(ax, name)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out)


# Predictions against labels --------------------------------------------------------------------------------------

def confusion_counts(true, pred, n_classes: int = len(COUNTRIES)) -> np.ndarray:
    """[n_classes, n_classes] int counts, row = true class, column = predicted class (sklearn's layout).

    Raises:
        ValueError: for 1-D arrays of different lengths, non-integer labels or labels outside [0, n_classes).
    """
    t, p = np.asarray(true), np.asarray(pred)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"confusion_counts: two 1-D arrays of one length needed, got {t.shape} and {p.shape}")
    for name, a in (("true", t), ("pred", p)):
        if a.size and (not np.issubdtype(a.dtype, np.number) or (a != np.round(a)).any()
                       or a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"confusion_counts: {name} labels must be integers in [0, {n_classes})")
    t, p = t.astype(np.int64), p.astype(np.int64)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total: the diagonal is each class's recall; NaN rows for classes never true."""
    counts = np.asarray(counts, np.float64)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, counts / support, np.nan)


def plot_confusion(counts: np.ndarray, out, names=COUNTRIES, title: str = "") -> Path:
    """Counts and row-normalised shares side by side, rows true, columns predicted."""
    counts = np.asarray(counts)
    shares = row_normalised(counts)
    n = len(names)
    size = 2.2 + 0.25 * n
    fig = new_figure((2 * size + 0.8, size + (0.3 if title else 0)))
    font = 7 if n <= 4 else 5
    for ax, values, label in zip(fig.subplots(1, 2), (counts, shares), ("counts", "share of the true class")):
        image = ax.imshow(np.nan_to_num(values.astype(np.float64)), cmap="Blues",
                          vmin=0, vmax=max(values.max(), 1) if label == "counts" else 1)
        for (i, j), v in np.ndenumerate(values):
            text = "—" if np.isnan(v) else (f"{int(v)}" if label == "counts" else f"{v:.2f}")
            dark = not np.isnan(v) and v > 0.6 * (counts.max() if label == "counts" else 1)
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color="white" if dark else "black")
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=font + 1)
        ax.set_yticks(range(n), names, fontsize=font + 1)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(label, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.7).ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out)


def plot_age(true, pred, out, title: str = "") -> Path:
    """Predicted against true age with the identity line, the MAE in the title."""
    t, p = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    error = mae(t, p)
    fig = new_figure((3.8, 3.8))
    ax = fig.subplots()
    ax.scatter(t, p, s=12, alpha=0.6, edgecolors="none")
    lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
    pad = 0.05 * (hi - lo) or 1.0
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", linewidth=1, label="predicted = true")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("true age (years)", fontsize=8)
    ax.set_ylabel("predicted age (years)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title((f"{title}\n" if title else "") + f"Age-MAE {error:.2f} years (n = {len(t)})", fontsize=8)
    return save_figure(fig, out)


def emotion_ccc(true, pred) -> pd.Series:
    """The CCC of each emotion (`exvo_keras.metrics.ccc_per_column`), indexed by EMOTIONS; its mean is Emo-CCC."""
    values = ccc_per_column(true, pred)
    if len(values) != len(EMOTIONS):
        raise ValueError(f"emotion_ccc: expected {len(EMOTIONS)} emotion columns, got {len(values)}")
    return pd.Series(values, index=list(EMOTIONS), name="ccc")


def plot_emotion_ccc(ccc: pd.Series, out, title: str = "") -> Path:
    """One bar per emotion, their mean (the Emo-CCC) as a line."""
    fig = new_figure((6.4, 3.0 + (0.3 if title else 0)))
    ax = fig.subplots()
    x = np.arange(len(ccc))
    ax.bar(x, ccc.to_numpy(np.float64), color=["tab:blue" if v >= 0 else "tab:red" for v in ccc])
    ax.axhline(float(ccc.mean()), color="k", linestyle="--", linewidth=1, label=f"Emo-CCC {ccc.mean():.3f}")
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_xticks(x, ccc.index, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("CCC", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, out)


# One system, one network, one table ------------------------------------------------------------------------------

def _label(key: str) -> str:
    row = systems().get(key)
    return f"{row.system} {row.config}" if row is not None else key


def system_plots(key: str, corpus: Corpus, ws: Workspace, out, table: int, split: str | None = None,
                 seed: int | None = None) -> dict[str, Path]:
    """The plots of system `key` at `seed` (default its best seed on Val) into `out/plots/table<table>_<key>_*`;
    {kind: path} of those drawn.

    Training curves need the seed's history.json with per-epoch lists (a hybrid has no history, the linear head's
    has no epochs); the others need its predictions on `split` (default the table's) and that split's labels
    (ExVo's Test labels are hidden). What is missing is left out.
    """
    from exvo_keras.training.mtl import best_seed  # TensorFlow only for a report that draws a system

    ws = Workspace(ws)
    split = split or TABLE_SPLIT[table]
    folder = ws.run(key)
    seed = best_seed(folder, "Val") if seed is None else seed
    seed_dir = folder.seed(seed)
    name = f"{_label(key)}, seed {seed}"

    def path(kind: str) -> Path:
        return ReportFolder(out).plot(f"table{table}", key, kind)

    drawn = {}
    history = read_json(seed_dir.history)
    if history is not None:
        written = plot_training_curves(history, path("training"), f"{name}: training")
        if written is not None:
            drawn["training"] = written
    predictions = seed_dir.predictions(split)
    if not predictions.exists() or not corpus.has_labels(split):
        return drawn
    frame = pd.read_csv(predictions, dtype={"File_ID": str})
    if not set(frame["File_ID"]) <= set(corpus.file_ids(split)):
        return drawn  # predicted on another corpus: its clips have no labels here
    labels = corpus.labels_of(frame["File_ID"])
    on = f"{name}, {split}"
    country = frame["Country"].to_numpy()
    drawn["country"] = plot_confusion(confusion_counts(labels["country"], country), path("country"),
                                      COUNTRIES, f"{on}: country, Cou-UAR {uar(labels['country'], country):.3f}")
    drawn["age"] = plot_age(labels["age"], frame["Age"].to_numpy(), path("age"), f"{on}: age")
    drawn["emotion"] = plot_emotion_ccc(emotion_ccc(labels["emotion"], frame[list(EMOTIONS)].to_numpy()),
                                        path("emotion"), f"{on}: CCC per emotion")
    return drawn


def network_curves(name: str, ws: Workspace, out, prefix: str = "network") -> Path | None:
    """A frame CNN's training curves from its history.csv into `out/plots/<prefix>_<name>_training.png`; None
    before it has trained an epoch."""
    history = Workspace(ws).network(name).history
    if not history.exists() or history.stat().st_size == 0:
        return None
    return plot_network_curves(pd.read_csv(history), ReportFolder(out).plot(prefix, name, "training"),
                               f"{network(name).label}: training")


def network_plots(name: str, corpus: Corpus, ws: Workspace, out, split: str = "Val") -> dict[str, Path]:
    """An in-domain frame CNN's training curves and the confusion matrix of its utterance decisions on `split`
    (`decisions_<split>.csv`, when made from this corpus and labelled), into `out/plots/table1_<name>_*`."""
    ws = Workspace(ws)
    net = network(name)
    drawn = {}
    curves = network_curves(name, ws, out, prefix="table1")
    if curves is not None:
        drawn["training"] = curves
    path = ws.network(name).decisions(split)
    if path.exists():
        decisions = pd.read_csv(path, dtype={"File_ID": str, "corpus": str})
        fresh = "corpus" not in decisions or (decisions["corpus"] == corpus.fingerprint).all()
        if fresh and len(decisions) and (decisions["true"] >= 0).all():
            names = COUNTRIES if net.task == "country" else EMOTIONS
            true, pred = decisions["true"].to_numpy(), decisions["predicted"].to_numpy()
            drawn["confusion"] = plot_confusion(
                confusion_counts(true, pred, len(names)), ReportFolder(out).plot("table1", name, "confusion"), names,
                f"{net.label}, {split}: utterance decisions, UAR {uar(true, pred):.3f}")
    return drawn


def best_system(table: int, ws: Workspace) -> str | None:
    """The trained system (`Row`) of `table` with the best mean S_MTL on Val over its seeds; None before any has
    been scored on Val. Hybrids are left out: they train nothing, and the auto hybrid is picked on Val itself."""
    scores = mean_scores(Workspace(ws), [r for r in rows_of(table) if isinstance(r, Row)], "Val", "s_mtl")
    return max(scores, key=scores.get) if scores else None


def best_networks(ws: Workspace) -> list[str]:
    """Table 1's in-domain networks with the best Val UAR per task (emotion, country), scored ones only: a UAR over
    ten emotions and one over four countries are not on one scale."""
    best: dict[str, tuple[str, float]] = {}
    for name in TABLE1_NETWORKS:
        metrics = read_json(Workspace(ws).network(name).metrics)
        if metrics is None:
            continue
        task, score = network(name).task, metrics["Val"]["uar"]
        if task not in best or score > best[task][1]:
            best[task] = (name, score)
    return [name for name, _ in best.values()]


def table_systems(table: int, ws: Workspace) -> list[str]:
    """The keys `table_plots` draws for Table 2 or 3: the best system on Val and, in Table 3, the paper's hybrid
    once it has predictions on Test (the auto hybrid is not the paper's)."""
    ws = Workspace(ws)
    best = best_system(table, ws)
    keys = [best] if best else []
    if table == 3:
        hybrids = [r for r in rows_of(table) if isinstance(r, Hybrid) and AUTO not in dict(r.sources).values()]
        # best_seed needs seeds scored on Val, which a built hybrid has
        scored = mean_scores(ws, hybrids, "Val", "s_mtl")
        keys += [k for k in scored if any(s.predictions(TABLE_SPLIT[table]).exists() for s in ws.run(k).seeds())]
    return keys


def table_plots(table: int, corpus: Corpus, ws: Workspace, out) -> dict[str, dict[str, Path]]:
    """Draws the plots of a table's best system(s) (Table 1: `best_networks`, else `table_systems`) under
    `out/plots/`; {key or network name: {kind: path}}, systems with nothing to draw left out.

    The table's PNGs from an earlier report that are not drawn again are removed, so the folder shows the
    current best.
    """
    if table == 1:
        drawn = {name: network_plots(name, corpus, ws, out) for name in best_networks(ws)}
    else:
        drawn = {key: system_plots(key, corpus, ws, out, table) for key in table_systems(table, ws)}
    kept = {p for paths in drawn.values() for p in paths.values()}
    for old in ReportFolder(out).plots.glob(f"table{table}_*.png"):
        if old not in kept:
            old.unlink()
    return {key: paths for key, paths in drawn.items() if paths}
