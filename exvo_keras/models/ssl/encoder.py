"""Wav2Vec2, HuBERT and WavLM encoders in Keras 3: one implementation, configured by Hugging Face's config fields.

The three families share their whole structure (HF's modeling_wav2vec2.py, modeling_hubert.py,
modeling_wavlm.py):

    waveform [batch, samples]
      -> feature encoder: 1-D convs (``conv_dim``, ``conv_kernel``, ``conv_stride``, ``conv_bias``), each followed
         by ``feat_extract_activation``; ``feat_extract_norm="group"`` puts a per-channel group norm after the
         first conv only (base models), ``"layer"`` a LayerNorm (eps 1e-5) after every conv (large models)
      -> feature projection: LayerNorm (``layer_norm_eps``; HuBERT may drop it, ``feat_proj_layer_norm``) + Dense
      -> + positional conv embedding (grouped conv, ``num_conv_pos_embeddings``, ``num_conv_pos_embedding_groups``)
      -> transformer: post-norm (``do_stable_layer_norm=False``: encoder LayerNorm before the first layer) or
         pre-norm (True: encoder LayerNorm after the last layer)
      -> WavLM only: a gated relative position bias in every layer's attention, built once from
         ``num_buckets`` and ``max_bucket_distance``

Hidden states follow transformers 5 (the version this project pins, ``output_hidden_states=True``):
``hidden_states[0]`` is the first layer's input (after the encoder LayerNorm in post-norm models, before any
LayerNorm in pre-norm ones), ``hidden_states[i]`` the output of layer ``i``. In pre-norm models
``last_hidden_state`` is the final LayerNorm's output, while ``hidden_states[-1]`` is the last layer's output
before it. transformers 4.x put the normalised tensor last instead (``hidden_states[-1] == last_hidden_state``);
``final_norm_in_hidden_states=True`` reproduces that.

Input: raw 16 kHz float32 waveform. Checkpoints whose feature extractor has ``do_normalize=True`` (most large
ones) expect each clip normalised to zero mean and unit variance first, as HF's processor does; the model does
not do it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from exvo_keras.data.labels import MAX_SSL_SECONDS, SAMPLE_RATE
from exvo_keras.models.ssl.layers import (
    ChannelGroupNorm,
    LengthMask,
    PositionalConvEmbedding,
    RelativePositionBias,
    TransformerLayer,
    get_activation,
    normal_initializer,
)

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")

# The fields this implementation reads, with transformers' defaults (the base architecture of all three).
HF_DEFAULTS = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "conv_dim": (512, 512, 512, 512, 512, 512, 512),
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_bias": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": False,
    "initializer_range": 0.02,
}
# Read only for the family that has them; the other families' HF classes ignore these keys.
HUBERT_DEFAULTS = {"feat_proj_layer_norm": True, "conv_pos_batch_norm": False}
WAVLM_DEFAULTS = {"num_buckets": 320, "max_bucket_distance": 800}

# A clip longer than this (60 s at 16 kHz) is refused by `encode` unless the caller lifts the limit: attention
# memory grows with the square of its length (see `SSLEncoder.attention_bytes`).
DEFAULT_MAX_SAMPLES = int(MAX_SSL_SECONDS * SAMPLE_RATE)
# `encode` puts at most this many (padded) samples in one batch, so a long clip runs alone.
DEFAULT_MAX_BATCH_SAMPLES = 80 * 16000


def hf_config_fields(hf_config: dict) -> dict:
    """The constructor arguments of :class:`SSLEncoder` for a Hugging Face ``config.json`` (as a dict).

    Missing fields take transformers' defaults. Raises ValueError for a model type other than wav2vec2, hubert
    or wavlm, and for features the base model would apply that this port does not implement (adapters).
    """
    model_type = hf_config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"config.json has model_type {model_type!r}; supported: {', '.join(MODEL_TYPES)}")
    if hf_config.get("add_adapter"):
        raise ValueError("config.json sets add_adapter: the adapter after the encoder is not implemented")
    if hf_config.get("adapter_attn_dim") is not None:
        raise ValueError("config.json sets adapter_attn_dim: attention adapters are not implemented")
    fields = {"model_type": model_type}
    defaults = dict(HF_DEFAULTS)
    if model_type == "hubert":
        defaults.update(HUBERT_DEFAULTS)
    if model_type == "wavlm":
        defaults.update(WAVLM_DEFAULTS)
    for key, default in defaults.items():
        value = hf_config.get(key, default)
        fields[key] = list(value) if isinstance(value, (list, tuple)) else value
    n_conv = hf_config.get("num_feat_extract_layers", len(fields["conv_dim"]))
    if not n_conv == len(fields["conv_dim"]) == len(fields["conv_kernel"]) == len(fields["conv_stride"]):
        raise ValueError(f"config.json: conv_dim, conv_kernel, conv_stride (and num_feat_extract_layers) must have "
                         f"one entry per conv layer; got {fields['conv_dim']}, {fields['conv_kernel']}, "
                         f"{fields['conv_stride']}, {n_conv}")
    return fields


def small_config(model_type: str, large: bool = False, **overrides) -> dict:
    """A tiny Hugging Face-style config dict of one family, for demos and tests (hidden 32, two layers).

    Args:
        model_type: "wav2vec2", "hubert" or "wavlm".
        large: the large models' layout (LayerNorm after every conv with bias, pre-norm transformer) instead of
            the base models' (group norm on the first conv, no conv bias, post-norm).
        **overrides: any config field.

    Example:
        >>> encoder = SSLEncoder.from_hf_config(small_config("wavlm"), seed=0)
        >>> out = encoder(np.zeros((1, 1600), "float32"))
        >>> tuple(out["hidden_states"].shape)
        (3, 1, 79, 32)
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; choose one of {MODEL_TYPES}")
    config = {
        "model_type": model_type,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "conv_dim": [32, 32, 32],
        "conv_kernel": [10, 3, 3],
        "conv_stride": [5, 2, 2],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
        "feat_extract_norm": "layer" if large else "group",
        "do_stable_layer_norm": bool(large),
        "conv_bias": bool(large),
    }
    if model_type == "wavlm":
        config.update(num_buckets=32, max_bucket_distance=64)
    config.update(overrides)
    return config



def pad_clips(clips) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pads 1-D clips to the longest: (waveform `[n, longest]` float32, padding mask `[n, longest]` int32)."""
    longest = max(c.size for c in clips)
    waveform = np.zeros((len(clips), longest), np.float32)
    mask = np.zeros((len(clips), longest), np.int32)
    for row, clip in enumerate(clips):
        waveform[row, :clip.size] = clip
        mask[row, :clip.size] = 1
    return waveform, mask

@keras.saving.register_keras_serializable(package="exvo_keras")
class StackHiddenStates(layers.Layer):
    """Stacks ``layers + 1`` tensors ``[batch, frames, hidden]`` into ``[layers + 1, batch, frames, hidden]``."""

    def call(self, tensors):
        return ops.stack(tensors, axis=0)

    def compute_output_shape(self, input_shapes):
        return (len(input_shapes),) + tuple(input_shapes[0])


def _forward(get, config: dict, waveform, padding_mask=None):
    """The encoder graph on `waveform`, built from the layers `get(name)` returns.

    With a `padding_mask` (1 = sample, 0 = padding, right padding) every clip of the batch gets the result it
    would get alone: the first conv's group norm takes each clip's own statistics, padded frames are zeroed
    before the positional convolution (like the zero padding at a lone clip's end) and are never attended to.
    """
    norm = config["feat_extract_norm"]
    kernels, strides = config["conv_kernel"], config["conv_stride"]
    x = get("add_channel")(waveform)
    for i in range(len(config["conv_dim"])):
        x = get(f"feature_conv_{i}")(x)
        if norm == "group" and i == 0:
            first_mask = None if padding_mask is None else LengthMask(kernels[:1], strides[:1])(padding_mask, x)
            x = get("feature_conv_0_norm")(x, frame_mask=first_mask)
        elif norm == "layer":
            x = get(f"feature_conv_{i}_norm")(x)
        x = get(f"feature_conv_{i}_act")(x)
    frame_mask = None if padding_mask is None else LengthMask(kernels, strides)(padding_mask, x)
    if config.get("feat_proj_layer_norm", True):
        x = get("feature_projection_norm")(x)
    x = get("feature_projection")(x)
    if frame_mask is not None:
        x = x * ops.expand_dims(frame_mask, -1)
    x = get("add_position")([x, get("pos_conv_embed")(x, frame_mask=frame_mask)])
    if not config["do_stable_layer_norm"]:
        x = get("encoder_norm")(x)
    position_bias = get("relative_position_bias")(x) if config["model_type"] == "wavlm" else None
    hidden = [x]
    for i in range(config["num_hidden_layers"]):
        x = get(f"encoder_layer_{i}")(x, key_mask=frame_mask, position_bias=position_bias)
        hidden.append(x)
    if config["do_stable_layer_norm"]:
        x = get("encoder_norm")(x)
        if config["final_norm_in_hidden_states"]:
            hidden[-1] = x
    if frame_mask is not None:
        keep = ops.expand_dims(frame_mask, -1)
        x = x * keep
        hidden = [h * keep for h in hidden]
    return {"last_hidden_state": x, "hidden_states": get("hidden_states")(hidden)}, frame_mask


@keras.saving.register_keras_serializable(package="exvo_keras")
class SSLEncoder(keras.Model):
    """Wav2Vec2 / HuBERT / WavLM encoder: waveform -> last hidden state and all hidden states.

    The arguments are Hugging Face's config fields (same names, same meaning); :meth:`from_hf_config` reads a
    ``config.json`` dict and :func:`exvo_keras.models.ssl.load_pretrained` also loads the checkpoint. Built
    from arguments alone the weights are random (seeded), e.g. for demos.

    Called on a float32 batch ``[batch, samples]`` (clips of equal length, no padding) it returns
    ``{"last_hidden_state": [batch, frames, hidden], "hidden_states": [layers + 1, batch, frames, hidden]}``,
    the tensors HF returns with ``output_hidden_states=True`` (see the module docstring for which entries are
    normalised). For clips of different lengths use :meth:`encode` (or :meth:`padded_model`), which gives each
    clip exactly what it gets alone.

    Memory: attention holds ``batch * heads * frames**2`` floats per layer (WavLM a few such tensors), with 50
    frames a second: 60 s of audio in a 16-head model is about 0.6 GB per tensor. The direct call has no
    guard; :meth:`encode` refuses clips over ``max_samples`` and batches long clips alone.

    Args:
        model_type: "wav2vec2", "hubert" or "wavlm".
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act, layer_norm_eps,
        feat_extract_norm ("group" or "layer"), feat_extract_activation, conv_dim, conv_kernel, conv_stride,
        conv_bias, num_conv_pos_embeddings, num_conv_pos_embedding_groups, do_stable_layer_norm,
        feat_proj_layer_norm (HuBERT), conv_pos_batch_norm (HuBERT), num_buckets and max_bucket_distance
        (WavLM), initializer_range: as in Hugging Face's configs.
        final_norm_in_hidden_states: pre-norm models only; put the final LayerNorm's output last in
            ``hidden_states`` as transformers 4.x did, instead of the last layer's raw output (transformers 5).
        seed: seed of the random initial weights.
        initialize_weights: False starts the weights at zero instead of drawing them, for a checkpoint loaded
            right after (drawing takes most of a large model's build time). Not part of the config.

    Example:
        >>> encoder = SSLEncoder.from_hf_config(small_config("hubert", large=True), seed=0)
        >>> out = encoder(np.zeros((2, 3200), "float32"))
        >>> tuple(out["last_hidden_state"].shape), encoder.frame_count(3200)
        ((2, 159, 32), 159)
        >>> [o["last_hidden_state"].shape for o in encoder.encode([np.zeros(3200), np.zeros(1600)])]
        [(159, 32), (79, 32)]
    """

    def __init__(self, model_type: str = "wav2vec2", hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, hidden_act: str = "gelu",
                 layer_norm_eps: float = 1e-5, feat_extract_norm: str = "group",
                 feat_extract_activation: str = "gelu", conv_dim=HF_DEFAULTS["conv_dim"],
                 conv_kernel=HF_DEFAULTS["conv_kernel"], conv_stride=HF_DEFAULTS["conv_stride"],
                 conv_bias: bool = False, num_conv_pos_embeddings: int = 128,
                 num_conv_pos_embedding_groups: int = 16, do_stable_layer_norm: bool = False,
                 feat_proj_layer_norm: bool = True, conv_pos_batch_norm: bool = False, num_buckets: int = 320,
                 max_bucket_distance: int = 800, initializer_range: float = 0.02,
                 final_norm_in_hidden_states: bool = False, seed: int | None = None,
                 initialize_weights: bool = True, **kwargs):
        if model_type not in MODEL_TYPES:
            raise ValueError(f"unknown model_type {model_type!r}; choose one of {MODEL_TYPES}")
        if feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {feat_extract_norm!r}")
        if not len(conv_dim) == len(conv_kernel) == len(conv_stride):
            raise ValueError("conv_dim, conv_kernel and conv_stride need one entry per conv layer")
        if model_type != "hubert" and (not feat_proj_layer_norm or conv_pos_batch_norm):
            raise ValueError("feat_proj_layer_norm=False and conv_pos_batch_norm=True exist in HuBERT only")
        config = {
            "model_type": model_type,
            "hidden_size": int(hidden_size),
            "num_hidden_layers": int(num_hidden_layers),
            "num_attention_heads": int(num_attention_heads),
            "intermediate_size": int(intermediate_size),
            "hidden_act": hidden_act,
            "layer_norm_eps": float(layer_norm_eps),
            "feat_extract_norm": feat_extract_norm,
            "feat_extract_activation": feat_extract_activation,
            "conv_dim": [int(c) for c in conv_dim],
            "conv_kernel": [int(k) for k in conv_kernel],
            "conv_stride": [int(s) for s in conv_stride],
            "conv_bias": bool(conv_bias),
            "num_conv_pos_embeddings": int(num_conv_pos_embeddings),
            "num_conv_pos_embedding_groups": int(num_conv_pos_embedding_groups),
            "do_stable_layer_norm": bool(do_stable_layer_norm),
            "feat_proj_layer_norm": bool(feat_proj_layer_norm),
            "conv_pos_batch_norm": bool(conv_pos_batch_norm),
            "num_buckets": int(num_buckets),
            "max_bucket_distance": int(max_bucket_distance),
            "initializer_range": float(initializer_range),
            "final_norm_in_hidden_states": bool(final_norm_in_hidden_states),
            "seed": seed,
        }
        blocks = self._make_layers(config, initialize_weights)
        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        outputs, _ = _forward(blocks.__getitem__, config, waveform)
        super().__init__(inputs=waveform, outputs=outputs, **kwargs)
        self._ssl_config = config
        for key, value in config.items():
            # Tuples: Keras would wrap a list attribute in a tracked list.
            setattr(self, key, tuple(value) if isinstance(value, list) else value)

    @staticmethod
    def _make_layers(c: dict, initialize: bool) -> dict:
        seed = c["seed"]
        std = c["initializer_range"] if initialize else None

        def seeded(offset):
            return None if seed is None else seed * 1000 + offset

        def he_normal(offset):
            return keras.initializers.HeNormal(seed=seeded(offset)) if initialize else "zeros"

        blocks = {"add_channel": layers.Reshape((-1, 1), name="add_channel")}
        conv_act = get_activation(c["feat_extract_activation"])
        for i, (dim, kernel, stride) in enumerate(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"])):
            blocks[f"feature_conv_{i}"] = layers.Conv1D(
                dim, kernel, strides=stride, use_bias=c["conv_bias"], padding="valid",
                kernel_initializer=he_normal(i), name=f"feature_conv_{i}")
            if c["feat_extract_norm"] == "group" and i == 0:
                blocks["feature_conv_0_norm"] = ChannelGroupNorm(epsilon=1e-5, name="feature_conv_0_norm")
            elif c["feat_extract_norm"] == "layer":
                # PyTorch's default eps: HF builds these LayerNorms without layer_norm_eps.
                blocks[f"feature_conv_{i}_norm"] = layers.LayerNormalization(epsilon=1e-5,
                                                                             name=f"feature_conv_{i}_norm")
            blocks[f"feature_conv_{i}_act"] = layers.Activation(conv_act, name=f"feature_conv_{i}_act")
        hidden, eps = c["hidden_size"], c["layer_norm_eps"]
        if c["feat_proj_layer_norm"]:
            blocks["feature_projection_norm"] = layers.LayerNormalization(epsilon=eps, name="feature_projection_norm")
        blocks["feature_projection"] = layers.Dense(
            hidden, kernel_initializer=normal_initializer(std, seeded(100)),
            name="feature_projection")
        kernel = c["num_conv_pos_embeddings"]
        blocks["pos_conv_embed"] = PositionalConvEmbedding(
            hidden, kernel, c["num_conv_pos_embedding_groups"], activation=c["feat_extract_activation"],
            batch_norm=c["conv_pos_batch_norm"],
            kernel_initializer=normal_initializer(2 * (1 / (kernel * hidden)) ** 0.5 if initialize else None,
                                                  seeded(101)),
            name="pos_conv_embed")
        blocks["add_position"] = layers.Add(name="add_position")
        blocks["encoder_norm"] = layers.LayerNormalization(epsilon=eps, name="encoder_norm")
        wavlm = c["model_type"] == "wavlm"
        if wavlm:
            blocks["relative_position_bias"] = RelativePositionBias(
                c["num_buckets"], c["max_bucket_distance"], c["num_attention_heads"],
                embeddings_initializer=normal_initializer(std, seeded(102)),
                name="relative_position_bias")
        for i in range(c["num_hidden_layers"]):
            blocks[f"encoder_layer_{i}"] = TransformerLayer(
                hidden, c["num_attention_heads"], c["intermediate_size"], activation=c["hidden_act"],
                layer_norm_epsilon=eps, pre_norm=c["do_stable_layer_norm"], gated_position_bias=wavlm,
                initializer_range=std, seed=seeded(200 + 20 * i), name=f"encoder_layer_{i}")
        blocks["hidden_states"] = StackHiddenStates(name="hidden_states")
        return blocks

    @classmethod
    def from_hf_config(cls, hf_config: dict, **kwargs) -> "SSLEncoder":
        """A randomly initialised encoder for a Hugging Face config dict; keyword arguments override fields."""
        return cls(**{**hf_config_fields(hf_config), **kwargs})

    # Lengths -------------------------------------------------------------------------------------------

    def frame_count(self, num_samples: int) -> int:
        """Frames the encoder gives for a clip of `num_samples` samples (0 when it is too short)."""
        n = int(num_samples)
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            n = (n - kernel) // stride + 1 if n >= kernel else 0
        return max(n, 0)

    @property
    def receptive_field(self) -> int:
        """Samples one frame sees: the shortest clip the encoder accepts (400 = 25 ms for the real models)."""
        n = 1
        for kernel, stride in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            n = (n - 1) * stride + kernel
        return n

    def attention_bytes(self, num_samples: int, batch: int = 1) -> int:
        """Bytes of one float32 attention-logit tensor ``[batch, heads, frames, frames]`` for such clips."""
        frames = self.frame_count(num_samples)
        return 4 * batch * self.num_attention_heads * frames * frames

    # Unequal lengths -----------------------------------------------------------------------------------

    def padded_model(self) -> keras.Model:
        """The same encoder (shared weights) for right-padded batches of clips of different lengths.

        Inputs: ``{"waveform": [batch, samples] float32, "padding_mask": [batch, samples]}`` with 1 for the
        samples of a clip and 0 for padding (HF's ``attention_mask``). Outputs: as the encoder, plus
        ``frame_mask`` ``[batch, frames]``; padded frames are zero in every output.

        Every clip gets, on its valid frames, what it gets alone (to float rounding), in every family: the group
        norm of "group" models takes each clip's own statistics over its valid frames. (HF's group-norm models
        instead take the statistics over the padding too, which is why HF advises not to pass them an
        attention_mask; for "layer" models this equals HF with ``attention_mask``.)

        Built on each call rather than stored: a sub-model kept as an attribute would be tracked and saved as a
        second copy of the layers.
        """
        by_name = {layer.name: layer for layer in self.layers}
        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        outputs, frame_mask = _forward(by_name.__getitem__, self._ssl_config, waveform, padding_mask)
        outputs["frame_mask"] = frame_mask
        return keras.Model({"waveform": waveform, "padding_mask": padding_mask}, outputs,
                           name=f"{self.name}_padded")

    def encode(self, clips, batch_size: int = 8, max_samples: int | None = DEFAULT_MAX_SAMPLES,
               max_batch_samples: int = DEFAULT_MAX_BATCH_SAMPLES) -> list[dict]:
        """Encodes clips of any lengths; each result equals that clip encoded alone (to float rounding).

        Clips are sorted by length and batched with zero padding and a padding mask (:meth:`padded_model`), so
        little compute goes to padding. A batch holds at most `batch_size` clips and at most
        `max_batch_samples` padded samples; a clip longer than that runs alone.

        Args:
            clips: 1-D float arrays (16 kHz waveform, normalised as the checkpoint expects).
            batch_size: clips per batch at most.
            max_samples: longest clip accepted (default 60 s); longer ones raise ValueError before any work,
                since attention memory grows with the square of the length. None lifts the limit.
            max_batch_samples: padded samples per batch at most.

        Returns:
            One dict per clip, in input order: ``last_hidden_state`` ``[frames, hidden]`` and ``hidden_states``
            ``[layers + 1, frames, hidden]``, numpy float32.
        """
        clips = [np.asarray(c, dtype=np.float32) for c in clips]
        for i, clip in enumerate(clips):
            if clip.ndim != 1:
                raise ValueError(f"clip {i} has shape {clip.shape}; expected a 1-D waveform")
            if clip.size < self.receptive_field:
                raise ValueError(f"clip {i} has {clip.size} samples; the encoder needs at least "
                                 f"{self.receptive_field} (one frame)")
            if max_samples is not None and clip.size > max_samples:
                gib = self.attention_bytes(clip.size) / 2**30
                raise ValueError(f"clip {i} has {clip.size} samples, over max_samples={max_samples}; one "
                                 f"attention tensor alone would take {gib:.1f} GiB. Pass max_samples=None to "
                                 "encode it anyway (it runs alone), or split it at pauses first.")
        order = sorted(range(len(clips)), key=lambda i: -clips[i].size)
        batches, current = [], []
        for i in order:
            longest = clips[current[0]].size if current else clips[i].size
            if current and (len(current) >= batch_size or (len(current) + 1) * longest > max_batch_samples):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)

        padded = self.padded_model() if batches else None
        results = [None] * len(clips)
        for batch in batches:
            waveform, mask = pad_clips([clips[i] for i in batch])
            out = padded({"waveform": waveform, "padding_mask": mask}, training=False)
            last = ops.convert_to_numpy(out["last_hidden_state"])
            hidden = ops.convert_to_numpy(out["hidden_states"])
            for row, i in enumerate(batch):
                frames = self.frame_count(clips[i].size)
                results[i] = {"last_hidden_state": last[row, :frames].copy(),
                              "hidden_states": hidden[:, row, :frames].copy()}
        return results

    def get_config(self):
        config = {key: list(v) if isinstance(v, (list, tuple)) else v for key, v in self._ssl_config.items()}
        return {"name": self.name, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
