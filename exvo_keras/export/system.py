"""From a registered system and its trained runs to an export plan and its metadata.

A system's sources (`exvo_keras.experiments.tables.system_sources`) are resolved against the work folder: each
head source exports its best seed on Val (`exvo_keras.training.mtl.best_seed`), each feature set the encoder
its store was made with, checked against what the store records (frame CNN: the sha1 of `best.keras` and the
hop; SSL: the full extraction settings, weights digest included), so the graph computes the features the head
was trained on and not merely similar ones.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE

if TYPE_CHECKING:
    from exvo_keras.export.module import ExportPlan

# Feature sets that no TensorFlow graph can compute, and why.
NOT_EXPORTABLE = {
    "compare": "ComParE functionals are computed by openSMILE, a C++ feature extractor outside TensorFlow; no "
               "TensorFlow graph can reproduce them",
    "deepspectrum": "DeepSpectrum export is not implemented: its spectrogram image (mel, dB, matplotlib's viridis "
                    "colour table, resize) and the 528 MB VGG16 would have to be rebuilt in the graph",
}


class ExportError(ValueError):
    """A system that cannot be exported, or inputs that do not match what its heads were trained on."""


def feature_kind(name: str) -> str:
    """"frame_cnn" or "ssl"; ExportError for a feature set no graph can compute."""
    from exvo_keras.experiments.networks import NETWORKS
    from exvo_keras.features.ssl import FEATURE_SETS

    if name in NETWORKS:
        return "frame_cnn"
    if name in FEATURE_SETS:
        return "ssl"
    if name in NOT_EXPORTABLE:
        raise ExportError(f"feature set {name!r} is not exportable: {NOT_EXPORTABLE[name]}")
    raise ExportError(f"feature set {name!r} has no exporter (known: frame CNNs and SSL encoders)")


def _source_features(source: str) -> list[str]:
    from exvo_keras.experiments.tables import NETWORK_SOURCE, row_by_key

    if source.startswith(NETWORK_SOURCE):
        return []
    return list(row_by_key(source).features)


def check_exportable(key: str, work) -> dict[str, str]:
    """The system's {task: source}; ExportError (saying why) if any source needs a feature no graph computes."""
    from exvo_keras.experiments.tables import system_sources

    sources = system_sources(key, work)
    for task, source in sources.items():
        for feature in _source_features(source):
            try:
                feature_kind(feature)
            except ExportError as exc:
                raise ExportError(f"system {key} cannot be exported ({task} comes from {source}): {exc}") from None
    return sources


def best_exportable_system(work, split: str = "Val") -> str:
    """The registered system with the best mean S_MTL on `split` (over its seeds, from its run folder's
    summary.json) among those that have run and can be exported (no ComParE or DeepSpectrum features).

    Raises FileNotFoundError when no exportable system has been trained.
    """
    from exvo_keras.experiments.tables import mean_scores, systems

    scores = mean_scores(work, systems().values(), split, "s_mtl")
    best = None
    for key in sorted(scores, key=scores.get, reverse=True):
        try:
            check_exportable(key, work)
        except (ExportError, FileNotFoundError):
            continue
        best = key
        break
    if best is None:
        raise FileNotFoundError(f"{Path(work) / 'runs'}: no exportable system has been scored on {split}; train "
                                "one first (python -m exvo_keras train ...)")
    return best


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def _read_json(path: Path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def _frame_network(name: str, work, store_settings: dict | None):
    """The trained frame CNN `name` and its metadata; with `store_settings`, checked against the store."""
    import keras

    import exvo_keras.models.frame_cnn  # noqa: F401  registers FrameCNN for load_model
    from exvo_keras.experiments.networks import network, run_dir as network_dir
    from exvo_keras.export.module import FrameNetwork

    net = network(name)
    folder = network_dir(work, net)
    best = folder / "best.keras"
    if not best.exists():
        raise FileNotFoundError(f"{best}: train {net.label} first (python -m exvo_keras train-network {name})")
    metrics = _read_json(folder / "metrics.json") or {}
    config = _read_json(folder / "config.json") or {}
    digest = _sha1(best)
    hop = metrics.get("hop_frames") or config.get("hop_frames")
    if store_settings is not None:
        if store_settings.get("weights_sha1") != digest:
            raise ExportError(f"{best} (sha1 {digest}) is not the network the {name} store was made with (sha1 "
                              f"{store_settings.get('weights_sha1')}); re-extract it (python -m exvo_keras "
                              f"extract-network {name}) and retrain the heads on it")
        hop = store_settings["hop_frames"]
        if store_settings.get("signal", net.signal) != net.signal:
            raise ExportError(f"the {name} store was made from the {store_settings['signal']} signal, the network "
                              f"reads {net.signal}")
    if hop is None:
        raise ExportError(f"{folder}: no hop_frames in metrics.json or config.json")
    model = keras.saving.load_model(best)
    info = {"kind": "frame_cnn", "network": name, "label": net.label, "signal": net.signal, "hop_frames": int(hop),
            "profile": metrics.get("profile"), "weights_sha1": digest, "architecture": model.architecture}
    if "Val" in metrics:
        info["Val"] = metrics["Val"]
    if metrics.get("classes"):
        info["classes"] = metrics["classes"]
    return FrameNetwork(name, model, net.signal, int(hop)), info


def _ssl_feature(name: str, settings: dict, ssl_dir):
    """The SSL encoder a store was made with, rebuilt and checked against the store's settings."""
    from exvo_keras.export.module import SSLFeature
    from exvo_keras.features.ssl import checkpoint_for, demo_encoder, load_encoder, ssl_settings

    weights = str(settings.get("weights", ""))
    if weights.startswith("random-init seed "):
        encoder = demo_encoder(name, int(weights.rsplit(" ", 1)[1]))
        where = f"demo encoder ({weights})"
        ours = ssl_settings(encoder, layer=settings["layer"], normalize=settings.get("do_normalize"))
    elif weights.startswith("sha1 "):
        if ssl_dir is None:
            raise ExportError(f"the {name} store was made from a checkpoint ({weights}): pass --ssl-dir DIR with "
                              f"the same checkpoint")
        folder = checkpoint_for(name, ssl_dir)
        ours = ssl_settings(folder, layer=settings["layer"], normalize=settings.get("do_normalize"))
        encoder = None
        where = str(folder)
    else:
        raise ExportError(f"the {name} store was made from an encoder object ({weights!r}) that cannot be rebuilt "
                          "from a checkpoint or a demo seed; extract it from a checkpoint folder to export it")
    stored = {k: v for k, v in settings.items() if k != "shard"}
    differ = sorted(k for k in set(ours) | set(stored) if ours.get(k) != stored.get(k))
    if differ:
        raise ExportError(f"the {name} encoder at hand ({where}) is not the one its store was made with: "
                          + ", ".join(f"{k}: store {stored.get(k)!r}, encoder {ours.get(k)!r}" for k in differ))
    if encoder is None:
        encoder = load_encoder(folder)
    info = {"kind": "ssl", "encoder": where, "settings": stored}
    return SSLFeature(name, encoder, settings["layer"], bool(settings["do_normalize"])), info


def _check_trained_stores(folder: Path, recorded: list, row, work) -> None:
    """The stores a head's config.json records (paths, or `name@digest` identities) are the row's stores, and,
    where a digest is recorded, still the same stores (not rebuilt since the head was trained)."""
    from exvo_keras import store as store_module
    from exvo_keras.experiments.tables import feature_store

    names = [Path(str(s).split("@", 1)[0]).name for s in recorded]
    wanted = [f"{f}.h5" for f in row.features]
    if recorded and names != wanted:
        raise ExportError(f"{folder} was trained on stores {names}, the registry says {wanted}")
    identity = getattr(store_module, "store_identity", None)
    for entry, feature in zip(recorded, row.features):
        if "@" in str(entry) and identity is not None:
            now = identity(feature_store(work, feature))
            if now != entry:
                raise ExportError(f"{feature_store(work, feature)} was rebuilt ({now}) after {folder} was trained "
                                  f"on it ({entry}); retrain the head (python -m exvo_keras train --rows {row.key})")


def resolve(key: str, work, *, ssl_dir=None) -> tuple[ExportPlan, dict]:
    """The export plan of registered system `key` and the metadata describing it (see `export_system`)."""
    from exvo_keras.experiments.tables import NETWORK_SOURCE, feature_store, row_by_key, run_dir
    from exvo_keras.export.module import ExportPlan, HeadSource
    from exvo_keras.store import check_store
    from exvo_keras.training.mtl import best_seed, load_head, seed_metrics

    work = Path(work)
    row = row_by_key(key)
    sources = check_exportable(key, work)
    plan = ExportPlan(tasks=dict(sources))
    components, features, corpora = {}, {}, {}

    def feature(name):
        if name in features:
            return
        kind = feature_kind(name)
        path = feature_store(work, name)
        try:
            attrs = check_store(path)
        except ValueError as exc:
            raise FileNotFoundError(str(exc)) from None
        corpora[str(path)] = (attrs.get("corpus"), attrs.get("corpus_root"))
        if kind == "frame_cnn":
            net, info = _frame_network(name, work, attrs["settings"])
            plan.networks[name] = net
        else:
            plan.ssl[name], info = _ssl_feature(name, attrs["settings"], ssl_dir)
        info["store"] = str(path)
        features[name] = info

    for source in dict.fromkeys(sources.values()):
        if source.startswith(NETWORK_SOURCE):
            name = source[len(NETWORK_SOURCE):]
            net, info = _frame_network(name, work, None)
            classes = info.get("classes")
            if classes is not None and list(classes) != list(COUNTRIES):
                raise ExportError(f"{source} decides {classes}, not the countries {list(COUNTRIES)}")
            if name in plan.networks and plan.networks[name].hop_frames != net.hop_frames:
                raise ExportError(f"{name} is used with two hops ({plan.networks[name].hop_frames} and "
                                  f"{net.hop_frames})")
            plan.networks.setdefault(name, net)
            plan.network_sources[source] = name
            components[source] = {"network": info}
            continue
        source_row = row_by_key(source)
        folder = run_dir(work, source_row)
        seed = best_seed(folder, "Val")
        head = load_head(folder / f"seed_{seed}" / "model.keras")
        config = _read_json(folder / "config.json") or {}
        _check_trained_stores(folder, config.get("stores", []), source_row, work)
        if config.get("corpus"):
            corpora[str(folder)] = (config["corpus"], None)
        for name in source_row.features:
            feature(name)
        dims = sum(int(check_store(feature_store(work, f))["dims"]) for f in source_row.features)
        if int(head.input_dim) != dims:
            raise ExportError(f"{folder}/seed_{seed}: head takes {head.input_dim} features, the stores give {dims}")
        plan.heads[source] = HeadSource(source, head, tuple(source_row.features))
        metrics = seed_metrics(folder)
        components[source] = {
            "features": list(source_row.features), "head": source_row.head, "seed": seed,
            "seed_choice": "best Val S_MTL among the finished seeds", "seeds_available": sorted(metrics),
            "Val_of_seed": metrics[seed].get("Val"),
            "Val_over_seeds": (_read_json(folder / "summary.json") or {}).get("Val"),
            "model_sha1": _sha1(folder / f"seed_{seed}" / "model.keras"),
        }
    fingerprints = {fp for fp, _ in corpora.values() if fp}
    if len(fingerprints) > 1:
        raise ExportError("the system's stores and runs come from different corpora: "
                          + "; ".join(f"{where}: {fp}" for where, (fp, _) in corpora.items()))
    roots = {root for _, root in corpora.values() if root}
    own_summary = _read_json(run_dir(work, row) / "summary.json") or {}
    metadata = {
        "system": key, "name": row.system, "config": row.config, "table": row.table,
        "sources": dict(sources), "components": components, "features": features,
        "corpus": {"fingerprint": next(iter(fingerprints), None), "root": next(iter(roots), None)},
        "frame_cnn_profiles": {**{n: f.get("profile") for n, f in features.items() if f["kind"] == "frame_cnn"},
                               **{c[len(NETWORK_SOURCE):]: v["network"].get("profile")
                                  for c, v in components.items() if c.startswith(NETWORK_SOURCE)}},
        "val_scores": {"system_over_seeds": own_summary.get("Val")},
    }
    return plan, metadata


def exported_val_scores(metadata: dict, work, corpus) -> dict | None:
    """Val scores of exactly the exported combination (each task from its source's exported seed), from the
    run folders' Val predictions; None when one of them is missing."""
    import pandas as pd

    from exvo_keras.experiments.networks import network, run_dir as network_dir
    from exvo_keras.experiments.tables import NETWORK_SOURCE, row_by_key, run_dir
    from exvo_keras.metrics import score_all

    ids = corpus.file_ids("Val")
    frames = {}
    for source, component in metadata["components"].items():
        if source.startswith(NETWORK_SOURCE):
            path = network_dir(work, network(source[len(NETWORK_SOURCE):])) / "decisions_Val.csv"
            column = "predicted"
        else:
            path = run_dir(work, row_by_key(source)) / f"seed_{component['seed']}" / "predictions_Val.csv"
            column = None
        if not path.exists():
            return None
        frame = pd.read_csv(path, dtype={"File_ID": str}).set_index("File_ID")
        if column:
            frame = frame.rename(columns={column: "Country"})
        frames[source] = frame.loc[ids]
    tasks = metadata["sources"]
    labels = corpus.labels("Val")
    scores = score_all(labels["emotion"], frames[tasks["emotion"]][list(EMOTIONS)].to_numpy(),
                       labels["age"], frames[tasks["age"]]["Age"].to_numpy(),
                       labels["country"], frames[tasks["country"]]["Country"].to_numpy())
    return {k: float(v) for k, v in scores.items()}


def _versions() -> dict:
    import platform

    import keras
    import tensorflow as tf

    import exvo_keras

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "exvo_keras": exvo_keras.__version__, "python": platform.python_version()}


def inputs_digest(metadata: dict) -> str:
    """Identifies what an export was made from (weights, stores' settings, seeds), to skip an identical rerun."""
    keep = {k: metadata[k] for k in ("system", "sources", "components", "features", "corpus")}
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def describe(metadata: dict) -> dict:
    """Adds what does not depend on the work folder: labels, signatures, signal notes and versions."""
    from exvo_keras.export import RESAMPLER_NOTE, SIGNATURES, ZFF_NOTE
    from exvo_keras.export.module import WAVEFORM_ENDPOINT

    uses_zff = any(f.get("signal") == "zff" for f in metadata["features"].values()) or any(
        c.get("network", {}).get("signal") == "zff" for c in metadata["components"].values())
    return {
        **metadata,
        "labels": {"emotions": list(EMOTIONS), "countries": list(COUNTRIES)},
        "sample_rate": SAMPLE_RATE,
        "signatures": SIGNATURES, "default_signature": WAVEFORM_ENDPOINT,
        "zff": ZFF_NOTE if uses_zff else None,
        "resampling": RESAMPLER_NOTE,
        "versions": _versions(),
        "exported_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
