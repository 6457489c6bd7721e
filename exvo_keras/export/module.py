"""One SavedModel from encoders and heads: the serving functions and how they are written.

An `ExportPlan` names the pieces (frame CNNs, SSL encoders, multi-task heads, and which source answers each
task); `write_saved_model` traces two serving functions over them and writes a SavedModel through Keras'
`ExportArchive`, which saves the variables and the traced graphs only, so loading needs TensorFlow alone.
The plan is independent of any work folder: `exvo_keras.export.system` builds it from trained runs, the
benchmark from freshly initialised models.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE
from exvo_keras.export import graph
from exvo_keras.signal.framing import batch_windows
from exvo_keras.signal.pooling import segment_mean_std
from exvo_keras.signal.zff import zff_batch

TASKS = ("emotion", "age", "country")
WAVEFORM_ENDPOINT = "serve_waveform"
BYTES_ENDPOINT = "serve_wav_bytes"
# The 250 ms windows of a frame CNN go through it this many at a time (memory: about 2 MB of activations each
# for the ExVo CNNs, 8 MB for Raw(ASR)).
WINDOW_CHUNK = 1024


@dataclass
class FrameNetwork:
    """A frame CNN in the graph: its utterance embedding (mean+std of the pre-ReLU hidden layer) and/or its
    utterance posteriors (mean of the window posteriors)."""

    name: str
    model: object  # FrameCNN
    signal: str  # "raw" or "zff"
    hop_frames: int


@dataclass
class SSLFeature:
    """An SSL encoder in the graph: mean+std over valid frames of one hidden layer, as the store was made (the
    encoder normalises its input itself when its do_normalize says so)."""

    name: str
    encoder: object  # SSLEncoder
    layer: object  # "last" or an index into hidden_states


@dataclass
class HeadSource:
    """A trained multi-task head on the concatenation of `features` (early fusion, in this order).

    `layer` is the head's `HeadTraining.layer`: what its SSL features are (None: the layer their stores were
    extracted for; an int: that hidden state; "weighted": every hidden state, `[batch, layers, dims]`)."""

    key: str
    head: object  # MultiTaskHead
    features: tuple[str, ...]
    layer: object = None

    def inputs(self, plan) -> list[tuple[str, object]]:
        """(feature, layer) of each input, in order: the layer choice applies to the SSL features only."""
        return [(f, self.layer if f in plan.ssl else None) for f in self.features]


@dataclass
class ExportPlan:
    """Everything one exported system computes.

    Args:
        networks: frame CNNs by name (used as features and/or as network sources).
        ssl: SSL feature sets by name.
        heads: head sources by key.
        network_sources: "network:<name>" -> network name (a CNN's own utterance decision; country only).
        tasks: {"emotion": source key, "age": ..., "country": ...}; a key of `heads` or of `network_sources`.
    """

    networks: dict[str, FrameNetwork] = field(default_factory=dict)
    ssl: dict[str, SSLFeature] = field(default_factory=dict)
    heads: dict[str, HeadSource] = field(default_factory=dict)
    network_sources: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)


class _Predictor:
    """The traced computation: padded waveform batch + lengths -> the output dict of both signatures."""

    def __init__(self, plan: ExportPlan):
        import keras

        self.plan = plan
        missing = [t for t in TASKS if t not in plan.tasks]
        if missing:
            raise ValueError(f"export plan has no source for {', '.join(missing)}")
        for task, source in plan.tasks.items():
            if source in plan.network_sources and task != "country":
                raise ValueError(f"{source} can only answer country (a frame CNN's class decision), not {task}")
        # Sub-models that share the trained layers (and so their variables): built once, called in the graph.
        self.cnn = {}
        for name, net in plan.networks.items():
            model = net.model
            embedding = model.get_layer("embedding").output
            self.cnn[name] = (keras.Model(model.input, [embedding, model.output], name=f"{name}_export"),
                              int(embedding.shape[-1]), int(model.output.shape[-1]))

    def _frame_network(self, name, signals, lengths, batch):
        net = self.plan.networks[name]
        model, hidden, classes = self.cnn[name]
        windows, clip = batch_windows(signals[net.signal](), lengths, net.hop_frames)

        def run(chunk):
            embedding, posteriors = model(chunk, training=False)
            return tf.concat([embedding, posteriors], axis=1)

        out = graph.in_chunks(run, windows, hidden + classes, WINDOW_CHUNK)
        mean, std = segment_mean_std(out[:, :hidden], clip, batch)
        posterior, _ = segment_mean_std(out[:, hidden:], clip, batch)
        # The store holds float32 rows of the float64 pooling, as embed_clips writes them.
        return tf.cast(tf.concat([mean, std], axis=1), tf.float32), tf.cast(posterior, tf.float32)

    def _ssl_feature(self, name, layer, waveform, lengths):
        """The SSL feature as a head reads it from the store: its `embeddings` (`layer` None), one of its
        `layers` (an int), or all of them ("weighted"), each pooled as extraction pools them."""
        from exvo_keras.registry import WEIGHTED

        feature = self.plan.ssl[name]
        inputs = {"waveform": waveform, "padding_mask": tf.cast(graph.sample_mask(waveform, lengths), tf.int32)}
        # The store holds float32 rows of the float64 pooling, as extraction writes them.
        if layer == WEIGHTED:
            return tf.cast(feature.encoder.pooled_layers(inputs, "last")[1], tf.float32)
        if layer is None:
            layer = feature.layer if feature.layer == "last" else int(feature.layer)
        else:
            layer = int(layer) % (feature.encoder.num_hidden_layers + 1)  # the store's negative indices too
        return tf.cast(feature.encoder.pooled(inputs, layer), tf.float32)

    def __call__(self, waveform, lengths):
        plan = self.plan
        waveform = tf.convert_to_tensor(waveform, tf.float32)
        lengths = graph.valid_lengths(waveform, lengths)
        batch = tf.shape(waveform)[0]
        mask = graph.sample_mask(waveform, lengths)
        cache = {}

        def signal(kind):
            def get():
                if kind not in cache:
                    raw = waveform * mask
                    cache[kind] = raw if kind == "raw" else zff_batch(raw, lengths, SAMPLE_RATE)
                return cache[kind]
            return get

        signals = {"raw": signal("raw"), "zff": signal("zff")}
        used = {s for t, s in plan.tasks.items()}
        needed_features = {i for key in used if key in plan.heads for i in plan.heads[key].inputs(plan)}
        needed_networks = {(plan.network_sources[key], None) for key in used if key in plan.network_sources}
        features, posteriors = {}, {}
        for name, layer in sorted(needed_features | needed_networks, key=str):
            if name in plan.networks:
                features[name, None], posteriors[name] = self._frame_network(name, signals, lengths, batch)
            elif name in plan.ssl:
                features[name, layer] = self._ssl_feature(name, layer, waveform, lengths)
            else:
                raise ValueError(f"feature {name!r} is in no encoder of the export plan")
        results = {}
        for key in sorted(used):
            if key in plan.heads:
                source = plan.heads[key]
                x = tf.concat([features[i] for i in source.inputs(plan)], axis=-1)
                results[key] = source.head(x, training=False)
            else:
                results[key] = {"country": posteriors[plan.network_sources[key]]}

        emotion = tf.cast(results[plan.tasks["emotion"]]["emotion"], tf.float32)
        age = tf.reshape(tf.cast(results[plan.tasks["age"]]["age"], tf.float32), [-1])
        probabilities = tf.cast(results[plan.tasks["country"]]["country"], tf.float32)
        index = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        out = {"emotion": emotion, "age": age, "country_probabilities": probabilities, "country_index": index,
               "country_label": tf.gather(tf.constant(COUNTRIES), index)}
        for i, name in enumerate(EMOTIONS):
            out[name] = emotion[:, i]
        return out


def write_saved_model(plan: ExportPlan, out_dir) -> Path:
    """Traces both serving functions of `plan` and writes the SavedModel to `out_dir` (replaced atomically:
    written beside it first, so an interrupted export leaves no half model)."""
    from keras.export import ExportArchive

    out_dir = Path(out_dir)
    predictor = _Predictor(plan)

    def serve_waveform(waveform, lengths):
        return predictor(waveform, lengths)

    def serve_wav_bytes(wav):
        waveform, lengths = graph.decode_wav_batch(wav)
        return predictor(waveform, lengths)

    archive = ExportArchive()
    # No archive.track(model): the archive already saves every variable the endpoints capture, and tracking the
    # models as well stores each weight a second time (Keras' variable wrapper beside its tf.Variable), which
    # doubled the size on disk.
    archive.add_endpoint(WAVEFORM_ENDPOINT, serve_waveform, input_signature=[
        tf.TensorSpec([None, None], tf.float32, name="waveform"), tf.TensorSpec([None], tf.int32, name="lengths")])
    archive.add_endpoint(BYTES_ENDPOINT, serve_wav_bytes, input_signature=[
        tf.TensorSpec([None], tf.string, name="wav")])
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    archive.write_out(str(tmp), verbose=False)
    return tmp


def replace_dir(tmp: Path, out_dir: Path) -> Path:
    """Moves a finished export into place, replacing an older one."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)
    return out_dir
