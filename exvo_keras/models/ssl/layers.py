"""Layers shared by the Wav2Vec2, HuBERT and WavLM encoders.

One set of layers serves all three families; they differ only in configuration (see :mod:`.encoder`):

- :class:`ChannelGroupNorm`: the group norm of the first feature-encoder conv in "group" models (one group per
  channel, i.e. each channel normalised over time), with an optional frame mask so padded batches keep each
  clip's own statistics.
- :class:`PositionalConvEmbedding`: the grouped convolution that acts as a relative positional embedding; its
  weight-normalised kernel is stored folded into one plain kernel.
- :class:`SelfAttention`: multi-head self-attention with an optional key mask and, for WavLM, an optional
  gated relative position bias.
- :class:`RelativePositionBias`: WavLM's bucketed relative position embedding, computed once per forward pass.
- :class:`TransformerLayer`: post-norm ("base") or pre-norm ("stable layer norm", "large") encoder layer.
- :class:`LengthMask`: sample-level padding mask -> frame-level mask after a stack of valid convolutions.
- :class:`ClipNormalization`: Hugging Face's ``do_normalize`` on a padded batch, each clip over its own samples.
- :class:`StackHiddenStates`: the per-layer outputs as one ``[layers + 1, batch, frames, hidden]`` tensor.

Tensors are channels-last: ``[batch, time, channels]``. Dropout is left out; these layers are for inference
and feature extraction (fine-tuning would need HF's dropout and LayerDrop added back).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from exvo_keras.signal.normalize import EPS as NORMALIZE_EPS
from exvo_keras.signal.normalize import normalize_clips

# Added to the attention logits of padded keys. Finite (not -inf) so that a row whose keys are all padding
# (a padded query of the shortest clip) gives a uniform softmax instead of NaN.
_MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="exvo_keras")
def gelu_exact(x):
    """GELU with the erf, as PyTorch's ``nn.functional.gelu`` (HF "gelu")."""
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="exvo_keras")
def gelu_tanh(x):
    """GELU's tanh approximation (HF "gelu_new", "gelu_pytorch_tanh")."""
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {
    "gelu": gelu_exact,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
    "swish": keras.activations.silu,
    "tanh": keras.activations.tanh,
}


def normal_initializer(stddev: float | None, seed: int | None, offset: int = 0):
    """A normal initialiser seeded with ``seed + offset`` (unseeded when ``seed`` is None); zeros for stddev None.

    Each weight gets its own initialiser: Keras gives identical values on every call of one seeded instance.
    Zeros serve models whose weights are loaded right away: drawing a large model's random weights takes most
    of its build time.
    """
    if stddev is None:
        return keras.initializers.Zeros()
    return keras.initializers.RandomNormal(stddev=stddev, seed=None if seed is None else seed + offset)


def get_activation(name: str):
    """The Keras function for a Hugging Face activation name (``hidden_act``, ``feat_extract_activation``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@keras.saving.register_keras_serializable(package="exvo_keras")
class ChannelGroupNorm(layers.Layer):
    """Group norm with one group per channel: each channel is normalised over time, then scaled and shifted.

    This is ``nn.GroupNorm(num_groups=C, num_channels=C)`` on ``[batch, C, time]``. Statistics run over the
    whole time axis, so zero padding would change them; with ``frame_mask`` they run over each clip's valid
    frames only, which makes a padded batch give every clip the result it gets alone.

    Args:
        epsilon: added to the variance (PyTorch's default 1e-5).

    Call args:
        x: ``[batch, time, channels]``.
        frame_mask: optional ``[batch, time]`` float, 1 for valid frames.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        # Read in float32 under a mixed policy too, with the statistics (see call).
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma", autocast=False)
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta", autocast=False)

    def call(self, x, frame_mask=None):
        # Statistics over thousands of frames lose most of their digits in half precision: computed in float32,
        # as Keras's LayerNormalization does, and returned in the layer's compute dtype.
        x = ops.cast(x, "float32")
        if frame_mask is None:
            mean = ops.mean(x, axis=1, keepdims=True)
            var = ops.mean(ops.square(x - mean), axis=1, keepdims=True)
        else:
            m = ops.expand_dims(ops.cast(frame_mask, x.dtype), -1)
            count = ops.maximum(ops.sum(m, axis=1, keepdims=True), 1.0)
            mean = ops.sum(x * m, axis=1, keepdims=True) / count
            var = ops.sum(ops.square((x - mean) * m), axis=1, keepdims=True) / count
        y = (x - mean) * ops.rsqrt(var + self.epsilon) * self.gamma + self.beta
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="exvo_keras")
class PositionalConvEmbedding(layers.Layer):
    """Grouped convolution over time whose output is added to the frames as a relative positional embedding.

    HF pads ``kernel_size // 2`` frames on both sides and, for an even kernel, drops the last output frame
    (``SamePadLayer``), so the output keeps the input's length. Padding ``kernel_size // 2`` on the left and one
    frame fewer on the right (even kernels) is the same computation. The checkpoint's kernel is weight-normalised
    (``g * v / ||v||``); the converter folds it into ``kernel``, so no normalisation runs here.

    HuBERT's ``conv_pos_batch_norm`` variant applies an inference-mode batch norm to the input instead of weight
    norm.

    The grouped convolution runs as one convolution per group: TensorFlow's CPU kernels have no grouped
    convolution and Keras would fall back to XLA, which recompiles for every new input length.

    Args:
        hidden_size: channels in and out.
        kernel_size: ``num_conv_pos_embeddings``.
        groups: ``num_conv_pos_embedding_groups``; divides ``hidden_size``.
        activation: name of the activation after the convolution (HF uses ``feat_extract_activation``).
        batch_norm: HuBERT's ``conv_pos_batch_norm``.
        batch_norm_epsilon: the batch norm's epsilon (PyTorch's default 1e-5).
        kernel_initializer: initializer of the (folded) kernel.

    Call args:
        x: ``[batch, time, hidden_size]``.
        frame_mask: optional ``[batch, time]``; with batch norm, padded frames are zeroed again after it, so
            that they look like the zero padding a clip alone would see.
    """

    def __init__(self, hidden_size: int, kernel_size: int, groups: int, activation: str = "gelu",
                 batch_norm: bool = False, batch_norm_epsilon: float = 1e-5, kernel_initializer="he_normal",
                 **kwargs):
        super().__init__(**kwargs)
        if hidden_size % groups:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by {groups} positional conv groups")
        self.hidden_size = int(hidden_size)
        self.kernel_size = int(kernel_size)
        self.groups = int(groups)
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.batch_norm_epsilon = float(batch_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation = get_activation(activation)

    def build(self, input_shape):
        per_group = self.hidden_size // self.groups
        self.kernel = self.add_weight(shape=(self.kernel_size, per_group, self.hidden_size),
                                      initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(self.hidden_size,), initializer="zeros", name="bias")
        if self.batch_norm:
            self.bn_gamma = self.add_weight(shape=(self.hidden_size,), initializer="ones", name="bn_gamma")
            self.bn_beta = self.add_weight(shape=(self.hidden_size,), initializer="zeros", name="bn_beta")
            self.bn_moving_mean = self.add_weight(shape=(self.hidden_size,), initializer="zeros",
                                                  trainable=False, name="bn_moving_mean")
            self.bn_moving_variance = self.add_weight(shape=(self.hidden_size,), initializer="ones",
                                                      trainable=False, name="bn_moving_variance")

    def call(self, x, frame_mask=None):
        if self.batch_norm:
            x = (x - self.bn_moving_mean) * ops.rsqrt(self.bn_moving_variance + self.batch_norm_epsilon)
            x = x * self.bn_gamma + self.bn_beta
            if frame_mask is not None:
                x = x * ops.expand_dims(ops.cast(frame_mask, x.dtype), -1)
        left = self.kernel_size // 2
        right = left - (1 if self.kernel_size % 2 == 0 else 0)
        x = ops.pad(x, [[0, 0], [left, right], [0, 0]])
        per_group = self.hidden_size // self.groups
        outputs = []
        for g in range(self.groups):
            chans = slice(g * per_group, (g + 1) * per_group)
            outputs.append(ops.conv(x[:, :, chans], self.kernel[:, :, chans], strides=1, padding="valid"))
        y = outputs[0] if self.groups == 1 else ops.concatenate(outputs, axis=-1)
        return self._activation(y + self.bias)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "kernel_size": self.kernel_size,
            "groups": self.groups,
            "activation": self.activation,
            "batch_norm": self.batch_norm,
            "batch_norm_epsilon": self.batch_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def relative_position_bucket_table(num_buckets: int, max_distance: int) -> np.ndarray:
    """Bucket of each distance ``|j - i|`` in ``0 .. max_distance`` (larger distances share the last bucket).

    WavLM's buckets (from T5): half of ``num_buckets`` per direction; distances below a quarter of
    ``num_buckets`` get a bucket each, larger ones share log-spaced buckets up to ``max_distance``. Computed in
    float32 step by step as HF does (``_relative_positions_bucket``), so the truncation to an integer lands on
    the same side; the exactness tests compare this table with HF's function.
    """
    half = num_buckets // 2
    max_exact = half // 2
    distance = np.arange(max_distance + 1)
    with np.errstate(divide="ignore"):
        large = np.log(distance.astype(np.float32) / np.float32(max_exact))
    large = large / np.float32(math.log(max_distance / max_exact))
    large = np.float32(max_exact) + large * np.float32(half - max_exact)
    large = np.where(np.isfinite(large), large, 0.0).astype(np.int64)
    large = np.minimum(large, half - 1)
    return np.where(distance < max_exact, distance, large).astype("int32")


@keras.saving.register_keras_serializable(package="exvo_keras")
class RelativePositionBias(layers.Layer):
    """WavLM's relative position bias ``[heads, time, time]``: an embedding per bucket of ``key - query``.

    HF computes it in the first encoder layer (the only one with ``rel_attn_embed``) and passes the same,
    ungated bias on to every layer, where each layer gates it with its own query-dependent gate.

    Args:
        num_buckets: ``num_buckets`` (half for keys after the query, half for keys at or before it).
        max_distance: ``max_bucket_distance``.
        num_heads: attention heads.
        embeddings_initializer: initializer of the ``[num_buckets, num_heads]`` table.

    Call args:
        x: any ``[batch, time, ...]`` tensor; only its length is read.
    """

    def __init__(self, num_buckets: int, max_distance: int, num_heads: int,
                 embeddings_initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.num_buckets = int(num_buckets)
        self.max_distance = int(max_distance)
        self.num_heads = int(num_heads)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self._table = relative_position_bucket_table(self.num_buckets, self.max_distance)

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.num_buckets, self.num_heads),
                                          initializer=self.embeddings_initializer, name="embeddings")

    def call(self, x):
        length = ops.shape(x)[1]
        positions = ops.arange(length, dtype="int32")
        relative = ops.expand_dims(positions, 0) - ops.expand_dims(positions, 1)  # [query, key]: key - query
        distance = ops.minimum(ops.abs(relative), self.max_distance)
        buckets = ops.take(ops.convert_to_tensor(self._table), distance)
        buckets = buckets + ops.cast(relative > 0, "int32") * (self.num_buckets // 2)
        values = ops.take(self.embeddings, buckets, axis=0)  # [query, key, heads]
        return ops.transpose(values, (2, 0, 1))

    def compute_output_shape(self, input_shape):
        return (self.num_heads, input_shape[1], input_shape[1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_buckets": self.num_buckets,
            "max_distance": self.max_distance,
            "num_heads": self.num_heads,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


@keras.saving.register_keras_serializable(package="exvo_keras")
class SelfAttention(layers.Layer):
    """Multi-head self-attention (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``, all with bias).

    With ``gated_position_bias`` (WavLM) the layer also owns ``gru_rel_pos_linear`` (``head_dim -> 8``) and
    ``gru_rel_pos_const`` (one per head) and adds ``gate * position_bias`` to the logits. The gate depends on
    the query frame and head: the layer's input, split into heads, goes through the linear map, its 8 outputs
    are summed in two groups of 4 and squashed, ``a, b = sigmoid(...)``, and ``gate = a * (b * const - 1) + 2``.

    Args:
        hidden_size: model width.
        num_heads: heads; divides ``hidden_size``.
        gated_position_bias: WavLM's gated relative position bias.
        initializer_range: standard deviation of the normal initialiser of the projections (HF's
            ``initializer_range``), for randomly initialised encoders; None starts them at zero.
        seed: seed of those initialisers (each projection derives its own); None draws them unseeded.

    Call args:
        x: ``[batch, time, hidden_size]``.
        key_mask: optional ``[batch, time]``, 1 for frames that may be attended to.
        position_bias: ``[heads, time, time]`` (WavLM), or None.
    """

    def __init__(self, hidden_size: int, num_heads: int, gated_position_bias: bool = False,
                 initializer_range: float | None = 0.02, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}")
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.head_dim = self.hidden_size // self.num_heads
        self.gated_position_bias = bool(gated_position_bias)
        self.initializer_range = None if initializer_range is None else float(initializer_range)
        self.seed = seed

        def dense(units, name, offset):
            init = normal_initializer(self.initializer_range, seed, offset)
            return layers.Dense(units, kernel_initializer=init, name=name)

        self.q_proj = dense(self.hidden_size, "q_proj", 0)
        self.k_proj = dense(self.hidden_size, "k_proj", 1)
        self.v_proj = dense(self.hidden_size, "v_proj", 2)
        self.out_proj = dense(self.hidden_size, "out_proj", 3)
        if self.gated_position_bias:
            self.gru_rel_pos_linear = dense(8, "gru_rel_pos_linear", 4)

    def build(self, input_shape):
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            proj.build(input_shape)
        if self.gated_position_bias:
            self.gru_rel_pos_linear.build((None, None, self.num_heads, self.head_dim))
            self.gru_rel_pos_const = self.add_weight(shape=(self.num_heads,), initializer="ones",
                                                     name="gru_rel_pos_const")

    def _split_heads(self, y, batch, length):
        return ops.transpose(ops.reshape(y, (batch, length, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, x, key_mask=None, position_bias=None):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        q = self._split_heads(self.q_proj(x), batch, length) * (self.head_dim ** -0.5)
        k = self._split_heads(self.k_proj(x), batch, length)
        v = self._split_heads(self.v_proj(x), batch, length)
        logits = ops.cast(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), "float32")  # [batch, heads, query, key]
        if position_bias is not None:
            bias = ops.expand_dims(position_bias, 0)
            if self.gated_position_bias:
                g = self.gru_rel_pos_linear(ops.reshape(x, (batch, length, self.num_heads, self.head_dim)))
                g = ops.sigmoid(ops.sum(ops.reshape(g, (batch, length, self.num_heads, 2, 4)), axis=-1))
                gate = g[..., 0] * (g[..., 1] * self.gru_rel_pos_const - 1.0) + 2.0  # [batch, query, heads]
                bias = ops.expand_dims(ops.transpose(gate, (0, 2, 1)), -1) * bias
            logits = logits + ops.cast(bias, "float32")
        if key_mask is not None:
            keep = ops.expand_dims(ops.expand_dims(ops.cast(key_mask, "bool"), 1), 1)
            logits = ops.where(keep, logits, ops.cast(_MASKED_LOGIT, logits.dtype))
        # The softmax in float32 under a mixed policy: its sum over hundreds of keys, and _MASKED_LOGIT, which
        # float16 would turn into -inf. The weights go back to the compute dtype for the product with v.
        weights = ops.cast(ops.softmax(logits, axis=-1), v.dtype)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        return self.out_proj(ops.reshape(out, (batch, length, self.hidden_size)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "gated_position_bias": self.gated_position_bias,
            "initializer_range": self.initializer_range,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="exvo_keras")
class TransformerLayer(layers.Layer):
    """One encoder layer: self-attention and a feed-forward block, each with a residual connection.

    - post-norm (``pre_norm=False``, HF ``do_stable_layer_norm=False``, the base models):
      ``h = LN(x + attn(x))``, ``y = LN_final(h + ff(h))``.
    - pre-norm (``pre_norm=True``, "stable layer norm", the large models):
      ``h = x + attn(LN(x))``, ``y = h + ff(LN_final(h))``.

    Sublayer names follow HF: ``attention``, ``layer_norm``, ``intermediate_dense``, ``output_dense``,
    ``final_layer_norm``.

    Args:
        hidden_size, num_heads, intermediate_size: widths.
        activation: HF name of the feed-forward activation (``hidden_act``).
        layer_norm_epsilon: ``layer_norm_eps``.
        pre_norm: ``do_stable_layer_norm``.
        gated_position_bias: WavLM.
        initializer_range, seed: as :class:`SelfAttention` (random initialisation only).

    Call args:
        x: ``[batch, time, hidden_size]``; key_mask, position_bias: as :class:`SelfAttention`.
    """

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, activation: str = "gelu",
                 layer_norm_epsilon: float = 1e-5, pre_norm: bool = False, gated_position_bias: bool = False,
                 initializer_range: float | None = 0.02, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.intermediate_size = int(intermediate_size)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.pre_norm = bool(pre_norm)
        self.gated_position_bias = bool(gated_position_bias)
        self.initializer_range = None if initializer_range is None else float(initializer_range)
        self.seed = seed

        self.attention = SelfAttention(hidden_size, num_heads, gated_position_bias=gated_position_bias,
                                       initializer_range=initializer_range,
                                       seed=None if seed is None else seed + 10, name="attention")
        self.layer_norm = layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="layer_norm")
        self.intermediate_dense = layers.Dense(
            intermediate_size, activation=get_activation(activation),
            kernel_initializer=normal_initializer(initializer_range, seed, 0), name="intermediate_dense")
        self.output_dense = layers.Dense(hidden_size, kernel_initializer=normal_initializer(initializer_range, seed, 1),
                                         name="output_dense")
        self.final_layer_norm = layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="final_layer_norm")

    def build(self, input_shape):
        self.attention.build(input_shape)
        self.layer_norm.build(input_shape)
        self.intermediate_dense.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_size,))
        self.final_layer_norm.build(input_shape)

    def _feed_forward(self, x):
        return self.output_dense(self.intermediate_dense(x))

    def call(self, x, key_mask=None, position_bias=None):
        if self.pre_norm:
            h = x + self.attention(self.layer_norm(x), key_mask=key_mask, position_bias=position_bias)
            return h + self._feed_forward(self.final_layer_norm(h))
        h = self.layer_norm(x + self.attention(x, key_mask=key_mask, position_bias=position_bias))
        return self.final_layer_norm(h + self._feed_forward(h))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "pre_norm": self.pre_norm,
            "gated_position_bias": self.gated_position_bias,
            "initializer_range": self.initializer_range,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="exvo_keras")
class LengthMask(layers.Layer):
    """Frame mask ``[batch, frames]`` after a stack of valid 1-D convolutions, from a sample-level padding mask.

    A clip's valid sample count is the sum of its padding mask (1 = sample, 0 = padding; HF's
    ``attention_mask``, right padding). Each valid convolution maps ``n`` to ``(n - kernel) // stride + 1``
    frames (HF's ``_get_feat_extract_output_lengths``); exactly those frames see no padding.

    Args:
        kernels, strides: the convolutions' kernel sizes and strides, in order.

    Call args:
        padding_mask: ``[batch, samples]``.
        reference: the convolutions' output ``[batch, frames, ...]``; only its length is read.
    """

    def __init__(self, kernels, strides, **kwargs):
        super().__init__(**kwargs)
        self.kernels = [int(k) for k in kernels]
        self.strides = [int(s) for s in strides]

    def call(self, padding_mask, reference):
        lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=1)
        for kernel, stride in zip(self.kernels, self.strides):
            lengths = ops.floor_divide(lengths - kernel, stride) + 1
        frames = ops.arange(ops.shape(reference)[1], dtype="int32")
        return ops.cast(ops.expand_dims(frames, 0) < ops.expand_dims(lengths, 1), "float32")

    def compute_output_shape(self, padding_mask_shape, reference_shape):
        return (reference_shape[0], reference_shape[1])

    def get_config(self):
        return {**super().get_config(), "kernels": self.kernels, "strides": self.strides}


@keras.saving.register_keras_serializable(package="exvo_keras")
class ClipNormalization(layers.Layer):
    """Each clip of a padded batch to zero mean and unit variance over its own samples, padding kept at zero.

    The checkpoint feature extractor's ``do_normalize`` (``Wav2Vec2FeatureExtractor``), computed by
    :func:`exvo_keras.signal.normalize.normalize_clips`, the one implementation extraction and the exported
    graphs share. TensorFlow ops inside: this project runs Keras on the TensorFlow backend.

    Args:
        epsilon: added to the variance (Hugging Face's 1e-7).

    Call args:
        waveform: ``[batch, samples]`` float.
        padding_mask: ``[batch, samples]``, 1 for a clip's samples, 0 for padding.
    """

    def __init__(self, epsilon: float = NORMALIZE_EPS, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, waveform, padding_mask):
        return normalize_clips(waveform, padding_mask, self.epsilon)

    def compute_output_shape(self, waveform_shape, padding_mask_shape):
        return waveform_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="exvo_keras")
class StackHiddenStates(layers.Layer):
    """Stacks ``layers + 1`` tensors ``[batch, frames, hidden]`` into ``[layers + 1, batch, frames, hidden]``."""

    def call(self, tensors):
        return ops.stack(tensors, axis=0)

    def compute_output_shape(self, input_shapes):
        return (len(input_shapes),) + tuple(input_shapes[0])
