"""Self-supervised speech encoders over a corpus: the WavLM, HuBERT and Wav2Vec2 feature sets.

One utterance vector per clip: the mean and the population standard deviation over frames of one hidden layer
of the encoder (``[mean, std]``, ``2 * hidden_size`` values), written to an embedding store (``exvo_keras.store``:
resumable ``.partial`` file, progress bar, bad files named and the others kept).

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
    Hugging Face's feature extractor (``preprocessor_config.json`` of a checkpoint) may ask for each clip to be
    normalised to zero mean and unit variance before the encoder: ``(x - mean) / sqrt(var + 1e-7)``, as
    ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm`` does. For a checkpoint folder it is read from
    ``preprocessor_config.json`` (a file without the key means True, the extractor's default), else from a
    ``do_normalize`` key of ``config.json``; with neither, clips go in unnormalised and a warning names the file
    to add. ``normalize=True/False`` overrides. The store records the choice.

Batching
    Clips are read ``chunk_clips`` at a time (the unit written to the store, so an interruption loses at most
    one chunk), sorted by length and run in batches of at most ``batch_seconds`` of padded audio through the
    port's padded model (:meth:`SSLEncoder.padded_model`, the same path as :meth:`SSLEncoder.encode`), which
    gives every clip what it gets alone; the pooling runs in the same graph (``tf.function``), so only
    ``[batch, 2 * hidden]`` leaves the device. Nothing pins a device: TensorFlow uses a GPU when there is one.

Store settings (everything that changes the numbers): ``model_type``, ``config`` (hash of the architecture
fields the port reads), ``hidden_size``, ``num_hidden_layers``, ``weights`` (``"sha1 <hex>"`` of a checkpoint's
weight files, ``"random-init seed N"`` for a demo encoder, ``"variables sha1 <hex>"`` for any other encoder
object), ``layer``, ``pooling``, ``do_normalize``, ``sample_rate``; shard stores add ``shard``.

Shards
    ``shard="I/N"`` (0 <= I < N) extracts the clips whose position in ``corpus.file_ids()`` is ``I`` modulo
    ``N`` (interleaved, so every shard gets a similar mix of lengths and splits) into ``name.shardIofN.h5``
    next to ``out_path``: a valid store over those File_IDs only. :func:`merge_shards` joins the complete
    shards into the normal store over the whole corpus.

Feature sets: "wavlm", "hubert", "wav2vec2", stored as ``WORK/features/<name>.h5``; with ``--ssl-dir DIR`` the
checkpoints are ``DIR/wavlm-large``, ``DIR/hubert-large-ll60k``, ``DIR/wav2vec2-base`` (:func:`checkpoint_for`),
without it small random demo encoders (:func:`demo_encoder`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import h5py
import numpy as np

from exvo_keras.data.audio import AudioError, load_audio
from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import MAX_SSL_SECONDS, SAMPLE_RATE
from exvo_keras.features.functionals import POOLING, masked_mean_std
from exvo_keras.store import StoreError, build_store, check_store

if TYPE_CHECKING:
    from exvo_keras.models.ssl import SSLEncoder

EXTRACTOR = "ssl"
# feature-set name -> (model_type, checkpoint subfolder of --ssl-dir, Hugging Face repository)
FEATURE_SETS = {
    "wavlm": ("wavlm", "wavlm-large", "microsoft/wavlm-large"),
    "hubert": ("hubert", "hubert-large-ll60k", "facebook/hubert-large-ll60k"),
    "wav2vec2": ("wav2vec2", "wav2vec2-base", "facebook/wav2vec2-base"),
}
PREPROCESSOR_FILE = "preprocessor_config.json"
NORMALIZE_EPS = 1e-7  # Hugging Face's Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
DEFAULT_BATCH_SECONDS = 40.0
DEFAULT_CHUNK_CLIPS = 64
DEFAULT_MAX_SECONDS = MAX_SSL_SECONDS

# Demo encoders: the real models' 20 ms frames (strides multiply to 320) from four convolutions instead of
# seven, 64 hidden units, four layers. wav2vec2 in the base layout (as wav2vec2-base), hubert and wavlm in the
# large one (pre-norm, as hubert-large-ll60k and wavlm-large). Extracting the demo corpus (960 clips, 22 min of
# audio) takes 12-15 s per family on 2 CPU cores (measured while another job kept them busy).
DEMO_SIZES = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "conv_dim": [64, 64, 64, 64],
    "conv_kernel": [10, 4, 4, 4],
    "conv_stride": [5, 4, 4, 4],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
DEMO_LARGE_LAYOUT = {"wav2vec2": False, "hubert": True, "wavlm": True}
DEMO_WAVLM = {"num_buckets": 32, "max_bucket_distance": 128}

# Encoders whose weights this module can name: encoder -> (label, variables digest when labelled, do_normalize).
_IDENTITY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# Traced pooling functions: encoder -> {layer: tf.function}.
_POOLED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# Names and folders ------------------------------------------------------------------------------------------

def _feature_set(name: str) -> tuple[str, str, str]:
    if name not in FEATURE_SETS:
        raise KeyError(f"unknown SSL feature set {name!r}; known: {', '.join(FEATURE_SETS)}")
    return FEATURE_SETS[name]


def checkpoint_for(name: str, ssl_dir) -> Path | None:
    """The checkpoint folder of feature set `name` under `ssl_dir`, or None when no `ssl_dir` is given.

    "wavlm" -> ``ssl_dir/wavlm-large``, "hubert" -> ``ssl_dir/hubert-large-ll60k``, "wav2vec2" ->
    ``ssl_dir/wav2vec2-base``. Raises FileNotFoundError naming the folder (and the Hugging Face repository to put
    there) when it, or its config.json, is missing.
    """
    _, folder_name, repo = _feature_set(name)
    if ssl_dir is None:
        return None
    folder = Path(ssl_dir) / folder_name
    if not (folder / "config.json").is_file():
        what = "does not exist" if not folder.exists() else "has no config.json"
        raise FileNotFoundError(
            f"{name}: checkpoint folder {folder} {what}; supply the Hugging Face model {repo} there "
            f"(config.json, model.safetensors or pytorch_model.bin, and {PREPROCESSOR_FILE}), e.g. "
            f"`huggingface-cli download {repo} --local-dir {folder}` on a machine with network access")
    return folder


def feature_path(work, name: str) -> Path:
    """``WORK/features/<name>.h5``, the store of a feature set."""
    _feature_set(name)
    return Path(work) / "features" / f"{name}.h5"


# Shards -----------------------------------------------------------------------------------------------------

def parse_shard(shard) -> tuple[int, int] | None:
    """``"I/N"`` or ``(I, N)`` -> ``(I, N)`` with 0 <= I < N; None stays None."""
    if shard is None:
        return None
    try:
        i, n = (shard.split("/") if isinstance(shard, str) else shard)
        i, n = int(i), int(n)
    except (ValueError, TypeError):
        raise ValueError(f"shard {shard!r}: expected 'I/N' with 0 <= I < N, e.g. '0/4'") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {shard!r}: expected 'I/N' with 0 <= I < N, e.g. '0/4'")
    return i, n


def shard_path(out_path, shard) -> Path:
    """``features/wavlm.h5`` with shard 1/4 -> ``features/wavlm.shard1of4.h5``."""
    i, n = parse_shard(shard)
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.shard{i}of{n}{out_path.suffix}")


def shard_ids(file_ids: Sequence[str], shard) -> list[str]:
    """The File_IDs of one shard: those at positions I, I + N, I + 2N, ..."""
    i, n = parse_shard(shard)
    return list(file_ids)[i::n]


# Encoders and their identity ----------------------------------------------------------------------------------

def _weights_digest(encoder) -> str:
    h = hashlib.sha1()
    for variable in encoder.weights:
        h.update(variable.path.encode())
        h.update(np.ascontiguousarray(np.asarray(variable), dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _register(encoder, label: str, do_normalize: bool | None) -> None:
    _IDENTITY[encoder] = (label, _weights_digest(encoder), do_normalize)


def demo_encoder(family: str, seed: int = 0) -> "SSLEncoder":
    """A small randomly initialised encoder of one family ("wav2vec2", "hubert", "wavlm"), for the demo.

    Sizes: :data:`DEMO_SIZES` (64 hidden, 4 layers, 20 ms frames): 128-dimensional embeddings. Stores made with
    it record ``"weights": "random-init seed <seed>"``.
    """
    from exvo_keras.models.ssl import SSLEncoder, small_config

    model_type = _feature_set(family)[0]
    extra = DEMO_WAVLM if model_type == "wavlm" else {}
    config = small_config(model_type, large=DEMO_LARGE_LAYOUT[model_type], **DEMO_SIZES, **extra)
    # Each family draws its own weights: with one seed, HuBERT and WavLM (same layout and sizes) shared every
    # weight but WavLM's position bias and gave near-identical demo rows.
    family_seed = seed * len(FEATURE_SETS) + list(FEATURE_SETS).index(family)
    encoder = SSLEncoder.from_hf_config(config, seed=family_seed, name=f"demo_{model_type}")
    _register(encoder, f"random-init seed {seed}", None)
    return encoder


def _checkpoint_files(folder: Path) -> list[Path]:
    """The weight files `load_pretrained` reads, in the same order of preference."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return [folder / name]
        index = folder / f"{name}.index.json"
        if index.is_file():
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return [index] + [folder / s for s in shards]
    raise FileNotFoundError(f"{folder} has no weights: supply model.safetensors or pytorch_model.bin (or their "
                            "sharded form with an .index.json) next to config.json")


def checkpoint_digest(folder) -> str:
    """SHA-1 (16 hex digits) of a checkpoint's weight files (names and contents): about 1 s per GB."""
    h = hashlib.sha1()
    for path in _checkpoint_files(Path(folder)):
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while block := f.read(1 << 23):
                h.update(block)
    return h.hexdigest()[:16]


def read_do_normalize(folder) -> bool | None:
    """Whether a checkpoint expects each clip normalised: ``preprocessor_config.json`` (missing key: True, the
    feature extractor's default), else a ``do_normalize`` key of ``config.json``; None when neither says."""
    from exvo_keras.models.ssl import read_config

    folder = Path(folder)
    path = folder / PREPROCESSOR_FILE
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            pre = json.load(f)
        rate = pre.get("sampling_rate", SAMPLE_RATE)
        if int(rate) != SAMPLE_RATE:
            raise ValueError(f"{path}: sampling_rate {rate}; the corpus loader gives {SAMPLE_RATE} Hz")
        return bool(pre.get("do_normalize", True))
    config = read_config(folder)
    if "do_normalize" in config:
        return bool(config["do_normalize"])
    return None


def load_encoder(folder, **kwargs) -> "SSLEncoder":
    """`load_pretrained` plus what the extraction needs to know about it: stores made from the returned encoder
    carry the same checkpoint identity and normalisation as stores made from the folder itself."""
    from exvo_keras.models.ssl import load_pretrained

    folder = Path(folder)
    digest = checkpoint_digest(folder)
    encoder = load_pretrained(folder, **kwargs)
    _register(encoder, f"sha1 {digest}", read_do_normalize(folder))
    return encoder


def _architecture(fields: dict) -> dict:
    """The config fields the port reads, typed canonically (the same dict from config.json or an encoder)."""
    from exvo_keras.models.ssl.encoder import HF_DEFAULTS, HUBERT_DEFAULTS, WAVLM_DEFAULTS

    model_type = fields["model_type"]
    defaults = dict(HF_DEFAULTS)
    defaults.update(HUBERT_DEFAULTS if model_type == "hubert" else {})
    defaults.update(WAVLM_DEFAULTS if model_type == "wavlm" else {})
    out = {"model_type": model_type}
    for key, default in defaults.items():
        value = fields.get(key, default)
        if isinstance(default, bool):
            value = bool(value)
        elif isinstance(default, int):
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        elif isinstance(default, tuple):
            value = [int(v) for v in value]
        else:
            value = str(value)
        out[key] = value
    return out


class _Source:
    """An encoder to extract with, known before it is built: its identity, its settings and how to get it."""

    def __init__(self, encoder_or_checkpoint, normalize: bool | None):
        from exvo_keras.models.ssl import SSLEncoder, hf_config_fields, read_config

        if isinstance(encoder_or_checkpoint, SSLEncoder):
            encoder = encoder_or_checkpoint
            config = encoder.get_config()
            self.fields = _architecture(config)
            self.final_norm_in_hidden_states = bool(config["final_norm_in_hidden_states"])
            known = _IDENTITY.get(encoder)
            digest = _weights_digest(encoder)
            if known is not None and known[1] == digest:
                self.weights, do_normalize = known[0], known[2]
            else:  # unknown, or its weights changed since it was labelled
                self.weights, do_normalize = f"variables sha1 {digest}", None
            self._encoder = encoder
            self._folder = None
            self.where = encoder.name
        else:
            folder = Path(encoder_or_checkpoint)
            self.fields = _architecture(hf_config_fields(read_config(folder)))
            self.final_norm_in_hidden_states = False
            self.weights = f"sha1 {checkpoint_digest(folder)}"
            do_normalize = read_do_normalize(folder)
            if do_normalize is None and normalize is None:
                warnings.warn(f"{folder} has no {PREPROCESSOR_FILE}: clips go to the encoder unnormalised "
                              f"(do_normalize=False). Add the checkpoint's {PREPROCESSOR_FILE}, or pass "
                              "normalize=True/False to say what it expects.", stacklevel=3)
            self._encoder = None
            self._folder = folder
            self.where = str(folder)
        self.do_normalize = bool(normalize if normalize is not None else do_normalize)

    @property
    def model_type(self) -> str:
        return self.fields["model_type"]

    def encoder(self) -> "SSLEncoder":
        if self._encoder is None:
            from exvo_keras.models.ssl import load_pretrained

            self._encoder = load_pretrained(self._folder)
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
            raise ValueError(f"layer {layer}: {self.where} has hidden_states[0..{count}] ({count} layers)")
        index %= count + 1
        pre_norm = self.fields["do_stable_layer_norm"]
        if index == count and (not pre_norm or self.final_norm_in_hidden_states):
            return "last"
        return index

    def settings(self, layer) -> dict:
        config_hash = hashlib.sha1(json.dumps(self.fields, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "model_type": self.model_type,
            "config": config_hash,
            "hidden_size": self.fields["hidden_size"],
            "num_hidden_layers": self.fields["num_hidden_layers"],
            "weights": self.weights,
            "layer": self.resolve_layer(layer),
            "pooling": POOLING,
            "do_normalize": self.do_normalize,
            "sample_rate": SAMPLE_RATE,
        }


def ssl_settings(encoder_or_checkpoint, *, layer=None, normalize: bool | None = None) -> dict:
    """The store settings :func:`extract_ssl` records for this encoder and layer (pass them to ``read_store``
    to refuse a store made otherwise). A checkpoint folder is hashed, not loaded."""
    return _Source(encoder_or_checkpoint, normalize).settings(layer)


# Extraction ---------------------------------------------------------------------------------------------------

def normalize_clip(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: ``(x - mean) / sqrt(var + 1e-7)`` (Hugging Face's ``do_normalize``)."""
    x64 = np.asarray(x, np.float64)
    return ((x64 - x64.mean()) / np.sqrt(x64.var() + NORMALIZE_EPS)).astype(np.float32)


def _pooling_function(encoder, layer):
    """``(waveform [b, s] float32, padding_mask [b, s] int32) -> [b, 2 * hidden]``, traced once."""
    per_encoder = _POOLED.setdefault(encoder, {})
    if layer not in per_encoder:
        import tensorflow as tf

        padded = encoder.padded_model()

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                      tf.TensorSpec([None, None], tf.int32)])
        def pooled(waveform, padding_mask):
            out = padded({"waveform": waveform, "padding_mask": padding_mask}, training=False)
            frames = out["last_hidden_state"] if layer == "last" else out["hidden_states"][layer]
            return masked_mean_std(frames, out["frame_mask"])

        per_encoder[layer] = pooled
    return per_encoder[layer]


def length_batches(lengths: Sequence[int], max_samples: int) -> list[list[int]]:
    """Indices grouped longest first, each group's ``count * longest <= max_samples`` (a longer clip alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * int(lengths[batches[-1][0]]) <= max_samples:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def pool_clips(encoder, clips: Sequence[np.ndarray], *, layer="last", batch_seconds: float = DEFAULT_BATCH_SECONDS
               ) -> np.ndarray:
    """``[len(clips), 2 * hidden]``: mean and std over frames of one tensor, clips batched by length.

    `layer` is a resolved layer ("last" or an index into the encoder's ``hidden_states``); clips are 16 kHz
    float32, already normalised if the encoder expects it.
    """
    from exvo_keras.models.ssl.encoder import pad_clips

    pooled = _pooling_function(encoder, layer)
    rows = np.zeros((len(clips), 2 * encoder.hidden_size), np.float32)
    for batch in length_batches([c.size for c in clips], int(batch_seconds * SAMPLE_RATE)):
        waveform, mask = pad_clips([clips[i] for i in batch])
        rows[batch] = np.asarray(pooled(waveform, mask))
    return rows


def extract_ssl(corpus: Corpus, encoder_or_checkpoint, out_path, *, layer=None,
                batch_seconds: float = DEFAULT_BATCH_SECONDS, shard=None, normalize: bool | None = None,
                max_seconds: float = DEFAULT_MAX_SECONDS, chunk_clips: int = DEFAULT_CHUNK_CLIPS,
                progress: bool = True, desc: str | None = None) -> Path:
    """Mean and std over frames of one hidden layer of an SSL encoder, for every clip of `corpus`, into a store.

    Args:
        corpus: the corpus; rows follow ``corpus.file_ids()``.
        encoder_or_checkpoint: a Hugging Face checkpoint folder (config.json + weights, and
            preprocessor_config.json), or an :class:`SSLEncoder` (e.g. :func:`demo_encoder`,
            :func:`load_encoder`). A folder is loaded only if there is work left.
        out_path: the store (``.h5``); resumed from its ``.partial`` if an earlier run was interrupted, returned
            at once if complete with the same settings, refused if made otherwise.
        layer: None / "last" (``last_hidden_state``) or an index into ``hidden_states``; see the module doc.
        batch_seconds: padded audio per forward pass at most (memory); the numbers do not depend on it.
        shard: "I/N" to extract only clips I, I + N, ... into ``shard_path(out_path, shard)``.
        normalize: overrides the checkpoint's ``do_normalize``.
        max_seconds: longer clips are refused (named in the error; the others are kept), since attention
            memory grows with the square of the length.
        chunk_clips: clips read and written to the store at a time.
        progress: show a progress bar.

    Returns:
        The complete store's path (the shard's path when `shard` is given).

    Example:
        >>> extract_ssl(corpus, demo_encoder("wavlm"), "work/features/wavlm.h5")  # doctest: +SKIP
    """
    source = _Source(encoder_or_checkpoint, normalize)
    settings = source.settings(layer)
    resolved = settings["layer"]
    file_ids = corpus.file_ids()
    out_path = Path(out_path)
    parsed = parse_shard(shard)
    if parsed is not None:
        file_ids = shard_ids(file_ids, parsed)
        settings["shard"] = f"{parsed[0]}/{parsed[1]}"
        out_path = shard_path(out_path, parsed)
    max_samples = int(max_seconds * SAMPLE_RATE)

    def embed(ids):
        encoder = source.encoder()
        clips = []
        for fid in ids:
            path = corpus.wav_path(fid)
            x = load_audio(path)
            if x.size > max_samples:
                raise AudioError(path, f"{x.size / SAMPLE_RATE:.1f} s long, over max_seconds={max_seconds} "
                                       "(attention memory grows with the square of the length); raise "
                                       "max_seconds or split the clip")
            if x.size < encoder.receptive_field:
                raise AudioError(path, f"{x.size} samples, shorter than the encoder's receptive field "
                                       f"({encoder.receptive_field})")
            clips.append(normalize_clip(x) if source.do_normalize else x)
        return pool_clips(encoder, clips, layer=resolved, batch_seconds=batch_seconds)

    name = desc or f"{source.model_type} layer {resolved}" + (f" shard {settings['shard']}" if parsed else "")
    return build_store(out_path, file_ids, embed, extractor=EXTRACTOR, settings=settings,
                       corpus=corpus, batch_size=chunk_clips, progress=progress, desc=name)


def extract_feature_set(name: str, corpus: Corpus, work, *, ssl_dir=None, seed: int = 0, **kwargs) -> Path:
    """Feature set "wavlm", "hubert" or "wav2vec2" into ``WORK/features/<name>.h5``.

    With `ssl_dir` the checkpoint ``checkpoint_for(name, ssl_dir)`` (a clear error names the folder to supply
    when missing); without it the random demo encoder of that family (the store records ``random-init``).
    Other keyword arguments go to :func:`extract_ssl` (layer, shard, batch_seconds, progress, ...).
    """
    checkpoint = checkpoint_for(name, ssl_dir)
    source = checkpoint if checkpoint is not None else demo_encoder(name, seed)
    return extract_ssl(corpus, source, feature_path(work, name), **kwargs)


# Merging shards -------------------------------------------------------------------------------------------------

def merge_shards(paths: Sequence, out_path, corpus: Corpus, *, progress: bool = False) -> Path:
    """Joins complete shard stores of one extraction into the normal store over the whole corpus.

    Refuses (StoreError, naming the files) shards that are missing or incomplete, made from another corpus, by
    another extractor or with other settings, that are not shard stores, and a set of shards that misses or
    duplicates File_IDs of the corpus. The merged store has the settings of an unsharded extraction, so
    ``read_store(..., settings=ssl_settings(...))`` accepts it. If `out_path` is already complete with those
    settings it is returned as is.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise StoreError("merge_shards: no shard stores given")
    attrs = [check_store(p, corpus=corpus) for p in paths]
    for path, a in zip(paths, attrs):
        if "shard" not in a["settings"]:
            raise StoreError(f"{path}: not a shard store (its settings have no 'shard')")
    base = {k: v for k, v in attrs[0]["settings"].items() if k != "shard"}
    for path, a in zip(paths[1:], attrs[1:]):
        if a["extractor"] != attrs[0]["extractor"]:
            raise StoreError(f"{path}: made by extractor {a['extractor']!r}, {paths[0]} by "
                             f"{attrs[0]['extractor']!r}")
        other = {k: v for k, v in a["settings"].items() if k != "shard"}
        diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
        if diff:
            detail = ", ".join(f"{k}: {base.get(k)!r} vs {other.get(k)!r}" for k in diff)
            raise StoreError(f"shards {paths[0]} and {path} were made with different settings ({detail})")

    where: dict[str, tuple[int, int]] = {}
    duplicates = []
    for s, path in enumerate(paths):
        with h5py.File(path, "r") as f:
            ids = [x.decode() for x in f["file_ids"][()]]
        for row, fid in enumerate(ids):
            if fid in where:
                duplicates.append(f"{fid} ({paths[where[fid][0]].name} and {path.name})")
            else:
                where[fid] = (s, row)
    if duplicates:
        raise StoreError(f"shards overlap: {len(duplicates)} File_ID(s) in more than one shard, e.g. "
                         + "; ".join(duplicates[:5]))
    file_ids = corpus.file_ids()
    missing = [fid for fid in file_ids if fid not in where]
    extra = sorted(set(where) - set(file_ids))
    if missing:
        labels = sorted({a["settings"]["shard"] for a in attrs})
        raise StoreError(f"shards {', '.join(labels)} miss {len(missing)} of the corpus's {len(file_ids)} clips, "
                         f"e.g. {missing[:5]}; extract the missing shard(s) first")
    if extra:
        raise StoreError(f"shards hold {len(extra)} File_ID(s) not in the corpus, e.g. {extra[:5]}")

    handles = [h5py.File(p, "r") for p in paths]
    try:
        def rows(ids):
            out = np.zeros((len(ids), int(attrs[0]["dims"])), np.float32)
            for s, handle in enumerate(handles):
                picks = [(k, where[fid][1]) for k, fid in enumerate(ids) if where[fid][0] == s]
                if picks:
                    picks.sort(key=lambda p: p[1])  # h5py reads increasing indices
                    out[[k for k, _ in picks]] = handle["embeddings"][[r for _, r in picks]]
            return out

        return build_store(out_path, file_ids, rows, extractor=attrs[0]["extractor"], settings=base,
                           corpus=corpus, batch_size=4096, progress=progress, desc="merging shards")
    finally:
        for handle in handles:
            handle.close()
