"""Reads local Hugging Face checkpoints of Wav2Vec2, HuBERT and WavLM into :class:`SSLEncoder`, without PyTorch.

A checkpoint folder holds ``config.json`` and the weights as ``model.safetensors`` (read with
``safetensors.numpy``), ``pytorch_model.bin`` (a PyTorch zip archive, read by a restricted unpickler that
builds numpy arrays and refuses everything but tensors and ordered dicts), or sharded versions of either with
their ``*.index.json``. Nothing is downloaded.

Loading is strict: every tensor of the checkpoint is used exactly once, and a missing, unexpected or misshapen
tensor is an error that names it. The only tensors skipped are those of heads and training-only parts that
the base model does not use, listed in :data:`IGNORED_HEAD_PREFIXES` and :data:`IGNORED_BASE_TENSORS`.
Keys may carry the base-model prefix (``wav2vec2.``, ``hubert.``, ``wavlm.``, as in ``*ForCTC`` or
``*ForPreTraining`` checkpoints) or none (``*Model`` checkpoints).

The positional convolution's weight norm comes under either naming, ``conv.weight_g`` / ``conv.weight_v``
(older checkpoints) or ``conv.parametrizations.weight.original0`` / ``original1`` (newer), and is folded into a
plain kernel here: ``kernel = g * v / ||v||``, the norm over all axes but the kernel axis (``dim=2``).
"""

from __future__ import annotations

import collections
import json
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from exvo_keras.models.ssl.encoder import SSLEncoder

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "pytorch_model.bin"

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


class CheckpointError(ValueError):
    """A checkpoint that does not fit its config (names the missing, unexpected or misshapen tensors), or a file of
    it that cannot be read (names the file)."""


def _damaged(path: Path, detail: str) -> CheckpointError:
    # A half-written file is by far the likeliest cause (an interrupted download or copy of a large checkpoint),
    # and the same fix applies to any other corruption.
    return CheckpointError(f"{path}: {detail}; the file is truncated or corrupt (an interrupted download or copy?): "
                           "download or copy it again")


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise _damaged(path, f"not valid JSON ({err})") from None


def _bin_to_safetensors_hint(path: Path) -> str:
    folder = path.parent
    return (
        "Convert it once to safetensors where PyTorch is installed, e.g.\n"
        f"  cd {folder} && python -c \"import torch; from safetensors.torch import save_file; "
        f"sd = torch.load('{path.name}', map_location='cpu', weights_only=True); "
        "save_file({k: v.detach().clone().contiguous() for k, v in sd.items()}, 'model.safetensors')\"\n"
        "or with transformers: AutoModel.from_pretrained(folder).save_pretrained(out_folder) (add "
        "safe_serialization=True on transformers 4.x), then copy config.json along."
    )


# Reading ------------------------------------------------------------------------------------------------

def read_config(folder) -> dict:
    """``config.json`` of a checkpoint folder, as a dict."""
    folder = _checkpoint_folder(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}; supply the Hugging Face model folder's "
                                f"{CONFIG_FILE} next to its weights")
    config = _read_json(path)
    if not isinstance(config, dict):
        raise _damaged(path, f"not a JSON object but {type(config).__name__}")
    return config


def _checkpoint_folder(folder) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(
            f"checkpoint folder {folder} does not exist; supply a local Hugging Face model folder with "
            f"{CONFIG_FILE} and {SAFETENSORS_FILE} (or {TORCH_FILE}), e.g. one written by "
            "`huggingface-cli download microsoft/wavlm-large --local-dir DIR`; nothing is downloaded at run time")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is a file; pass the folder that holds {CONFIG_FILE} and the weights")
    return folder


def read_checkpoint(folder) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder as numpy arrays, by their checkpoint names.

    Looks for ``model.safetensors``, then ``model.safetensors.index.json`` (shards), ``pytorch_model.bin``,
    ``pytorch_model.bin.index.json``. Floating tensors in half precision are widened to float32.
    """
    folder = _checkpoint_folder(folder)
    candidates = [(SAFETENSORS_FILE, _read_safetensors), (TORCH_FILE, read_torch_zip)]
    for name, reader in candidates:
        if (folder / name).is_file():
            return reader(folder / name)
        index = folder / f"{name}.index.json"
        if index.is_file():
            weight_map = _read_json(index)
            if not isinstance(weight_map, dict) or not isinstance(weight_map.get("weight_map"), dict):
                raise _damaged(index, "has no weight_map object")
            shards = sorted(set(weight_map["weight_map"].values()))
            tensors = {}
            for shard in shards:
                tensors.update(reader(folder / shard))
            return tensors
    raise FileNotFoundError(f"{folder} has no weights: supply {SAFETENSORS_FILE} or {TORCH_FILE} "
                            "(or their sharded form with an .index.json) next to config.json")


def _widen(array: np.ndarray) -> np.ndarray:
    # bfloat16 arrives as ml_dtypes' numpy type once TensorFlow is imported (it registers it).
    return array.astype(np.float32) if array.dtype.name in ("float16", "bfloat16") else array


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return {k: _widen(v) for k, v in load_file(str(path)).items()}
    except (SafetensorError, TypeError, ValueError) as err:
        # numpy has no bfloat16, which safetensors.numpy cannot map; read those files by hand.
        if "bf16" not in str(err).lower() and "bfloat16" not in str(err).lower():
            if isinstance(err, SafetensorError):
                raise _damaged(path, f"not a readable safetensors file ({err})") from None
            raise
    return _read_safetensors_raw(path)


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors_raw(path: Path) -> dict[str, np.ndarray]:
    """The safetensors layout: 8-byte little-endian header length, JSON header, then the raw buffers."""
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    if len(data) < 8 or 8 + header_len > len(data):
        raise _damaged(path, f"the safetensors header is cut short ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + header_len])
    except ValueError as err:
        raise _damaged(path, f"the safetensors header is not valid JSON ({err})") from None
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if end > len(body):
            raise _damaged(path, f"tensor {name} reaches past the end of the file")
        if info["dtype"] == "BF16":
            array = _bfloat16_to_float32(np.frombuffer(body[start:end], dtype="<u2"))
        elif info["dtype"] in _SAFETENSORS_DTYPES:
            array = _widen(np.frombuffer(body[start:end], dtype=np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
                                         .newbyteorder("<")))
        else:
            raise CheckpointError(f"{path}: tensor {name} has dtype {info['dtype']}, which cannot be read")
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors


# PyTorch zip archives ------------------------------------------------------------------------------------

_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(CheckpointError):
    """A ``pytorch_model.bin`` that cannot be read without executing code or without PyTorch."""


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None):
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s == 0 for s in size):
        return np.zeros(size, storage.dtype)
    last = int(storage_offset) + sum((n - 1) * st for n, st in zip(size, stride))
    if storage_offset < 0 or any(st < 0 for st in stride) or last >= storage.size:
        raise UnsafeCheckpointError(f"a tensor of shape {size} reaches past its storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(storage[int(storage_offset):], shape=size,
                                           strides=tuple(st * storage.itemsize for st in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch state dict into numpy arrays; any other object in the pickle is refused.

    Only these globals resolve: ``collections.OrderedDict``, the storage types and
    ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``, all mapped to harmless numpy builders here, so
    the pickle cannot run code (the same whitelist idea as PyTorch's ``weights_only`` loader).
    """

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        raise UnsafeCheckpointError(f"the pickle refers to {module}.{name}, which is not a plain tensor")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"unknown persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        return self._load_storage(storage_type.name, str(key), int(numel))


def read_torch_zip(path) -> dict[str, np.ndarray]:
    """Tensors of a ``torch.save`` zip archive (``pytorch_model.bin``) as numpy arrays, without PyTorch.

    Raises :class:`UnsafeCheckpointError`, with a command that converts the file to safetensors, for the
    legacy (pre-zip) format or any pickle content other than a dict of tensors.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        with open(path, "rb") as f:
            head = f.read(2)
        # A zip cut short loses its central directory at the end but keeps its "PK" magic at the start (an empty
        # file keeps nothing); the legacy format starts with a pickle instead.
        if b"PK".startswith(head):
            raise _damaged(path, f"not a readable zip archive ({err})") from None
        raise UnsafeCheckpointError(f"{path} is not a PyTorch zip archive (perhaps the legacy format of "
                                    f"PyTorch < 1.6), which cannot be read without PyTorch.\n"
                                    f"{_bin_to_safetensors_hint(path)}") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise UnsafeCheckpointError(f"{path} is a zip file but not a PyTorch archive (no single data.pkl).\n"
                                        f"{_bin_to_safetensors_hint(path)}")
        root = pickles[0][: -len("data.pkl")]
        order = "<"
        if f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() == b"big":
            order = ">"

        def load_storage(type_name, key, numel):
            dtype = _TORCH_STORAGE_DTYPES[type_name]
            raw = archive.read(f"{root}data/{key}")
            if dtype == "bfloat16":
                array = _bfloat16_to_float32(np.frombuffer(raw, dtype=f"{order}u2"))
            else:
                array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(order))
            if array.size < numel:
                raise UnsafeCheckpointError(f"storage {key} holds {array.size} elements, expected {numel}")
            return array[:numel]

        try:
            with archive.open(pickles[0]) as f:
                state = _RestrictedUnpickler(f, load_storage).load()
        except UnsafeCheckpointError as err:
            raise UnsafeCheckpointError(f"{path}: {err}; refusing to unpickle it.\n"
                                        f"{_bin_to_safetensors_hint(path)}") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, pickle.UnpicklingError) as err:
            raise _damaged(path, f"a member of the archive cannot be read ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise UnsafeCheckpointError(f"{path} does not hold a flat state dict of tensors.\n"
                                    f"{_bin_to_safetensors_hint(path)}")
    return {str(k): _widen(v) for k, v in state.items()}


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
    for i in range(len(model.conv_dim)):
        conv = model.get_layer(f"feature_conv_{i}")
        prefix = f"feature_extractor.conv_layers.{i}"
        targets.append((f"{prefix}.conv.weight", conv.kernel, "conv"))
        if model.conv_bias:
            targets.append((f"{prefix}.conv.bias", conv.bias, "copy"))
        if model.feat_extract_norm == "layer" or i == 0:
            targets += _norm(f"{prefix}.layer_norm", model.get_layer(f"feature_conv_{i}_norm"))
    if model.feat_proj_layer_norm:
        targets += _norm("feature_projection.layer_norm", model.get_layer("feature_projection_norm"))
    targets += _dense("feature_projection.projection", model.get_layer("feature_projection"))
    pos = model.get_layer("pos_conv_embed")
    targets.append((f"{_POS_CONV}bias", pos.bias, "copy"))
    if model.conv_pos_batch_norm:
        targets += [("encoder.pos_conv_embed.batch_norm.weight", pos.bn_gamma, "copy"),
                    ("encoder.pos_conv_embed.batch_norm.bias", pos.bn_beta, "copy"),
                    ("encoder.pos_conv_embed.batch_norm.running_mean", pos.bn_moving_mean, "copy"),
                    ("encoder.pos_conv_embed.batch_norm.running_var", pos.bn_moving_variance, "copy")]
    targets += _norm("encoder.layer_norm", model.get_layer("encoder_norm"))
    if model.model_type == "wavlm":
        targets.append(("encoder.layers.0.attention.rel_attn_embed.weight",
                        model.get_layer("relative_position_bias").embeddings, "copy"))
    for i in range(model.num_hidden_layers):
        layer = model.get_layer(f"encoder_layer_{i}")
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

    pos = model.get_layer("pos_conv_embed")
    kernel_shape = _checkpoint_shape(pos.kernel.shape, "conv")
    if model.conv_pos_batch_norm:
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


def load_pretrained(path, **kwargs) -> SSLEncoder:
    """Loads a local Hugging Face Wav2Vec2, HuBERT or WavLM checkpoint folder as a Keras :class:`SSLEncoder`.

    Args:
        path: folder with ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (or shards).
            The family comes from ``config.json``'s ``model_type``.
        **kwargs: passed to :class:`SSLEncoder`, e.g. ``final_norm_in_hidden_states=True`` or ``name``.

    Returns:
        The encoder; called on ``[batch, samples]`` float32 it returns ``last_hidden_state`` and
        ``hidden_states`` as Hugging Face does with ``output_hidden_states=True``.

    Example:
        >>> encoder = load_pretrained("checkpoints/wavlm-large")  # doctest: +SKIP
        >>> out = encoder(np.zeros((1, 16000), "float32"))  # doctest: +SKIP
        >>> tuple(out["hidden_states"].shape)  # doctest: +SKIP
        (25, 1, 49, 1024)
    """
    folder = _checkpoint_folder(path)
    config = read_config(folder)
    kwargs.setdefault("name", f"{config.get('model_type', 'ssl')}_encoder")
    model = SSLEncoder.from_hf_config(config, initialize_weights=False, **kwargs)
    assign_checkpoint(model, read_checkpoint(folder), source=str(folder))
    return model
