"""The files of a local Hugging Face checkpoint folder: config, preprocessor config, weights and their digest.

A checkpoint folder holds ``config.json``, usually ``preprocessor_config.json`` (the feature extractor's
settings; ``do_normalize`` is the one that changes the numbers), and the weights as ``model.safetensors``
(read with ``safetensors.numpy``), ``pytorch_model.bin`` (a PyTorch zip archive, read by a restricted
unpickler that builds numpy arrays and refuses everything but tensors and ordered dicts), or sharded versions
of either with their ``*.index.json``. Nothing is downloaded and PyTorch is never imported.

Which files hold the weights is decided once (:func:`weight_files`), for reading them and for their digest
alike. Mapping the tensors onto the Keras model is :mod:`.convert`'s job.
"""

from __future__ import annotations

import collections
import hashlib
import json
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from exvo_keras.data.labels import SAMPLE_RATE

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "pytorch_model.bin"


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


# Folder, config and preprocessor config ------------------------------------------------------------------

def checkpoint_folder(folder) -> Path:
    """`folder` as a Path; FileNotFoundError, saying what to supply, when it is missing or a file."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(
            f"checkpoint folder {folder} does not exist; supply a local Hugging Face model folder with "
            f"{CONFIG_FILE} and {SAFETENSORS_FILE} (or {TORCH_FILE}), e.g. one written by "
            "`huggingface-cli download microsoft/wavlm-large --local-dir DIR`; nothing is downloaded at run time")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is a file; pass the folder that holds {CONFIG_FILE} and the weights")
    return folder


def read_config(folder) -> dict:
    """``config.json`` of a checkpoint folder, as a dict."""
    folder = checkpoint_folder(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}; supply the Hugging Face model folder's "
                                f"{CONFIG_FILE} next to its weights")
    config = _read_json(path)
    if not isinstance(config, dict):
        raise _damaged(path, f"not a JSON object but {type(config).__name__}")
    return config


def read_do_normalize(folder) -> bool | None:
    """Whether a checkpoint expects each clip normalised to zero mean and unit variance: ``preprocessor_config.json``
    (a file without the key means True, the feature extractor's default), else a ``do_normalize`` key of
    ``config.json``; None when neither says."""
    folder = checkpoint_folder(folder)
    path = folder / PREPROCESSOR_FILE
    if path.is_file():
        pre = _read_json(path)
        if not isinstance(pre, dict):
            raise _damaged(path, f"not a JSON object but {type(pre).__name__}")
        rate = pre.get("sampling_rate", SAMPLE_RATE)
        if int(rate) != SAMPLE_RATE:
            raise ValueError(f"{path}: sampling_rate {rate}; the corpus loader gives {SAMPLE_RATE} Hz")
        return bool(pre.get("do_normalize", True))
    config = read_config(folder)
    return bool(config["do_normalize"]) if "do_normalize" in config else None


def resolve_do_normalize(folder, override: bool | None = None) -> bool:
    """`override` when given, else what the checkpoint says (:func:`read_do_normalize`); a checkpoint that says
    nothing gets False, with a warning naming the file to add."""
    if override is not None:
        return bool(override)
    found = read_do_normalize(folder)
    if found is None:
        warnings.warn(f"{folder} has no {PREPROCESSOR_FILE}: clips go to the encoder unnormalised "
                      f"(do_normalize=False). Add the checkpoint's {PREPROCESSOR_FILE}, or say what it expects "
                      "(load_pretrained's do_normalize, extract_ssl's normalize).", stacklevel=3)
    return bool(found)


# Weight files --------------------------------------------------------------------------------------------

def weight_files(folder) -> tuple[Callable[[Path], dict[str, np.ndarray]], list[Path]]:
    """The reader of a checkpoint's weights and the files it reads, in order, the shard index first when sharded.

    Looks for ``model.safetensors``, then ``model.safetensors.index.json`` (shards), ``pytorch_model.bin``,
    ``pytorch_model.bin.index.json``.
    """
    folder = checkpoint_folder(folder)
    for name, reader in ((SAFETENSORS_FILE, _read_safetensors), (TORCH_FILE, read_torch_zip)):
        if (folder / name).is_file():
            return reader, [folder / name]
        index = folder / f"{name}.index.json"
        if index.is_file():
            weight_map = _read_json(index)
            if not isinstance(weight_map, dict) or not isinstance(weight_map.get("weight_map"), dict):
                raise _damaged(index, "has no weight_map object")
            return reader, [index] + [folder / s for s in sorted(set(weight_map["weight_map"].values()))]
    raise FileNotFoundError(f"{folder} has no weights: supply {SAFETENSORS_FILE} or {TORCH_FILE} "
                            "(or their sharded form with an .index.json) next to config.json")


def read_checkpoint(folder) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder as numpy arrays, by their checkpoint names (:func:`weight_files`).

    Floating tensors in half precision are widened to float32.
    """
    reader, files = weight_files(folder)
    tensors = {}
    for path in files:
        if not path.name.endswith(".index.json"):
            tensors.update(reader(path))
    return tensors


def checkpoint_digest(folder) -> str:
    """SHA-1 (16 hex digits) of a checkpoint's weight files (names and contents): about 1 s per GB."""
    h = hashlib.sha1()
    for path in weight_files(folder)[1]:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while block := f.read(1 << 23):
                h.update(block)
    return h.hexdigest()[:16]


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
