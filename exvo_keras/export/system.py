"""From a registered system and its trained runs to an export plan and its metadata.

A system's sources (`exvo_keras.experiments.tables.system_sources`) are resolved against the workspace: each
head source exports its best seed on Val (`exvo_keras.training.mtl.best_seed`), each feature set the encoder
its store was made with, checked against what the store records (frame CNN: the sha1 of `best.keras` and the
hop; SSL: the full extraction settings, weights digest included), so the graph computes the features the head
was trained on and not merely similar ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments.networks import TrainedNetwork
from exvo_keras.experiments.tables import mean_scores, system_sources
from exvo_keras.registry import (NETWORKS, SSL_FEATURE_SETS, WEIGHTED, NetworkSource, Source, SystemSource, row_by_key,
                                 systems)
from exvo_keras.runs import read_json, short_sha1
from exvo_keras.workspace import RunFolder, Workspace

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
    if name in NETWORKS:
        return "frame_cnn"
    if name in SSL_FEATURE_SETS:
        return "ssl"
    if name in NOT_EXPORTABLE:
        raise ExportError(f"feature set {name!r} is not exportable: {NOT_EXPORTABLE[name]}")
    raise ExportError(f"feature set {name!r} has no exporter (known: frame CNNs and SSL encoders)")


def check_exportable(key: str, ws: Workspace) -> dict[str, Source]:
    """The system's {task: source}; ExportError (saying why) if any source needs a feature no graph computes."""
    sources = system_sources(key, ws)
    for task, source in sources.items():
        features = row_by_key(source.key).features if isinstance(source, SystemSource) else ()
        for feature in features:
            try:
                feature_kind(feature)
            except ExportError as exc:
                raise ExportError(f"system {key} cannot be exported ({task} comes from {source}): {exc}") from None
    return sources


def best_exportable_system(ws: Workspace, split: str = "Val") -> str:
    """The registered system with the best mean S_MTL on `split` (over its seeds, from its run folder's
    summary.json) among those that have run and can be exported (no ComParE or DeepSpectrum features).

    Raises FileNotFoundError when no exportable system has been trained.
    """
    scores = mean_scores(ws, systems().values(), split, "s_mtl")
    for key in sorted(scores, key=scores.get, reverse=True):
        try:
            check_exportable(key, ws)
        except (ExportError, FileNotFoundError):
            continue
        return key
    raise FileNotFoundError(f"{ws.runs}: no exportable system has been scored on {split}; train one first "
                            "(python -m exvo_keras train ...)")


def _frame_network(trained: TrainedNetwork, store_settings: dict | None):
    """The trained frame CNN and its metadata; with `store_settings`, checked against the store made with it."""
    from exvo_keras.export.module import FrameNetwork

    net, folder, metrics = trained.net, trained.folder, trained.metrics
    digest = trained.weights_sha1
    if store_settings is None:
        hop = trained.hop_frames
    else:
        if store_settings.get("weights_sha1") != digest:
            raise ExportError(f"{folder.best} (sha1 {digest}) is not the network the {net.name} store was made with "
                              f"(sha1 {store_settings.get('weights_sha1')}); re-extract it (python -m exvo_keras "
                              f"extract-network {net.name}) and retrain the heads on it")
        hop = int(store_settings["hop_frames"])
        if store_settings.get("signal", net.signal) != net.signal:
            raise ExportError(f"the {net.name} store was made from the {store_settings['signal']} signal, the "
                              f"network reads {net.signal}")
    info = {"kind": "frame_cnn", "network": net.name, "label": net.label, "signal": net.signal, "hop_frames": hop,
            "profile": metrics.get("profile"), "weights_sha1": digest, "architecture": trained.model.architecture}
    if "Val" in metrics:
        info["Val"] = metrics["Val"]
    if metrics.get("classes"):
        info["classes"] = metrics["classes"]
    return FrameNetwork(net.name, trained.model, net.signal, hop), info


def _ssl_feature(name: str, settings: dict, ssl_dir):
    """The SSL encoder a store was made with, rebuilt from its provenance and checked against the store's
    settings."""
    from exvo_keras.export.module import SSLFeature
    from exvo_keras.features.ssl import ssl_settings
    from exvo_keras.models.ssl import Provenance, checkpoint_for, demo_encoder, load_pretrained

    try:
        provenance = Provenance.from_attrs(settings)
    except ValueError:
        provenance = None
    normalize = settings.get("do_normalize")
    all_layers = "layers" in settings  # whether the store keeps every layer too; the graph pools its own layer
    folder = None
    if provenance is not None and provenance.kind == "demo":
        encoder = demo_encoder(name, provenance.seed, do_normalize=provenance.do_normalize)
        where = provenance.where
        ours = ssl_settings(encoder, layer=settings["layer"], normalize=normalize, all_layers=all_layers)
    elif provenance is not None and provenance.kind == "checkpoint":
        if ssl_dir is None:
            raise ExportError(f"the {name} store was made from a checkpoint ({provenance.weights}): pass --ssl-dir "
                              f"DIR with the same checkpoint")
        folder = checkpoint_for(name, ssl_dir)
        ours = ssl_settings(folder, layer=settings["layer"], normalize=normalize, all_layers=all_layers)
        encoder = None
        where = str(folder)
    else:
        raise ExportError(f"the {name} store was made from an encoder object ({settings.get('weights')!r}) that "
                          "cannot be rebuilt from a checkpoint or a demo seed; extract it from a checkpoint folder "
                          "to export it")
    stored = {k: v for k, v in settings.items() if k != "shard"}
    differ = sorted(k for k in set(ours) | set(stored) if ours.get(k) != stored.get(k))
    if differ:
        raise ExportError(f"the {name} encoder at hand ({where}) is not the one its store was made with: "
                          + ", ".join(f"{k}: store {stored.get(k)!r}, encoder {ours.get(k)!r}" for k in differ))
    if encoder is None:
        encoder = load_pretrained(folder, do_normalize=provenance.do_normalize)
    info = {"kind": "ssl", "encoder": where, "settings": stored}
    return SSLFeature(name, encoder, settings["layer"]), info


def _check_trained_stores(run: RunFolder, recorded: list, row, ws: Workspace) -> None:
    """The stores a head's config.json records (paths, or `name@digest` identities) are the row's stores, and,
    where a digest is recorded, still the same stores (not rebuilt since the head was trained)."""
    from exvo_keras.store import store_identity

    names = [Path(str(s).split("@", 1)[0]).name for s in recorded]
    wanted = [path.name for path in ws.stores(row.features)]
    if recorded and names != wanted:
        raise ExportError(f"{run.path} was trained on stores {names}, the registry says {wanted}")
    for entry, path in zip(recorded, ws.stores(row.features)):
        if "@" in str(entry):
            now = store_identity(path)
            if now != entry:
                raise ExportError(f"{path} was rebuilt ({now}) after {run.path} was trained on it ({entry}); "
                                  f"retrain the head (python -m exvo_keras train --rows {row.key})")


@dataclass
class ResolvedSystem:
    """A registered system resolved against a workspace: the plan of its graph, the metadata describing it and,
    for each source, the Val predictions of exactly what is exported (its seed; a network's decisions)."""

    plan: ExportPlan
    metadata: dict
    # source -> (CSV of its Val predictions, the column there that holds the country)
    val_predictions: dict[str, tuple[Path, str]] = field(default_factory=dict)


def resolve(key: str, ws: Workspace, *, ssl_dir=None) -> ResolvedSystem:
    """Registered system `key` resolved for export (see `export_system`)."""
    from exvo_keras.export.module import ExportPlan, HeadSource
    from exvo_keras.store import check_store
    from exvo_keras.training.mtl import best_seed, load_head, seed_metrics

    row = row_by_key(key)
    sources = check_exportable(key, ws)
    plan = ExportPlan(tasks={t: str(s) for t, s in sources.items()})
    resolved = ResolvedSystem(plan, {})
    components, features, corpora, store_attrs, profiles = {}, {}, {}, {}, {}

    def feature(name):
        if name in features:
            return
        kind = feature_kind(name)
        path = ws.store(name)
        try:
            store_attrs[name] = attrs = check_store(path)
        except ValueError as exc:
            raise FileNotFoundError(str(exc)) from None
        corpora[str(path)] = (attrs.get("corpus"), attrs.get("corpus_root"))
        if kind == "frame_cnn":
            net, info = _frame_network(TrainedNetwork.load(NETWORKS[name], ws), attrs["settings"])
            plan.networks[name] = net
            profiles[name] = info.get("profile")
        else:
            plan.ssl[name], info = _ssl_feature(name, attrs["settings"], ssl_dir)
        info["store"] = str(path)
        features[name] = info

    for source in dict.fromkeys(sources.values()):
        if isinstance(source, NetworkSource):
            name = source.network
            net, info = _frame_network(TrainedNetwork.load(NETWORKS[name], ws), None)
            classes = info.get("classes")
            if classes is not None and list(classes) != list(COUNTRIES):
                raise ExportError(f"{source} decides {classes}, not the countries {list(COUNTRIES)}")
            if name in plan.networks and plan.networks[name].hop_frames != net.hop_frames:
                raise ExportError(f"{name} is used with two hops ({plan.networks[name].hop_frames} and "
                                  f"{net.hop_frames})")
            plan.networks.setdefault(name, net)
            plan.network_sources[str(source)] = name
            components[str(source)] = {"network": info}
            profiles[name] = info.get("profile")
            resolved.val_predictions[str(source)] = (ws.network(name).decisions("Val"), "predicted")
            continue
        source_row = row_by_key(source.key)
        folder = ws.run(source.key)
        seed = best_seed(folder, "Val")
        seed_dir = folder.seed(seed)
        head = load_head(seed_dir.model)
        config = read_json(folder.config) or {}
        _check_trained_stores(folder, config.get("stores", []), source_row, ws)
        if config.get("corpus"):
            corpora[str(folder.path)] = (config["corpus"], None)
        for name in source_row.features:
            feature(name)
        dims = sum(int(store_attrs[f]["dims"]) for f in source_row.features)
        if int(head.input_dim) != dims:
            raise ExportError(f"{seed_dir.path}: head takes {head.input_dim} features, the stores give {dims}")
        if source_row.layer == WEIGHTED:
            count = 1 + int(store_attrs[source_row.features[0]]["settings"]["num_hidden_layers"])
            if int(head.input_layers) != count:
                raise ExportError(f"{seed_dir.path}: head weights {head.input_layers} layers, the store keeps {count}")
        plan.heads[str(source)] = HeadSource(str(source), head, tuple(source_row.features), source_row.layer)
        metrics = seed_metrics(folder)
        components[str(source)] = {
            "features": list(source_row.features), "head": source_row.head, "seed": seed,
            **({"layer": source_row.layer} if source_row.layer is not None else {}),
            "seed_choice": "best Val S_MTL among the finished seeds", "seeds_available": sorted(metrics),
            "Val_of_seed": metrics[seed].get("Val"),
            "Val_over_seeds": (read_json(folder.summary) or {}).get("Val"),
            "model_sha1": short_sha1(seed_dir.model),
        }
        resolved.val_predictions[str(source)] = (seed_dir.predictions("Val"), "Country")
    fingerprints = {fp for fp, _ in corpora.values() if fp}
    if len(fingerprints) > 1:
        raise ExportError("the system's stores and runs come from different corpora: "
                          + "; ".join(f"{where}: {fp}" for where, (fp, _) in corpora.items()))
    roots = {root for _, root in corpora.values() if root}
    resolved.metadata = {
        "system": key, "name": row.system, "config": row.config, "table": row.table,
        "sources": dict(plan.tasks), "components": components, "features": features,
        "corpus": {"fingerprint": next(iter(fingerprints), None), "root": next(iter(roots), None)},
        "frame_cnn_profiles": profiles,
        "val_scores": {"system_over_seeds": (read_json(ws.run(key).summary) or {}).get("Val")},
    }
    return resolved


def exported_val_scores(resolved: ResolvedSystem, corpus) -> dict | None:
    """Val scores of exactly the exported combination (each task from its source's exported seed), from the
    run folders' Val predictions; None when one of them is missing."""
    import pandas as pd

    from exvo_keras.metrics import score_all

    ids = corpus.file_ids("Val")
    frames = {}
    for source, (path, country) in resolved.val_predictions.items():
        if not path.exists():
            return None
        frame = pd.read_csv(path, dtype={"File_ID": str}).set_index("File_ID")
        frames[source] = frame.rename(columns={country: "Country"}).loc[ids]
    tasks = resolved.plan.tasks
    labels = corpus.labels("Val")
    scores = score_all(labels["emotion"], frames[tasks["emotion"]][list(EMOTIONS)].to_numpy(),
                       labels["age"], frames[tasks["age"]]["Age"].to_numpy(),
                       labels["country"], frames[tasks["country"]]["Country"].to_numpy())
    return {k: float(v) for k, v in scores.items()}


def inputs_digest(metadata: dict) -> str:
    """Identifies what an export was made from (weights, stores' settings, seeds), to skip an identical rerun."""
    keep = {k: metadata[k] for k in ("system", "sources", "components", "features", "corpus")}
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


