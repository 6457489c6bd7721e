"""Wav2Vec2, HuBERT and WavLM encoders in Keras 3: one implementation, configured by Hugging Face's config fields.

The three families share their whole structure (HF's modeling_wav2vec2.py, modeling_hubert.py,
modeling_wavlm.py):

    waveform [batch, samples] (+ padding mask)
      -> do_normalize (the feature extractor's): each clip to zero mean and unit variance over its own samples
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

The padding mask is an input of the one graph, so a batch of clips of different lengths gives every clip what it
gets alone, and input normalisation (``do_normalize``, which most large checkpoints' feature extractors ask for)
runs under it, in the model, for every caller.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from exvo_keras.batching import length_batches, pad_clips
from exvo_keras.data.labels import MAX_SSL_SECONDS, SAMPLE_RATE
from exvo_keras.models.ssl.layers import (
    ChannelGroupNorm,
    ClipNormalization,
    LengthMask,
    PositionalConvEmbedding,
    RelativePositionBias,
    StackHiddenStates,
    TransformerLayer,
    get_activation,
    normal_initializer,
)
from exvo_keras.signal.pooling import masked_mean_std

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")

# The architecture fields this implementation reads, with transformers' defaults (the base architecture of all
# three families): the only place they are written.
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
FAMILY_DEFAULTS = {
    "wav2vec2": {},
    "hubert": {"feat_proj_layer_norm": True, "conv_pos_batch_norm": False},
    "wavlm": {"num_buckets": 320, "max_bucket_distance": 800},
}
_FIELD_DEFAULTS = {**HF_DEFAULTS, **{k: v for extra in FAMILY_DEFAULTS.values() for k, v in extra.items()}}

# A clip longer than this (60 s at 16 kHz) is refused by `encode` unless the caller lifts the limit: attention
# memory grows with the square of its length (see `SSLEncoder.attention_bytes`).
DEFAULT_MAX_SAMPLES = int(MAX_SSL_SECONDS * SAMPLE_RATE)
# `encode` puts at most this many (padded) samples in one batch, so a long clip runs alone.
DEFAULT_MAX_BATCH_SAMPLES = 80 * 16000


def _typed(key: str, value):
    default = _FIELD_DEFAULTS[key]
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, tuple):
        return [int(v) for v in value]
    return type(default)(value)


def hf_config_fields(hf_config: dict) -> dict:
    """The architecture of a Hugging Face ``config.json`` (as a dict): ``model_type`` and the fields its family
    reads, missing ones at transformers' defaults, typed canonically (so the same dict comes from a config file
    or from an encoder's ``get_config()``). These are :class:`SSLEncoder`'s architecture arguments.

    Raises ValueError for a model type other than wav2vec2, hubert or wavlm, for features the base model would
    apply that this port does not implement (adapters), and for inconsistent fields.

    Example:
        >>> hf_config_fields({"model_type": "wavlm", "hidden_size": 32})["num_buckets"]
        320
    """
    model_type = hf_config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type {model_type!r} is not supported; supported: {', '.join(MODEL_TYPES)}")
    if hf_config.get("add_adapter"):
        raise ValueError("config.json sets add_adapter: the adapter after the encoder is not implemented")
    if hf_config.get("adapter_attn_dim") is not None:
        raise ValueError("config.json sets adapter_attn_dim: attention adapters are not implemented")
    keys = list(HF_DEFAULTS) + list(FAMILY_DEFAULTS[model_type])
    fields = {"model_type": model_type, **{k: _typed(k, hf_config.get(k, _FIELD_DEFAULTS[k])) for k in keys}}
    n_conv = hf_config.get("num_feat_extract_layers", len(fields["conv_dim"]))
    if not n_conv == len(fields["conv_dim"]) == len(fields["conv_kernel"]) == len(fields["conv_stride"]):
        raise ValueError(f"config.json: conv_dim, conv_kernel, conv_stride (and num_feat_extract_layers) must have "
                         f"one entry per conv layer; got {fields['conv_dim']}, {fields['conv_kernel']}, "
                         f"{fields['conv_stride']}, {n_conv}")
    if fields["feat_extract_norm"] not in ("group", "layer"):
        raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {fields['feat_extract_norm']!r}")
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
        >>> out = encoder.encode([np.zeros(1600, "float32")])
        >>> out[0]["hidden_states"].shape
        (3, 79, 32)
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


def _architecture(model_type: str, kwargs: dict) -> dict:
    """Pops the architecture fields out of `kwargs` (what is left goes to keras.Model) and completes them."""
    given = {k: kwargs.pop(k) for k in list(kwargs) if k in _FIELD_DEFAULTS}
    for key in FAMILY_DEFAULTS["hubert"]:
        if model_type != "hubert" and key in given and _typed(key, given[key]) != _FIELD_DEFAULTS[key]:
            raise ValueError("feat_proj_layer_norm=False and conv_pos_batch_norm=True exist in HuBERT only")
    # Another family's fields are ignored, as HF's classes ignore them (an older encoder config kept them all).
    return hf_config_fields({"model_type": model_type, **given})


@keras.saving.register_keras_serializable(package="exvo_keras")
class SSLEncoder(keras.Model):
    """Wav2Vec2 / HuBERT / WavLM encoder: waveform and padding mask -> last hidden state and all hidden states.

    The architecture arguments are Hugging Face's config fields (same names, same meaning, transformers'
    defaults: :data:`HF_DEFAULTS`, :data:`FAMILY_DEFAULTS`); :meth:`from_hf_config` reads a ``config.json``
    dict and :func:`exvo_keras.models.ssl.load_pretrained` also loads the checkpoint. Built from arguments alone
    the weights are random (seeded), e.g. for demos.

    Inputs: ``{"waveform": [batch, samples] float32, "padding_mask": [batch, samples] int}``, the mask 1 for a
    clip's samples and 0 for right padding (HF's ``attention_mask``). Outputs: ``last_hidden_state``
    ``[batch, frames, hidden]``, ``hidden_states`` ``[layers + 1, batch, frames, hidden]`` (the tensors HF
    returns with ``output_hidden_states=True``; see the module docstring for which are normalised) and
    ``frame_mask`` ``[batch, frames]``; padded frames are zero in every output. Every clip gets, on its valid
    frames, what it gets alone (to float rounding): the group norm of "group" models takes each clip's own
    statistics over its valid frames (HF's group-norm models take them over the padding too, which is why HF
    advises not to pass them an attention_mask; for "layer" models this equals HF with ``attention_mask``).
    :meth:`encode` does the padding and batching for a list of clips.

    Memory: attention holds ``batch * heads * frames**2`` floats per layer (WavLM a few such tensors), with 50
    frames a second: 60 s of audio in a 16-head model is about 0.6 GB per tensor. The direct call has no
    guard; :meth:`encode` refuses clips over ``max_samples`` and batches long clips alone.

    Args:
        model_type: "wav2vec2", "hubert" or "wavlm".
        do_normalize: normalise each clip to zero mean and unit variance over its valid samples first
            (``(x - mean) / sqrt(var + 1e-7)``, HF's ``Wav2Vec2FeatureExtractor``), as the checkpoint's
            ``preprocessor_config.json`` asks.
        final_norm_in_hidden_states: pre-norm models only; put the final LayerNorm's output last in
            ``hidden_states`` as transformers 4.x did, instead of the last layer's raw output (transformers 5).
        seed: seed of the random initial weights.
        initialize_weights: False starts the weights at zero instead of drawing them, for a checkpoint loaded
            right after (drawing takes most of a large model's build time). Not part of the config.
        **kwargs: the architecture fields (hidden_size, num_hidden_layers, num_attention_heads,
            intermediate_size, hidden_act, layer_norm_eps, feat_extract_norm ("group" or "layer"),
            feat_extract_activation, conv_dim, conv_kernel, conv_stride, conv_bias, num_conv_pos_embeddings,
            num_conv_pos_embedding_groups, do_stable_layer_norm, initializer_range; HuBERT's
            feat_proj_layer_norm and conv_pos_batch_norm; WavLM's num_buckets and max_bucket_distance), and
            keras.Model's (name, dtype, trainable).

    Example:
        >>> encoder = SSLEncoder.from_hf_config(small_config("hubert", large=True), seed=0)
        >>> out = encoder({"waveform": np.zeros((2, 3200), "float32"), "padding_mask": np.ones((2, 3200), "int32")})
        >>> tuple(out["last_hidden_state"].shape), encoder.frame_count(3200)
        ((2, 159, 32), 159)
        >>> [o["last_hidden_state"].shape for o in encoder.encode([np.zeros(3200), np.zeros(1600)])]
        [(159, 32), (79, 32)]
    """

    # Set by the loaders (`exvo_keras.models.ssl.provenance.attach`): where the weights come from.
    provenance = None

    def __init__(self, model_type: str = "wav2vec2", do_normalize: bool = False,
                 final_norm_in_hidden_states: bool = False, seed: int | None = None,
                 initialize_weights: bool = True, **kwargs):
        fields = _architecture(model_type, kwargs)
        pre_norm = fields["do_stable_layer_norm"]
        kernels, strides = fields["conv_kernel"], fields["conv_stride"]
        group_norm = fields["feat_extract_norm"] == "group"

        # === Layers ===
        std = fields["initializer_range"] if initialize_weights else None

        def seeded(offset):
            return None if seed is None else seed * 1000 + offset

        def he_normal(offset):
            return keras.initializers.HeNormal(seed=seeded(offset)) if initialize_weights else "zeros"

        # float32 under a mixed policy too: a clip's mean and variance over up to a million samples.
        self.input_normalization = ClipNormalization(name="input_normalization", dtype="float32") \
            if do_normalize else None
        self.add_channel = layers.Reshape((-1, 1), name="add_channel")
        self.feature_convs, self.feature_conv_norms, self.feature_conv_activations = [], [], []
        for i, (dim, kernel, stride) in enumerate(zip(fields["conv_dim"], kernels, strides)):
            self.feature_convs.append(layers.Conv1D(dim, kernel, strides=stride, use_bias=fields["conv_bias"],
                                                    padding="valid", kernel_initializer=he_normal(i),
                                                    name=f"feature_conv_{i}"))
            if group_norm and i == 0:
                self.feature_conv_norms.append(ChannelGroupNorm(epsilon=1e-5, name="feature_conv_0_norm"))
            elif not group_norm:
                # PyTorch's default eps: HF builds these LayerNorms without layer_norm_eps.
                self.feature_conv_norms.append(layers.LayerNormalization(epsilon=1e-5, name=f"feature_conv_{i}_norm"))
            self.feature_conv_activations.append(
                layers.Activation(get_activation(fields["feat_extract_activation"]), name=f"feature_conv_{i}_act"))
        self.first_conv_mask = LengthMask(kernels[:1], strides[:1], name="first_conv_mask") if group_norm else None
        self.frame_mask = LengthMask(kernels, strides, name="frame_mask")
        hidden, eps = fields["hidden_size"], fields["layer_norm_eps"]
        self.feature_projection_norm = layers.LayerNormalization(epsilon=eps, name="feature_projection_norm") \
            if fields.get("feat_proj_layer_norm", True) else None
        self.feature_projection = layers.Dense(hidden, kernel_initializer=normal_initializer(std, seeded(100)),
                                               name="feature_projection")
        pos_kernel = fields["num_conv_pos_embeddings"]
        self.pos_conv_embed = PositionalConvEmbedding(
            hidden, pos_kernel, fields["num_conv_pos_embedding_groups"],
            activation=fields["feat_extract_activation"], batch_norm=fields.get("conv_pos_batch_norm", False),
            kernel_initializer=normal_initializer(
                2 * (1 / (pos_kernel * hidden)) ** 0.5 if initialize_weights else None, seeded(101)),
            name="pos_conv_embed")
        self.add_position = layers.Add(name="add_position")
        self.encoder_norm = layers.LayerNormalization(epsilon=eps, name="encoder_norm")
        wavlm = model_type == "wavlm"
        self.relative_position_bias = RelativePositionBias(
            fields["num_buckets"], fields["max_bucket_distance"], fields["num_attention_heads"],
            embeddings_initializer=normal_initializer(std, seeded(102)),
            name="relative_position_bias") if wavlm else None
        self.encoder_layers = [
            TransformerLayer(hidden, fields["num_attention_heads"], fields["intermediate_size"],
                             activation=fields["hidden_act"], layer_norm_epsilon=eps, pre_norm=pre_norm,
                             gated_position_bias=wavlm, initializer_range=std, seed=seeded(200 + 20 * i),
                             name=f"encoder_layer_{i}")
            for i in range(fields["num_hidden_layers"])]
        self.stack_hidden_states = StackHiddenStates(name="hidden_states")

        # === Functional Model ===
        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        if self.input_normalization is None:
            # What a caller leaves in the padding then cannot reach the masked statistics.
            x = waveform * ops.cast(padding_mask, "float32")
        else:
            x = self.input_normalization(waveform, padding_mask)
        x = self.add_channel(x)
        for i, conv in enumerate(self.feature_convs):
            x = conv(x)
            if group_norm and i == 0:
                x = self.feature_conv_norms[0](x, frame_mask=self.first_conv_mask(padding_mask, x))
            elif not group_norm:
                x = self.feature_conv_norms[i](x)
            x = self.feature_conv_activations[i](x)
        frame_mask = self.frame_mask(padding_mask, x)
        keep = ops.expand_dims(frame_mask, -1)
        if self.feature_projection_norm is not None:
            x = self.feature_projection_norm(x)
        # Padded frames zeroed before the positional convolution: the zero padding a clip alone would see.
        x = self.feature_projection(x) * keep
        x = self.add_position([x, self.pos_conv_embed(x, frame_mask=frame_mask)])
        if not pre_norm:
            x = self.encoder_norm(x)
        position_bias = None if self.relative_position_bias is None else self.relative_position_bias(x)
        hidden_states = [x]
        for layer in self.encoder_layers:
            x = layer(x, key_mask=frame_mask, position_bias=position_bias)
            hidden_states.append(x)
        if pre_norm:
            x = self.encoder_norm(x)
            if final_norm_in_hidden_states:
                hidden_states[-1] = x
        super().__init__(
            inputs={"waveform": waveform, "padding_mask": padding_mask},
            outputs={"last_hidden_state": x * keep,
                     "hidden_states": self.stack_hidden_states([h * keep for h in hidden_states]),
                     "frame_mask": frame_mask},
            **kwargs)

        # === Config ===
        for key, value in fields.items():
            # Tuples: Keras would wrap a list attribute in a tracked list.
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.do_normalize = bool(do_normalize)
        self.final_norm_in_hidden_states = bool(final_norm_in_hidden_states)
        self.seed = seed

    @classmethod
    def from_hf_config(cls, hf_config: dict, **kwargs) -> "SSLEncoder":
        """A randomly initialised encoder for a Hugging Face config dict; keyword arguments override fields."""
        return cls(**{**hf_config_fields(hf_config), **kwargs})

    def get_config(self):
        config = super().get_config()
        config.update({key: list(getattr(self, key)) if isinstance(getattr(self, key), tuple) else getattr(self, key)
                       for key in hf_config_fields({"model_type": self.model_type})})
        config.update(do_normalize=self.do_normalize, final_norm_in_hidden_states=self.final_norm_in_hidden_states,
                      seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        # keras.Model's would rebuild a plain functional model from a layer graph; the arguments rebuild this one.
        return cls(**config)

    @property
    def precision(self) -> str:
        """The Keras dtype policy the encoder computes in ("float32", "mixed_float16", "mixed_bfloat16"): the
        global policy when it was built (`exvo_keras.devices`); its sensitive parts keep float32 regardless."""
        return self.feature_projection.dtype_policy.name

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

    # Utterance embeddings ------------------------------------------------------------------------------

    def pooled(self, inputs, layer="last"):
        """Mean and population std over each clip's valid frames of one tensor, ``[batch, 2 * hidden]`` float64:
        the utterance embedding the feature stores hold and the exported graphs compute.

        Args:
            inputs: the encoder's inputs, ``{"waveform", "padding_mask"}``.
            layer: "last" (``last_hidden_state``) or an index into ``hidden_states``.
        """
        out = self(inputs, training=False)
        frames = out["last_hidden_state"] if layer == "last" else out["hidden_states"][layer]
        return masked_mean_std(frames, out["frame_mask"])

    def pooled_layers(self, inputs, layer="last"):
        """One pass, two results: (:meth:`pooled` of `layer` ``[batch, 2 * hidden]``, and the same for every
        tensor of ``hidden_states``, ``[batch, layers + 1, 2 * hidden]``), float64.

        Each hidden state is pooled by the very ops :meth:`pooled` runs on it alone, so layer ``k`` here equals
        ``pooled(inputs, k)`` bit for bit: a store of every layer serves any layer choice later (SUPERB's layer
        sweeps and weighted sums) without running the encoder again.
        """
        out = self(inputs, training=False)
        frames = out["last_hidden_state"] if layer == "last" else out["hidden_states"][layer]
        every = [masked_mean_std(out["hidden_states"][i], out["frame_mask"]) for i in range(self.num_hidden_layers + 1)]
        return masked_mean_std(frames, out["frame_mask"]), ops.stack(every, axis=1)

    def pooled_function(self, layer="last", all_layers: bool = False):
        """:meth:`pooled` (or, with `all_layers`, :meth:`pooled_layers`) as a ``tf.function`` of (waveform
        ``[b, s]`` float32, padding_mask ``[b, s]`` int32), traced once per encoder and choice (a trace takes
        seconds) for batches of any shape."""
        import tensorflow as tf

        # Kept out of Keras' and TensorFlow's attribute tracking: a traced function is no state to save.
        traced = self.__dict__.setdefault("_pooled_functions", {})
        if (layer, all_layers) not in traced:
            signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.int32)]
            method = self.pooled_layers if all_layers else self.pooled
            traced[layer, all_layers] = tf.function(lambda waveform, padding_mask: method(
                {"waveform": waveform, "padding_mask": padding_mask}, layer), input_signature=signature)
        return traced[layer, all_layers]

    # Unequal lengths -----------------------------------------------------------------------------------

    def encode(self, clips, batch_size: int = 8, max_samples: int | None = DEFAULT_MAX_SAMPLES,
               max_batch_samples: int = DEFAULT_MAX_BATCH_SAMPLES) -> list[dict]:
        """Encodes clips of any lengths; each result equals that clip encoded alone (to float rounding).

        Clips are sorted by length and batched with zero padding and the padding mask
        (:func:`exvo_keras.batching.length_batches`), so little compute goes to padding. A batch holds at most
        `batch_size` clips and at most `max_batch_samples` padded samples; a clip longer than that runs alone.

        Args:
            clips: 1-D float arrays (16 kHz waveform; the encoder normalises them itself when do_normalize).
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
        results = [None] * len(clips)
        for batch in length_batches([c.size for c in clips], max_items=batch_size, max_samples=max_batch_samples):
            waveform, mask = pad_clips([clips[i] for i in batch])
            out = self({"waveform": waveform, "padding_mask": mask}, training=False)
            last = ops.convert_to_numpy(out["last_hidden_state"])
            hidden = ops.convert_to_numpy(out["hidden_states"])
            for row, i in enumerate(batch):
                frames = self.frame_count(clips[i].size)
                results[i] = {"last_hidden_state": last[row, :frames].copy(),
                              "hidden_states": hidden[:, row, :frames].copy()}
        return results
