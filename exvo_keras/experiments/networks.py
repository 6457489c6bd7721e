"""The paper's frame CNNs as data, and the stages that train, score and embed with them.

In-domain networks learn ExVo hard labels (argmax emotion: ER, country: CR) on the raw or ZFF waveform.
Out-of-domain networks learn from a labelled list: an utterance list `path,label[,speaker]` (speech emotion,
IEMOCAP-like) or a segment list `path,start,end,label[,speaker]` (phones, AMI-like); or their trained weights are
loaded from a `.keras` file. Paths in a list are relative to the list's folder.

Work folder layout: `WORK/signals/<source>/<raw|zff>/` (cached waveforms), `WORK/networks/<name>/` (a training
run, see `exvo_keras.training.frame_cnn`), `WORK/features/<name>.h5` (the utterance embeddings).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from exvo_keras.data.corpus import Corpus, hard_labels, speaker_split, split_by_speaker
from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE
from exvo_keras.data.signals import SignalCache
from exvo_keras.training.frame_cnn import ClipSet, FrameTraining


@dataclass(frozen=True)
class Network:
    """One frame CNN of the paper.

    Args:
        name: folder and store name, e.g. "raw_exvo_er".
        label: the paper's name, e.g. "Raw(ExVo)-ER".
        signal: "raw" or "zff".
        source: "exvo" (the corpus's Train split) or the name of a labelled list ("ser", "phones").
        task: for "exvo", "emotion" or "country".
        architecture: FrameCNN architecture.
    """

    name: str
    label: str
    signal: str
    source: str
    task: str | None = None
    architecture: str = "subseg"


NETWORKS = {n.name: n for n in (
    Network("raw_exvo_er", "Raw(ExVo)-ER", "raw", "exvo", "emotion"),
    Network("zff_exvo_er", "Zff(ExVo)-ER", "zff", "exvo", "emotion"),
    Network("raw_exvo_cr", "Raw(ExVo)-CR", "raw", "exvo", "country"),
    Network("zff_exvo_cr", "Zff(ExVo)-CR", "zff", "exvo", "country"),
    Network("raw_ser", "Raw(SER)", "raw", "ser"),
    Network("zff_ser", "Zff(SER)", "zff", "ser"),
    Network("raw_asr", "Raw(ASR)", "raw", "phones", architecture="asr"),
)}

# Where make-demo puts the synthetic out-of-domain lists, relative to the demo corpus folder.
DEMO_LISTS = {"ser": "ood/ser/ser.csv", "phones": "ood/phones/phones.csv"}


def network(name: str) -> Network:
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[name]


def run_dir(work, net: Network) -> Path:
    return Path(work) / "networks" / net.name


def _signal_cache(work, source_name: str, kind: str, fingerprint: str) -> SignalCache:
    return SignalCache(Path(work) / "signals" / source_name / kind, kind, fingerprint)


def corpus_clips(corpus: Corpus, work, kind: str, ids: list[str], *, progress: bool = True) -> ClipSet:
    """Clips of the corpus by File_ID (labels left at -1), with their cached raw or ZFF signals built first."""
    cache = _signal_cache(work, "exvo", kind, corpus.fingerprint)
    cache.build({fid: corpus.wav_path(fid) for fid in ids}, progress=progress)
    return ClipSet(list(ids), lambda i: cache.load(ids[i]), np.full(len(ids), -1, np.int32))


def exvo_training_sets(net: Network, corpus: Corpus, work, *, progress: bool = True):
    """(fit, cv, class names): the speaker-independent 90:10 split of Train with hard labels."""
    fit_ids, cv_ids = speaker_split(corpus, 0.1, seed=0)
    label_of = dict(zip(corpus.file_ids("Train"), hard_labels(corpus, "Train", net.task)))
    names = list(EMOTIONS) if net.task == "emotion" else list(COUNTRIES)
    sets = []
    for ids in (fit_ids, cv_ids):
        clips = corpus_clips(corpus, work, net.signal, ids, progress=progress)
        clips.labels = np.array([label_of[f] for f in ids], np.int32)
        sets.append(clips)
    return sets[0], sets[1], names


def read_list(path) -> pd.DataFrame:
    """A labelled list: `path,label` (+ `speaker`), or `path,start,end,label` (+ `speaker`) for segments."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labelled list not found (CSV with path,label[,speaker] or "
                                "path,start,end,label[,speaker])")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a 0-byte file: reported below as missing its columns, with its name
        table = pd.DataFrame()
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if ("start" in table.columns) != ("end" in table.columns):
        raise ValueError(f"{path}: a segment list needs both start and end (seconds)")
    if table.empty:
        raise ValueError(f"{path}: the list has no rows")
    if table["label"].isna().any():
        raise ValueError(f"{path}: empty label in row(s) {list(np.flatnonzero(table['label'].isna())[:10])}")
    return table


def list_training_sets(list_path, work, kind: str, *, progress: bool = True):
    """(fit, cv, class names) from a labelled list, split 90:10 by speaker (by row when there is no speaker)."""
    list_path = Path(list_path)
    table = read_list(list_path)
    fingerprint = hashlib.sha1(list_path.read_bytes()).hexdigest()[:16]
    cache = _signal_cache(work, f"list-{fingerprint}", kind, fingerprint)
    wavs = sorted(set(table["path"]))
    cache.build({w: list_path.parent / w for w in wavs}, progress=progress)
    names = sorted(str(v) for v in table["label"].unique())
    labels = table["label"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int32)
    segments = "start" in table.columns

    def load(i):
        row = table.iloc[i]
        x = cache.load(row["path"])
        if segments:
            x = x[int(row["start"] * SAMPLE_RATE):int(row["end"] * SAMPLE_RATE)]
        return x

    speakers = table["speaker"] if "speaker" in table.columns else pd.Series(range(len(table))).astype(str)
    held = split_by_speaker(speakers.to_numpy(), 0.1, seed=0)
    everything = ClipSet([str(p) for p in table["path"]], load, labels)
    return everything.subset(np.flatnonzero(~held)), everything.subset(np.flatnonzero(held)), names


def training_sets(net: Network, corpus: Corpus, work, lists: dict[str, Path], *, progress: bool = True):
    if net.source == "exvo":
        return exvo_training_sets(net, corpus, work, progress=progress)
    if net.source not in lists:
        raise FileNotFoundError(f"{net.label}: no labelled list for '{net.source}'; supply one "
                                f"(--list {net.source}=LIST.csv) or trained weights (--weights {net.name}=FILE)")
    return list_training_sets(lists[net.source], work, net.signal, progress=progress)


def train_network(net: Network, corpus: Corpus, work, profile: str, *, lists: dict[str, Path] | None = None,
                  weights: Path | None = None, seed: int = 0, progress: bool = True, verbose: int = 1):
    """Trains a network (or takes its trained weights from `weights`) and scores it; returns its run folder."""
    import keras

    import exvo_keras.models.frame_cnn  # noqa: F401  registers FrameCNN, so load_model can read `weights`
    from exvo_keras.metrics import uar
    from exvo_keras.training.frame_cnn import train_frame_cnn, utterance_decisions

    folder = run_dir(work, net)
    metrics_path = folder / "metrics.json"
    wanted = {"profile": profile, "seed": None if weights else seed, "weights": str(weights) if weights else None}
    if metrics_path.exists():
        done = json.loads(metrics_path.read_text())
        differ = [k for k, v in wanted.items() if done.get(k) != v]
        if differ:
            raise ValueError(f"{folder} holds {net.label} made with other settings ("
                             + ", ".join(f"{k}: {done.get(k)!r}, wanted {wanted[k]!r}" for k in differ)
                             + "); remove the folder or choose another --work")
        return folder
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: trained weights for {net.label} not found")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, folder / "best.keras")
        model = keras.saving.load_model(folder / "best.keras")
        cfg = FrameTraining.from_profile(profile)
        result = {"network": net.name, "label": net.label, **wanted, "hop_frames": cfg.hop_frames}
    else:
        fit, cv, names = training_sets(net, corpus, work, lists or {}, progress=progress)
        cfg = FrameTraining.from_profile(profile, architecture=net.architecture, seed=seed, class_names=names)
        model = train_frame_cnn(folder, fit, cv, cfg, verbose=verbose)
        cv_pred = utterance_decisions(model, cv, hop_frames=cfg.hop_frames)
        result = {"network": net.name, "label": net.label, **wanted, "hop_frames": cfg.hop_frames,
                  "classes": names, "class_weighting": cfg.class_weighting,
                  "cv_clip_accuracy": float(np.mean(cv_pred == cv.labels)), "cv_uar": float(uar(cv.labels, cv_pred))}
    if net.source == "exvo":
        result["Val"] = score_exvo_decisions(net, model, corpus, work, cfg.hop_frames, progress=progress)
    (folder / "metrics.json").write_text(json.dumps(result, indent=2))
    return folder


def score_exvo_decisions(net: Network, model, corpus: Corpus, work, hop_frames: int, *, progress: bool = True):
    """Table 1: UAR and WAR of the utterance decisions on Val (written to decisions_Val.csv)."""
    from exvo_keras.metrics import uar, war

    decisions = network_decisions(net, corpus, work, "Val", model=model, hop_frames=hop_frames, progress=progress)
    truth = decisions["true"].to_numpy()
    pred = decisions["predicted"].to_numpy()
    # One class for every clip: UAR is then 1 / classes, whatever the WAR; the table says so rather than
    # letting the WAR of a majority vote pass for learning.
    predicted = sorted(int(c) for c in np.unique(pred))
    return {"uar": uar(truth, pred), "war": war(truth, pred), "clips": len(decisions),
            "predicted_classes": predicted, "collapsed": len(predicted) == 1}


def network_decisions(net: Network, corpus: Corpus, work, split: str, *, model=None, hop_frames: int | None = None,
                      progress: bool = True) -> pd.DataFrame:
    """An ExVo network's utterance decisions on a split: File_ID, predicted class, true class (-1 if unknown).

    Read from `decisions_<split>.csv` in the network's folder when it was made from this corpus (its `corpus`
    column holds the fingerprint), else computed and written there.
    """
    from exvo_keras.runs import atomic_write_text
    from exvo_keras.training.frame_cnn import utterance_decisions

    if net.source != "exvo":
        raise ValueError(f"{net.label} is not trained on ExVo labels; it makes no ExVo decisions")
    folder = run_dir(work, net)
    path = folder / f"decisions_{split}.csv"
    if path.exists() and model is None:
        cached = pd.read_csv(path, dtype={"File_ID": str, "corpus": str})
        if "corpus" in cached.columns and (cached["corpus"] == corpus.fingerprint).all():
            return cached
    if model is None:
        import keras

        import exvo_keras.models.frame_cnn  # noqa: F401  registers FrameCNN for load_model

        best = folder / "best.keras"
        if not best.exists():
            raise FileNotFoundError(f"{best}: train {net.label} first (python -m exvo_keras train-network {net.name})")
        model = keras.saving.load_model(best)
    if hop_frames is None:
        hop_frames = json.loads((folder / "metrics.json").read_text())["hop_frames"]
    ids = corpus.file_ids(split)
    clips = corpus_clips(corpus, work, net.signal, ids, progress=progress)
    pred = utterance_decisions(model, clips, hop_frames=hop_frames)
    truth = hard_labels(corpus, split, net.task) if corpus.has_labels(split) else np.full(len(ids), -1)
    frame = pd.DataFrame({"File_ID": ids, "predicted": pred, "true": truth, "corpus": corpus.fingerprint})
    atomic_write_text(path, frame.to_csv(index=False))
    return frame


def extract_network(net: Network, corpus: Corpus, work, *, progress: bool = True) -> Path:
    """The network's utterance embeddings (mean and std of the pre-activation hidden layer) into a store."""
    import keras

    import exvo_keras.models.frame_cnn  # noqa: F401  registers FrameCNN, so load_model can read best.keras
    from exvo_keras.experiments.tables import feature_store
    from exvo_keras.store import build_store
    from exvo_keras.training.frame_cnn import embed_clips

    folder = run_dir(work, net)
    best = folder / "best.keras"
    if not best.exists():
        raise FileNotFoundError(f"{best}: train {net.label} first (python -m exvo_keras train-network {net.name})")
    model = keras.saving.load_model(best)
    embedder = model.embedding_model()
    metrics = json.loads((folder / "metrics.json").read_text())
    # the hop the network was trained and scored with, not whatever its profile means today
    hop_frames = metrics.get("hop_frames") or json.loads((folder / "config.json").read_text())["hop_frames"]
    settings = {"network": net.name, "weights_sha1": hashlib.sha1(best.read_bytes()).hexdigest()[:16],
                "hop_frames": hop_frames, "pooling": "mean+std", "signal": net.signal}
    ids = corpus.file_ids()
    clips = corpus_clips(corpus, work, net.signal, ids, progress=progress)
    position = {fid: i for i, fid in enumerate(ids)}

    def embed(batch_ids):
        sub = clips.subset([position[f] for f in batch_ids])
        return embed_clips(embedder, sub, hop_frames=hop_frames)

    return build_store(feature_store(work, net.name), ids, embed, extractor=f"frame_cnn:{net.name}",
                       settings=settings, corpus=corpus, batch_size=256, progress=progress, desc=net.label)
