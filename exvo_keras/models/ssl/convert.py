"""Maps a Hugging Face Wav2Vec2, HuBERT or WavLM checkpoint onto :class:`SSLEncoder`, and loads one.

Loading is strict: every tensor of the checkpoint is used exactly once, and a missing, unexpected or misshapen
tensor is an error that names it. The only tensors skipped are those of heads and training-only parts that
the base model does not use, listed in :data:`IGNORED_HEAD_PREFIXES` and :data:`IGNORED_BASE_TENSORS`.
Keys may carry the base-model prefix (``wav2vec2.``, ``hubert.``, ``wavlm.``, as in ``*ForCTC`` or
``*ForPreTraining`` checkpoints) or none (``*Model`` checkpoints). Reading the files is :mod:`.checkpoint`'s job.

The positional convolution's weight norm comes under either naming, ``conv.weight_g`` / ``conv.weight_v``
(older checkpoints) or ``conv.parametrizations.weight.original0`` / ``original1`` (newer), and is folded into a
plain kernel here: ``kernel = g * v / ||v||``, the norm over all axes but the kernel axis (``dim=2``).
"""

from __future__ import annotations

import numpy as np

from exvo_keras.models.ssl.checkpoint import (
    CheckpointError,
    checkpoint_digest,
    checkpoint_folder,
    read_checkpoint,
    read_config,
    resolve_do_normalize,
)
from exvo_keras.models.ssl.encoder import SSLEncoder, hf_config_fields
from exvo_keras.models.ssl.provenance import Provenance, attach

# Top-level modules of HF's task models around the base model: unused by the encoder.
IGNORED_HEAD_PREFIXES = (
    "quantizer.",  # *ForPreTraining: Gumbel quantizer of the contrastive task
    "project_q.",  # *ForPreTraining: projection of the quantized targets
    "project_hid.",  # *ForPreTraining: projection of the context vectors
    "lm_head.",  # *ForCTC
    "projector.",  # *ForSequenceClassification
    "classifier.",  # *ForSequenceClassification, *ForAudioFrameClassification
    "layer_weights",  # use_weighted_layer_sum of the classification heads
)
# Tensors of the base model that inference does not use.
IGNORED_BASE_TENSORS = (
    "masked_spec_embed",  # SpecAugment's mask vector, training only
    "encoder.pos_conv_embed.batch_norm.num_batches_tracked",  # a step counter (HuBERT conv_pos_batch_norm)
)
BASE_PREFIXES = ("wav2vec2.", "hubert.", "wavlm.")

_POS_CONV = "encoder.pos_conv_embed.conv."
_WEIGHT_NORM_NAMES = (("parametrizations.weight.original0", "parametrizations.weight.original1"),
                      ("weight_g", "weight_v"))



# Mapping onto the Keras model -----------------------------------------------------------------------------

def _dense(name, layer):
    return [(f"{name}.weight", layer.kernel, "transpose"), (f"{name}.bias", layer.bias, "copy")]


def _norm(name, layer):
    return [(f"{name}.weight", layer.gamma, "copy"), (f"{name}.bias", layer.beta, "copy")]


def weight_targets(model: SSLEncoder) -> list[tuple[str, object, str]]:
    """``(checkpoint name, Keras variable, transform)`` for every tensor but the positional conv's kernel.

    Transforms: "copy"; "transpose" (Linear ``[out, in]`` -> Dense ``[in, out]``); "conv" (Conv1d
    ``[out, in, k]`` -> Conv1D ``[k, in, out]``); "heads" (WavLM's ``gru_rel_pos_const`` ``[1, heads, 1, 1]``).
    """
    targets = []
    for i, conv in enumerate(model.feature_convs):
        prefix = f"feature_extractor.conv_layers.{i}"
        targets.append((f"{prefix}.conv.weight", conv.kernel, "conv"))
        if model.conv_bias:
            targets.append((f"{prefix}.conv.bias", conv.bias, "copy"))
        if i < len(model.feature_conv_norms):  # every conv in "layer" models, the first in "group" ones
            targets += _norm(f"{prefix}.layer_norm", model.feature_conv_norms[i])
    if model.feature_projection_norm is not None:
        targets += _norm("feature_projection.layer_norm", model.feature_projection_norm)
    targets += _dense("feature_projection.projection", model.feature_projection)
    pos = model.pos_conv_embed
    targets.append((f"{_POS_CONV}bias", pos.bias, "copy"))
    if pos.batch_norm:
        targets += [("encoder.pos_conv_embed.batch_norm.weight", pos.bn_gamma, "copy"),
                    ("encoder.pos_conv_embed.batch_norm.bias", pos.bn_beta, "copy"),
                    ("encoder.pos_conv_embed.batch_norm.running_mean", pos.bn_moving_mean, "copy"),
                    ("encoder.pos_conv_embed.batch_norm.running_var", pos.bn_moving_variance, "copy")]
    targets += _norm("encoder.layer_norm", model.encoder_norm)
    if model.relative_position_bias is not None:
        targets.append(("encoder.layers.0.attention.rel_attn_embed.weight", model.relative_position_bias.embeddings,
                        "copy"))
    for i, layer in enumerate(model.encoder_layers):
        prefix = f"encoder.layers.{i}"
        attention = layer.attention
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            targets += _dense(f"{prefix}.attention.{proj}", getattr(attention, proj))
        if attention.gated_position_bias:
            targets += _dense(f"{prefix}.attention.gru_rel_pos_linear", attention.gru_rel_pos_linear)
            targets.append((f"{prefix}.attention.gru_rel_pos_const", attention.gru_rel_pos_const, "heads"))
        targets += _norm(f"{prefix}.layer_norm", layer.layer_norm)
        targets += _dense(f"{prefix}.feed_forward.intermediate_dense", layer.intermediate_dense)
        targets += _dense(f"{prefix}.feed_forward.output_dense", layer.output_dense)
        targets += _norm(f"{prefix}.final_layer_norm", layer.final_layer_norm)
    return targets


def _checkpoint_shape(variable_shape, transform):
    shape = tuple(variable_shape)
    if transform == "transpose":
        return shape[::-1]
    if transform == "conv":
        return (shape[2], shape[1], shape[0])
    if transform == "heads":
        return (1, shape[0], 1, 1)
    return shape


def _to_variable(array, transform):
    if transform in ("transpose", "conv"):
        return np.transpose(array)  # reverses the axes: [out, in] -> [in, out], [out, in, k] -> [k, in, out]
    if transform == "heads":
        return array.reshape(-1)
    return array


def fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``g * v / ||v||`` with the norm over every axis but the last (PyTorch ``weight_norm(dim=2)``)."""
    v64 = v.astype(np.float64)
    norm = np.sqrt(np.sum(v64 * v64, axis=(0, 1), keepdims=True))
    return (g.astype(np.float64) * v64 / norm).astype(np.float32)


def _split_base(tensors: dict, model_type: str) -> tuple[dict, list]:
    """(base-model tensors without prefix, names of the tensors outside the base model)."""
    prefixes = [f"{model_type}."] + [p for p in BASE_PREFIXES if p != f"{model_type}."]
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in tensors):
            base = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            return base, [k for k in tensors if not k.startswith(prefix)]
    return dict(tensors), []


def _listing(title, items, limit=30):
    shown = "\n".join(f"  {item}" for item in items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{title} ({len(items)}):\n{shown}{more}"


def assign_checkpoint(model: SSLEncoder, tensors: dict[str, np.ndarray], source: str = "checkpoint") -> None:
    """Copies checkpoint tensors into `model`; every tensor must be used once or be a listed head.

    Raises :class:`CheckpointError` naming every missing, unexpected and misshapen tensor.
    """
    base, outside = _split_base(tensors, model.model_type)
    missing, shapes, assignments, used = [], [], [], set()

    def fetch(name, expected_shape):
        if name not in base:
            missing.append(name)
            return None
        used.add(name)
        array = base[name]
        if tuple(array.shape) != tuple(expected_shape):
            shapes.append(f"{name}: checkpoint {tuple(array.shape)}, model expects {tuple(expected_shape)}")
            return None
        return array

    for name, variable, transform in weight_targets(model):
        array = fetch(name, _checkpoint_shape(variable.shape, transform))
        if array is not None:
            assignments.append((variable, _to_variable(array, transform)))

    pos = model.pos_conv_embed
    kernel_shape = _checkpoint_shape(pos.kernel.shape, "conv")
    if pos.batch_norm:
        weight = fetch(f"{_POS_CONV}weight", kernel_shape)
        if weight is not None:
            assignments.append((pos.kernel, _to_variable(weight, "conv")))
    else:
        found = [pair for pair in _WEIGHT_NORM_NAMES if any(_POS_CONV + n in base for n in pair)]
        if not found:
            missing.append(f"{_POS_CONV}parametrizations.weight.original0 and .original1 "
                           f"(or the older {_POS_CONV}weight_g and weight_v)")
        for g_name, v_name in found[:1]:
            g = fetch(_POS_CONV + g_name, (1, 1, kernel_shape[2]))
            v = fetch(_POS_CONV + v_name, kernel_shape)
            if g is not None and v is not None:
                assignments.append((pos.kernel, _to_variable(fold_weight_norm(g, v), "conv")))

    unexpected = [f"{name}" for name in base if name not in used and name not in IGNORED_BASE_TENSORS]
    unexpected += [name for name in outside if not name.startswith(IGNORED_HEAD_PREFIXES)]
    if missing or unexpected or shapes:
        parts = [f"{source} does not fit the {model.model_type} config"]
        if missing:
            parts.append(_listing("missing tensors", missing))
        if unexpected:
            parts.append(_listing("unexpected tensors", unexpected))
        if shapes:
            parts.append(_listing("tensors of the wrong shape", shapes))
        raise CheckpointError("\n".join(parts))
    for variable, value in assignments:
        variable.assign(np.asarray(value, dtype=np.float32))


def load_pretrained(path, do_normalize: bool | None = None, **kwargs) -> SSLEncoder:
    """Loads a local Hugging Face Wav2Vec2, HuBERT or WavLM checkpoint folder as a Keras :class:`SSLEncoder`.

    Args:
        path: folder with ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (or shards), and
            usually ``preprocessor_config.json``. The family comes from ``config.json``'s ``model_type``.
        do_normalize: whether the encoder normalises each clip first; None (default) takes the checkpoint's
            feature extractor setting (``preprocessor_config.json``; a folder that says nothing gets False,
            with a warning).
        **kwargs: passed to :class:`SSLEncoder`, e.g. ``final_norm_in_hidden_states=True`` or ``name``.

    Returns:
        The encoder, with its :class:`~exvo_keras.models.ssl.provenance.Provenance` (the digest of the weight
        files) attached as ``encoder.provenance``.

    Example:
        >>> encoder = load_pretrained("checkpoints/wavlm-large")  # doctest: +SKIP
        >>> encoder.encode([np.zeros(16000, "float32")])[0]["hidden_states"].shape  # doctest: +SKIP
        (25, 49, 1024)
    """
    folder = checkpoint_folder(path)
    fields = hf_config_fields(read_config(folder))
    tensors = read_checkpoint(folder)
    # After the files that can fail: a folder that cannot load gets its error alone, not a warning too.
    do_normalize = resolve_do_normalize(folder, do_normalize)
    kwargs.setdefault("name", f"{fields['model_type']}_encoder")
    model = SSLEncoder(**fields, do_normalize=do_normalize, initialize_weights=False, **kwargs)
    assign_checkpoint(model, tensors, source=str(folder))
    return attach(model, Provenance("checkpoint", do_normalize, digest=checkpoint_digest(folder), label=str(folder)))
