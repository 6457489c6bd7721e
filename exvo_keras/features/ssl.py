"""Self-supervised speech encoders over a corpus: the WavLM, HuBERT and Wav2Vec2 feature sets.

One utterance vector per clip: the mean and the population standard deviation over frames of one hidden layer
of the encoder (``[mean, std]``, ``2 * hidden_size`` values), written to an embedding store (``exvo_keras.store``:
resumable ``.partial`` file, progress bar, bad files named and the others kept). The store keeps, from the
same pass, that vector for every tensor of ``hidden_states`` too (dataset ``layers``, ``[clips,
num_hidden_layers + 1, 2 * hidden_size]``): a head then takes any layer (``read_store(..., layer=k)``, equal to an
extraction of layer ``k``) or learns a softmax-weighted sum of all of them (SUPERB's featurizer), without running
the encoder again. ``all_layers=False`` (``--default-layer-only``) keeps only the extracted layer, for disk: the
layers cost ``num_hidden_layers + 1`` times the embeddings (WavLM-large over ExVo: 25 x 0.49 GB = 12 GB).

Which tensor (``layer``)
    ``None`` / ``"last"`` (default): the tensor Hugging Face returns as ``last_hidden_state``. In post-norm models
    (``do_stable_layer_norm=False``: wav2vec2-base and the other base models) it is also ``hidden_states[-1]``.
    In pre-norm models (wavlm-large, hubert-large-ll60k) it is the final LayerNorm's output, which transformers 5
    (and the port's default) keep out of ``hidden_states``, while transformers 4.x, current when the paper was
    written, put it last (``hidden_states[-1] == last_hidden_state``; the port's
    ``final_norm_in_hidden_states=True``). "last" is thus the paper's last layer under either convention.
    An integer ``i`` (negative counts from the end) takes ``hidden_states[i]`` of the encoder as built: 0 is the
    transformer's input, ``i`` the output of layer ``i``. The store records the tensor in transformers-5 terms:
    ``"last"`` whenever the chosen tensor is ``last_hidden_state`` (so ``layer=-1`` of a post-norm model, or of a
    pre-norm encoder built with ``final_norm_in_hidden_states=True``, is recorded as "last"), otherwise the
    integer index, which for the last layer of a pre-norm model means its output before the final LayerNorm.

Normalisation (``do_normalize``)
    The encoder normalises each clip itself when its ``do_normalize`` says so (Hugging Face's feature
    extractor, ``preprocessor_config.json`` of a checkpoint: see :func:`exvo_keras.models.ssl.load_pretrained`).
    ``normalize=True/False`` overrides a checkpoint folder's setting; an encoder object is taken as built.

Batching
    Audio is decoded by one parallel tf.data pipeline for the whole extraction (``exvo_keras.data.tf_audio``),
    ahead of the encoder. Clips are taken ``chunk_clips`` at a time (the unit written to the store, so an interruption loses at most
    one chunk), sorted by length and run in batches of at most ``batch_seconds`` of padded audio
    (:func:`exvo_keras.batching.length_batches`) through the encoder with its padding mask, which gives every
    clip what it gets alone; the pooling runs in the same graph (:meth:`SSLEncoder.pooled_function`), so only
    ``[batch, 2 * hidden]`` leaves the device. Nothing pins a device: TensorFlow uses a GPU when there is one.

Store settings (everything that changes the numbers): ``model_type``, ``config`` (hash of the architecture
fields the port reads), ``hidden_size``, ``num_hidden_layers``, ``weights`` and ``do_normalize`` (the encoder's
:class:`~exvo_keras.models.ssl.provenance.Provenance`), ``layer``, ``pooling``, ``sample_rate``, and ``precision``
when not float32 (:attr:`SSLEncoder.precision`; a checkpoint folder is built under Keras's global policy,
``--mixed-precision``), ``layers: "all"`` when the store keeps every layer; shard stores add ``shard``
(:class:`exvo_keras.store.Shard`; :func:`exvo_keras.store.merge_shards` joins them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from exvo_keras.batching import length_batches, pad_clips
from exvo_keras.data.audio import AudioError
from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import MAX_SSL_SECONDS, SAMPLE_RATE
from exvo_keras.data.tf_audio import DecodedStream
from exvo_keras.models.ssl import (
    Provenance,
    SSLEncoder,
    checkpoint_digest,
    checkpoint_for,
    demo_encoder,
    hf_config_fields,
    load_pretrained,
    provenance_of,
    read_config,
)
from exvo_keras.models.ssl.checkpoint import resolve_do_normalize
from exvo_keras.signal.pooling import POOLING
from exvo_keras.store import (ALL_LAYERS, EMBEDDINGS, LAYERS, StoreError, build_store, parse_shard, partial_path,
                              store_attrs)
from exvo_keras.workspace import Workspace, shard_store

EXTRACTOR = "ssl"
DEFAULT_BATCH_SECONDS = 40.0
DEFAULT_CHUNK_CLIPS = 64
DEFAULT_MAX_SECONDS = MAX_SSL_SECONDS


class _Source:
    """An encoder to extract with, known before it is built: its architecture, provenance and how to get it."""

    def __init__(self, encoder_or_checkpoint, normalize: bool | None):
        if isinstance(encoder_or_checkpoint, SSLEncoder):
            encoder = encoder_or_checkpoint
            if normalize is not None and bool(normalize) != encoder.do_normalize:
                raise ValueError(f"normalize={normalize}, but {encoder.name} was built with do_normalize="
                                 f"{encoder.do_normalize}; build it with the normalisation wanted (e.g. "
                                 "load_pretrained(folder, do_normalize=...)), or pass the checkpoint folder")
            self.fields = hf_config_fields(encoder.get_config())
            self.final_norm_in_hidden_states = encoder.final_norm_in_hidden_states
            self.provenance = provenance_of(encoder)
            self.precision = encoder.precision
            self._encoder, self._folder = encoder, None
        else:
            folder = Path(encoder_or_checkpoint)
            self.fields = hf_config_fields(read_config(folder))
            self.final_norm_in_hidden_states = False
            # A folder is hashed, not loaded: a complete store is recognised without building the encoder.
            self.provenance = Provenance("checkpoint", resolve_do_normalize(folder, normalize),
                                         digest=checkpoint_digest(folder), label=str(folder))
            import keras

            self.precision = keras.mixed_precision.global_policy().name  # what load_pretrained will build in
            self._encoder, self._folder = None, folder

    def encoder(self) -> SSLEncoder:
        if self._encoder is None:
            self._encoder = load_pretrained(self._folder, do_normalize=self.provenance.do_normalize)
        return self._encoder

    def resolve_layer(self, layer) -> str | int:
        """The tensor `layer` names, as the store records it ("last" or a transformers-5 index)."""
        count = self.fields["num_hidden_layers"]
        if layer is None or layer == "last":
            return "last"
        try:
            if isinstance(layer, bool):
                raise ValueError
            index = int(layer)
        except (TypeError, ValueError):
            raise ValueError(f"layer {layer!r}: expected None or 'last', or an index into hidden_states") from None
        if not -(count + 1) <= index <= count:
            raise ValueError(f"layer {layer}: {self.provenance.where} has hidden_states[0..{count}] "
                             f"({count} layers)")
        index %= count + 1
        pre_norm = self.fields["do_stable_layer_norm"]
        if index == count and (not pre_norm or self.final_norm_in_hidden_states):
            return "last"
        return index

    def settings(self, layer, all_layers: bool = True) -> dict:
        config_hash = hashlib.sha1(json.dumps(self.fields, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "model_type": self.fields["model_type"],
            "config": config_hash,
            "hidden_size": self.fields["hidden_size"],
            "num_hidden_layers": self.fields["num_hidden_layers"],
            **self.provenance.to_attrs(),
            "layer": self.resolve_layer(layer),
            "pooling": POOLING,
            "sample_rate": SAMPLE_RATE,
            # Only when not float32: stores made before precision was a choice keep their settings.
            **({"precision": self.precision} if self.precision != "float32" else {}),
            **({"layers": ALL_LAYERS} if all_layers else {}),
        }


def ssl_settings(encoder_or_checkpoint, *, layer=None, normalize: bool | None = None,
                 all_layers: bool = True) -> dict:
    """The store settings :func:`extract_ssl` records for this encoder and layer (pass them to ``read_store``
    to refuse a store made otherwise). A checkpoint folder is hashed, not loaded."""
    return _Source(encoder_or_checkpoint, normalize).settings(layer, all_layers)


# Extraction ---------------------------------------------------------------------------------------------------

def pool_clips(encoder: SSLEncoder, clips: Sequence[np.ndarray], *, layer="last",
               batch_seconds: float = DEFAULT_BATCH_SECONDS, all_layers: bool = False):
    """``[len(clips), 2 * hidden]`` float32: :meth:`SSLEncoder.pooled` of each clip, clips batched by length.

    `layer` is a resolved layer ("last" or an index into the encoder's ``hidden_states``). With `all_layers`,
    the store's rows ``{"embeddings": that, "layers": [len(clips), layers + 1, 2 * hidden]}`` from one pass.
    """
    pooled = encoder.pooled_function(layer, all_layers)
    rows = np.zeros((len(clips), 2 * encoder.hidden_size), np.float32)
    every = np.zeros((len(clips), encoder.num_hidden_layers + 1, 2 * encoder.hidden_size), np.float32) \
        if all_layers else None
    for batch in length_batches([c.size for c in clips], max_samples=int(batch_seconds * SAMPLE_RATE)):
        out = pooled(*pad_clips([clips[i] for i in batch]))
        if all_layers:
            rows[batch], every[batch] = np.asarray(out[0]), np.asarray(out[1])
        else:
            rows[batch] = np.asarray(out)
    return {EMBEDDINGS: rows, LAYERS: every} if all_layers else rows


def extract_ssl(corpus: Corpus, encoder_or_checkpoint, out_path, *, layer=None,
                batch_seconds: float = DEFAULT_BATCH_SECONDS, shard=None, normalize: bool | None = None,
                max_seconds: float = DEFAULT_MAX_SECONDS, chunk_clips: int = DEFAULT_CHUNK_CLIPS,
                all_layers: bool = True, progress: bool = True, desc: str | None = None) -> Path:
    """Mean and std over frames of one hidden layer of an SSL encoder, for every clip of `corpus`, into a store.

    Args:
        corpus: the corpus; rows follow ``corpus.file_ids()``.
        encoder_or_checkpoint: a Hugging Face checkpoint folder (config.json + weights, and
            preprocessor_config.json), or an :class:`SSLEncoder` (e.g. ``demo_encoder``, ``load_pretrained``).
            A folder is loaded only if there is work left.
        out_path: the store (``.h5``); resumed from its ``.partial`` if an earlier run was interrupted, returned
            at once if complete with the same settings, refused if made otherwise.
        layer: None / "last" (``last_hidden_state``) or an index into ``hidden_states``; see the module doc.
        batch_seconds: padded audio per forward pass at most (memory); the numbers do not depend on it.
        shard: "I/N" (or a ``Shard``) to extract only clips I, I + N, ... into the shard store beside `out_path`
            (``exvo_keras.workspace.shard_store``).
        normalize: overrides a checkpoint folder's ``do_normalize``.
        max_seconds: longer clips are refused (named in the error; the others are kept), since attention
            memory grows with the square of the length.
        chunk_clips: clips read and written to the store at a time.
        all_layers: keep every hidden state's embedding too (dataset ``layers``), from the same pass.
        progress: show a progress bar.

    Returns:
        The complete store's path (the shard's path when `shard` is given).

    Example:
        >>> extract_ssl(corpus, demo_encoder("wavlm"), "work/features/wavlm.h5")  # doctest: +SKIP
    """
    source = _Source(encoder_or_checkpoint, normalize)
    settings = source.settings(layer, all_layers)
    resolved = settings["layer"]
    file_ids = corpus.file_ids()
    out_path = Path(out_path)
    parsed = parse_shard(shard)
    if parsed is not None:
        file_ids = parsed.ids(file_ids)
        settings["shard"] = str(parsed)
        out_path = shard_store(out_path, *parsed)
    max_samples = int(max_seconds * SAMPLE_RATE)

    # Audio is decoded ahead, in parallel, while the encoder runs (exvo_keras.data.tf_audio).
    stream = DecodedStream(corpus.wav_path)

    def embed(ids):
        encoder = source.encoder()
        clips = []
        for fid, clip in zip(ids, stream.take(ids)):
            path = corpus.wav_path(fid)
            if clip.error is not None:
                raise clip.error
            x = clip.signal
            if x.size > max_samples:
                raise AudioError(path, f"{x.size / SAMPLE_RATE:.1f} s long, over max_seconds={max_seconds} "
                                       "(attention memory grows with the square of the length); raise "
                                       "max_seconds or split the clip")
            if x.size < encoder.receptive_field:
                raise AudioError(path, f"{x.size} samples, shorter than the encoder's receptive field "
                                       f"({encoder.receptive_field})")
            clips.append(x)
        return pool_clips(encoder, clips, layer=resolved, batch_seconds=batch_seconds, all_layers=all_layers)

    _refuse_single_layer_store(out_path, settings)

    name = desc or f"{source.fields['model_type']} layer {resolved}" + (f" shard {parsed}" if parsed else "")
    return build_store(out_path, file_ids, embed, extractor=EXTRACTOR, settings=settings,
                       corpus=corpus, batch_size=chunk_clips, progress=progress, desc=name, plan=stream.plan)


def _refuse_single_layer_store(path: Path, settings: dict) -> None:
    """A store made before stores kept every layer, otherwise as asked for: say so, rather than the generic
    "other settings" (it still serves heads on its one layer, but not layer choices)."""
    if ALL_LAYERS != settings.get("layers"):
        return
    ours = {k: v for k, v in settings.items() if k != "layers"}
    for store, what, keep in ((path, "holds", "keep using it as it is"),
                              (partial_path(path), "is an interrupted extraction of", "finish it as it was")):
        try:
            theirs = store_attrs(store)["settings"] if store.exists() else None
        except StoreError:
            continue  # build_store names an unreadable store itself; a broken partial is started again
        if theirs is not None and "layers" not in theirs and theirs == ours:
            raise StoreError(f"{store}: {what} only layer {theirs.get('layer')!r}, without every layer beside it (made "
                             "before SSL stores kept them, or with --default-layer-only). To keep every layer from "
                             "one pass, delete it and rerun this extraction (the encoder runs again over those clips); "
                             f"to {keep}, extract with --default-layer-only (all_layers=False)")


def extract_feature_set(name: str, corpus: Corpus, work, *, ssl_dir=None, seed: int = 0, **kwargs) -> Path:
    """Feature set "wavlm", "hubert" or "wav2vec2" into its store (``Workspace(work).store(name)``).

    With `ssl_dir` the checkpoint ``checkpoint_for(name, ssl_dir)`` (a clear error names the folder to supply
    when missing); without it the random demo encoder of that family (the store records ``random-init``).
    Other keyword arguments go to :func:`extract_ssl` (layer, shard, batch_seconds, progress, ...).
    """
    checkpoint = checkpoint_for(name, ssl_dir)
    source = checkpoint if checkpoint is not None else demo_encoder(name, seed)
    return extract_ssl(corpus, source, Workspace(work).store(name), **kwargs)
