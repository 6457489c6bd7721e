"""The stages that train, score and embed with the paper's frame CNNs (registered in `exvo_keras.registry`).

In-domain networks learn ExVo hard labels (argmax emotion: ER, country: CR) on the raw or ZFF waveform.
Out-of-domain networks learn from a labelled list: an utterance list `path,label[,speaker]` (speech emotion,
IEMOCAP-like) or a segment list `path,start,end,label[,speaker]` (phones, AMI-like); or their trained weights are
loaded from a `.keras` file. Paths in a list are relative to the list's folder.

They read and write a `Workspace`: cached waveforms, a network's run folder (`NetworkFolder`, see
`exvo_keras.training.frame_cnn`) and the store of its utterance embeddings.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from exvo_keras.data.corpus import Corpus, hard_labels, speaker_split, split_by_speaker
from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE
from exvo_keras.data.signals import ClipFiles, SignalCache
from exvo_keras.registry import Network
from exvo_keras.runs import atomic_write_text, read_json, short_sha1
from exvo_keras.training.frame_cnn import ClipSet, FrameTraining
from exvo_keras.workspace import NetworkFolder, Workspace


def load_frame_cnn(path: Path):
    """A saved FrameCNN; works in a fresh process (the import registers the class for Keras' loader)."""
    import keras

    import exvo_keras.models.frame_cnn  # noqa: F401  registers FrameCNN for load_model

    return keras.saving.load_model(path)


@dataclass(frozen=True)
class TrainedNetwork:
    """A trained frame CNN: its run folder, the Keras model and what its metrics.json records.

    Args:
        net: the registered network.
        folder: its run folder.
        model: the FrameCNN of `folder.best`.
        metrics: metrics.json (empty before the network is scored).
    """

    net: Network
    folder: NetworkFolder
    model: object
    metrics: dict

    @classmethod
    def load(cls, net: Network, ws: Workspace) -> "TrainedNetwork":
        folder = ws.network(net.name)
        if not folder.best.exists():
            raise FileNotFoundError(f"{folder.best}: train {net.label} first "
                                    f"(python -m exvo_keras train-network {net.name})")
        return cls(net, folder, load_frame_cnn(folder.best), read_json(folder.metrics) or {})

    @property
    def hop_frames(self) -> int:
        """The hop the network was trained and scored with, not whatever its profile means today."""
        hop = self.metrics.get("hop_frames") or (read_json(self.folder.config) or {}).get("hop_frames")
        if hop is None:
            raise ValueError(f"{self.folder.path}: no hop_frames in metrics.json or config.json")
        return int(hop)

    @property
    def weights_sha1(self) -> str:
        return short_sha1(self.folder.best)


def _signal_cache(ws: Workspace, source_name: str, kind: str, fingerprint: str) -> SignalCache:
    return SignalCache(ws.signals(source_name, kind), kind, fingerprint)


def corpus_clips(corpus: Corpus, ws: Workspace, kind: str, ids: list[str], *, progress: bool = True) -> ClipSet:
    """Clips of the corpus by File_ID (labels left at -1), with their cached raw or ZFF signals built first."""
    cache = _signal_cache(ws, "exvo", kind, corpus.fingerprint)
    cache.build({fid: corpus.wav_path(fid) for fid in ids}, progress=progress)
    return ClipSet(list(ids), lambda i: cache.load(ids[i]), np.full(len(ids), -1, np.int32),
                   ClipFiles(tuple(str(cache.path(f)) for f in ids)))


def exvo_training_sets(net: Network, corpus: Corpus, ws: Workspace, *, progress: bool = True):
    """(fit, cv, class names): the speaker-independent 90:10 split of Train with hard labels."""
    fit_ids, cv_ids = speaker_split(corpus, 0.1, seed=0)
    label_of = dict(zip(corpus.file_ids("Train"), hard_labels(corpus, "Train", net.task)))
    names = list(EMOTIONS) if net.task == "emotion" else list(COUNTRIES)
    sets = []
    for ids in (fit_ids, cv_ids):
        clips = corpus_clips(corpus, ws, net.signal, ids, progress=progress)
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


def list_training_sets(list_path, ws: Workspace, kind: str, *, progress: bool = True):
    """(fit, cv, class names) from a labelled list, split 90:10 by speaker (by row when there is no speaker)."""
    list_path = Path(list_path)
    table = read_list(list_path)
    fingerprint = short_sha1(list_path)
    cache = _signal_cache(ws, f"list-{fingerprint}", kind, fingerprint)
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
    files = ClipFiles(tuple(str(cache.path(p)) for p in table["path"]),
                      *((tuple(int(t * SAMPLE_RATE) for t in table[c]) for c in ("start", "end")) if segments
                        else ()))
    everything = ClipSet([str(p) for p in table["path"]], load, labels, files)
    return everything.subset(np.flatnonzero(~held)), everything.subset(np.flatnonzero(held)), names


def training_sets(net: Network, corpus: Corpus, ws: Workspace, lists: dict[str, Path], *, progress: bool = True):
    if net.source == "exvo":
        return exvo_training_sets(net, corpus, ws, progress=progress)
    if net.source not in lists:
        raise FileNotFoundError(f"{net.label}: no labelled list for '{net.source}'; supply one "
                                f"(--list {net.source}=LIST.csv) or trained weights (--weights {net.name}=FILE)")
    return list_training_sets(lists[net.source], ws, net.signal, progress=progress)


def train_network(net: Network, corpus: Corpus, ws: Workspace, profile: str, *,
                  lists: dict[str, Path] | None = None, weights: Path | None = None, seed: int = FrameTraining.seed,
                  progress: bool = True, verbose: int = 1) -> NetworkFolder:
    """Trains a network (or takes its trained weights from `weights`) and scores it; returns its run folder."""
    from exvo_keras.metrics import uar
    from exvo_keras.training.frame_cnn import train_frame_cnn, utterance_decisions

    folder = ws.network(net.name)
    import keras

    policy = keras.mixed_precision.global_policy().name
    # precision None for float32: networks scored before it was a choice match a float32 request
    wanted = {"profile": profile, "seed": None if weights else seed, "weights": str(weights) if weights else None,
              "precision": None if policy == "float32" or weights else policy,
              # trained weights bring their own; a network scored before this was recorded had Idiap's rule
              "lr_schedule": None if weights else FrameTraining.lr_schedule}
    done = read_json(folder.metrics)
    if done is not None:
        differ = [k for k, v in wanted.items() if done.get(k) != v]
        if differ:
            raise ValueError(f"{folder.path} holds {net.label} made with other settings ("
                             + ", ".join(f"{k}: {done.get(k)!r}, wanted {wanted[k]!r}" for k in differ)
                             + "); remove the folder or choose another --work")
        return folder
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: trained weights for {net.label} not found")
        folder.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, folder.best)
        model = load_frame_cnn(folder.best)
        cfg = FrameTraining.from_profile(profile)
        result = {"network": net.name, "label": net.label, **wanted, "hop_frames": cfg.hop_frames}
    else:
        fit, cv, names = training_sets(net, corpus, ws, lists or {}, progress=progress)
        cfg = FrameTraining.from_profile(profile, architecture=net.architecture, seed=seed, class_names=names)
        model = train_frame_cnn(folder, fit, cv, cfg, verbose=verbose)
        cv_pred = utterance_decisions(model, cv, hop_frames=cfg.hop_frames)
        result = {"network": net.name, "label": net.label, **wanted, "hop_frames": cfg.hop_frames,
                  "classes": names, "class_weighting": cfg.class_weighting,
                  "cv_clip_accuracy": float(np.mean(cv_pred == cv.labels)), "cv_uar": float(uar(cv.labels, cv_pred))}
    if net.source == "exvo":
        trained = TrainedNetwork(net, folder, model, result)
        result["Val"] = score_exvo_decisions(trained, corpus, ws, progress=progress)
    folder.metrics.write_text(json.dumps(result, indent=2))
    return folder


def score_exvo_decisions(trained: TrainedNetwork, corpus: Corpus, ws: Workspace, *, progress: bool = True):
    """Table 1: UAR and WAR of the utterance decisions on Val (written to decisions_Val.csv)."""
    from exvo_keras.metrics import uar, war

    decisions = network_decisions(trained.net, corpus, ws, "Val", trained=trained, progress=progress)
    truth = decisions["true"].to_numpy()
    pred = decisions["predicted"].to_numpy()
    # One class for every clip: UAR is then 1 / classes, whatever the WAR; the table says so rather than
    # letting the WAR of a majority vote pass for learning.
    predicted = sorted(int(c) for c in np.unique(pred))
    return {"uar": uar(truth, pred), "war": war(truth, pred), "clips": len(decisions),
            "predicted_classes": predicted, "collapsed": len(predicted) == 1}


def network_decisions(net: Network, corpus: Corpus, ws: Workspace, split: str, *,
                      trained: TrainedNetwork | None = None, progress: bool = True) -> pd.DataFrame:
    """An ExVo network's utterance decisions on a split: File_ID, predicted class, true class (-1 if unknown).

    Read from `decisions_<split>.csv` in the network's folder when it was made from this corpus (its `corpus`
    column holds the fingerprint), else computed and written there. `trained`: the network just trained, whose
    decisions are computed afresh (by default the folder's network, loaded only when the file will not do).
    """
    from exvo_keras.training.frame_cnn import utterance_decisions

    if net.source != "exvo":
        raise ValueError(f"{net.label} is not trained on ExVo labels; it makes no ExVo decisions")
    path = ws.network(net.name).decisions(split)
    if path.exists() and trained is None:
        cached = pd.read_csv(path, dtype={"File_ID": str, "corpus": str})
        if "corpus" in cached.columns and (cached["corpus"] == corpus.fingerprint).all():
            return cached
    if trained is None:
        trained = TrainedNetwork.load(net, ws)
    ids = corpus.file_ids(split)
    clips = corpus_clips(corpus, ws, net.signal, ids, progress=progress)
    pred = utterance_decisions(trained.model, clips, hop_frames=trained.hop_frames)
    truth = hard_labels(corpus, split, net.task) if corpus.has_labels(split) else np.full(len(ids), -1)
    frame = pd.DataFrame({"File_ID": ids, "predicted": pred, "true": truth, "corpus": corpus.fingerprint})
    atomic_write_text(path, frame.to_csv(index=False))
    return frame


def extract_network(net: Network, corpus: Corpus, ws: Workspace, *, progress: bool = True) -> Path:
    """The network's utterance embeddings (mean and std of the pre-activation hidden layer) into a store."""
    from exvo_keras.store import build_store
    from exvo_keras.training.frame_cnn import embed_clips

    trained = TrainedNetwork.load(net, ws)
    embedder = trained.model.embedding_model()
    hop_frames = trained.hop_frames
    settings = {"network": net.name, "weights_sha1": trained.weights_sha1,
                "hop_frames": hop_frames, "pooling": "mean+std", "signal": net.signal}
    ids = corpus.file_ids()
    clips = corpus_clips(corpus, ws, net.signal, ids, progress=progress)
    position = {fid: i for i, fid in enumerate(ids)}

    def embed(batch_ids):
        sub = clips.subset([position[f] for f in batch_ids])
        return embed_clips(embedder, sub, hop_frames=hop_frames)

    return build_store(ws.store(net.name), ids, embed, extractor=f"frame_cnn:{net.name}",
                       settings=settings, corpus=corpus, batch_size=256, progress=progress, desc=net.label)
