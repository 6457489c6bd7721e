"""Where training and extraction run: GPU memory growth, the devices (a distribution strategy) and the precision.

Order matters. TensorFlow fixes its devices the first time anything asks for them (a tensor, a model, a
dataset, ``tf.config.list_logical_devices``); after that, memory growth and logical devices can no longer be
set (RuntimeError). So a script calls :func:`configure` (memory growth, precision, strategy) before it builds
any model, tensor or dataset, and the CLI, whose parser touches no device, does the same before any command
(:func:`exvo_keras.cli.main`: memory growth first, then the precision and the strategy's scope around the
command).

Devices (``--devices``, :meth:`DeviceChoice.parse`)
    ``auto`` (default): all visible GPUs under a ``MirroredStrategy`` when there are several; otherwise the
    default strategy, i.e. TensorFlow's own placement (its first GPU when there is one, else the CPU).
    ``cpu``: the CPU, even when GPUs are visible.
    ``N``: the first N visible devices of the preferred kind (GPUs when any are visible, else CPUs).
    ``NAME,NAME,...``: those devices, e.g. ``GPU:0,GPU:1`` (``/gpu:1``, ``/device:GPU:1`` too).
    Several devices always mean a ``MirroredStrategy``: Keras's ``fit`` splits each batch across them and sums
    their gradients. Batch sizes stay global (256 windows are 128 per device on two), so one and several
    devices do the same arithmetic, up to float rounding in the order of the sums, and up to the epoch's last,
    partial batch, whose uneven parts weigh alike. Work that runs on one device (extraction, embedding) takes
    :func:`device_scope` instead; several GPUs share it as one process each (the README's "Several devices and
    machines").

Precision (``--mixed-precision``)
    ``float32`` (default), ``mixed_float16`` (the GPU choice: tensor cores, half the memory traffic; Keras
    scales the loss against float16 underflow) or ``mixed_bfloat16`` (float32's range, fewer digits; runs on
    CPUs too). Set as Keras's global dtype policy: every model built afterwards computes in that type while
    its variables stay float32, and the models keep their sensitive parts in float32 themselves (softmax
    outputs and attention weights, LayerNorm and group-norm statistics, the per-clip input normalisation,
    pooling, losses). It changes the numbers: SSL stores and frame-CNN run folders record it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MIXED_PRECISIONS = PRECISIONS[1:]
DEVICE_KINDS = ("auto", "cpu", "count", "names")


@dataclass(frozen=True)
class DeviceChoice:
    """What ``--devices`` and ``--mixed-precision`` asked for, parsed once; resolved against the visible
    devices only when used (:func:`strategy_for`, :func:`device_scope`), once memory growth is set.

    Attributes:
        kind: "auto", "cpu", "count" (the first `count` devices of the preferred kind) or "names".
        count: for kind "count".
        names: for kind "names": device types and indices as ``"GPU:0"``.
        precision: a Keras dtype policy name from :data:`PRECISIONS`.
    """

    kind: str = "auto"
    count: int = 0
    names: tuple[str, ...] = ()
    precision: str = "float32"

    @classmethod
    def parse(cls, devices: str | int = "auto", precision: str | None = None) -> "DeviceChoice":
        """``--devices`` text ("auto", "cpu", "2", "GPU:0,GPU:1") and a precision (None: float32).

        Raises ValueError naming what is wrong.

        Example:
            >>> DeviceChoice.parse("/gpu:0, gpu:1", "mixed_float16")
            DeviceChoice(kind='names', count=0, names=('GPU:0', 'GPU:1'), precision='mixed_float16')
        """
        precision = precision or "float32"
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        text = str(devices).strip()
        if text.lower() in ("auto", "cpu"):
            return cls(kind=text.lower(), precision=precision)
        if text.isdigit():
            if int(text) < 1:
                raise ValueError(f"--devices {text}: give at least one device")
            return cls(kind="count", count=int(text), precision=precision)
        names = tuple(_device_name(part) for part in text.split(",") if part.strip())
        if not names:
            raise ValueError(f"--devices {devices!r}: expected auto, cpu, a count or device names such as GPU:0,GPU:1")
        if len(set(names)) != len(names):
            raise ValueError(f"--devices {devices!r} names a device twice")
        return cls(kind="names", names=names, precision=precision)

    def __str__(self) -> str:
        return {"count": str(self.count), "names": ",".join(self.names)}.get(self.kind, self.kind)


def _device_name(text: str) -> str:
    """"gpu:1", "/GPU:1", "/device:GPU:1" or a full logical-device name -> "GPU:1"."""
    import tensorflow as tf

    try:
        spec = tf.DeviceSpec.from_string(text.strip())
    except ValueError:
        spec = None
    if spec is None or spec.device_type is None or spec.device_index is None:
        raise ValueError(f"device {text.strip()!r}: expected a type and an index, e.g. GPU:0 or CPU:0")
    return f"{spec.device_type.upper()}:{spec.device_index}"


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")  # physical: listing them initialises nothing


def enable_memory_growth() -> list[str]:
    """Turns on memory growth for every visible GPU; returns their names.

    Without it TensorFlow maps nearly all of a GPU's memory when it starts, so a second process on the same
    GPU (an extraction shard beside a training run) fails, and memory figures say nothing about the model.
    Raises RuntimeError, saying what to do, when TensorFlow has already initialised its devices.
    """
    import tensorflow as tf

    gpus = _gpus()
    for gpu in gpus:
        if tf.config.experimental.get_memory_growth(gpu):
            continue  # set already: a second configure() is harmless
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:
            raise RuntimeError(f"{gpu.name}: GPU memory growth can only be set before TensorFlow initialises its "
                               "devices; call exvo_keras.devices.configure() before building any model, tensor "
                               "or dataset") from exc
    return [gpu.name for gpu in gpus]


@contextlib.contextmanager
def precision(policy: str):
    """Keras's global dtype policy set to `policy` inside, the previous one restored after: models built inside
    compute in `policy` (and keep it: a model's layers take the policy once, when built)."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    _set_precision(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _set_precision(policy: str) -> None:
    import keras

    if policy not in PRECISIONS:
        raise ValueError(f"precision {policy!r}: choose one of {', '.join(PRECISIONS)}")
    if policy == "mixed_float16" and not _gpus():
        # Supported, but a CPU has no float16 arithmetic of its own: slower than float32, for nothing.
        warnings.warn("mixed_float16 without a GPU runs slower than float32; mixed_bfloat16 suits a CPU",
                      stacklevel=3)
    keras.mixed_precision.set_global_policy(policy)


def configure(choice: DeviceChoice):
    """For a script: memory growth on every GPU, `choice`'s precision as Keras's global dtype policy for the
    rest of the process, and the strategy to build and train models under (:func:`strategy_for`).

    Call it first (see the module docstring). The CLI does the same in :func:`exvo_keras.cli.main`, with the
    precision restored after the command.
    """
    enable_memory_growth()
    _set_precision(choice.precision)
    return strategy_for(choice)


def devices_of(choice: DeviceChoice) -> list[str]:
    """The logical-device names `choice` resolves to; empty for "auto" with fewer than two GPUs (TensorFlow's
    own placement). Raises ValueError naming the visible devices when `choice` asks for more or others."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if choice.kind == "auto":
        return gpus if len(gpus) > 1 else []
    if choice.kind == "cpu":
        return cpus[:1]
    if choice.kind == "count":
        kind, pool = ("GPU", gpus) if gpus else ("CPU", cpus)
        if choice.count > len(pool):
            raise ValueError(f"--devices {choice.count}: only {len(pool)} {kind} device(s) visible "
                             f"({', '.join(pool)})")
        return pool[:choice.count]
    if choice.kind == "names":
        visible = {_device_name(name): name for name in gpus + cpus}
        missing = [name for name in choice.names if name not in visible]
        if missing:
            raise ValueError(f"--devices {choice}: {', '.join(missing)} not visible; visible: "
                             f"{', '.join(visible)}")
        return [visible[name] for name in choice.names]
    raise ValueError(f"device choice kind {choice.kind!r}: expected one of {', '.join(DEVICE_KINDS)}")


def strategy_for(choice: DeviceChoice):
    """The ``tf.distribute`` strategy to build and train models under: a MirroredStrategy over several devices,
    a OneDeviceStrategy over one, the default strategy for "auto" without several GPUs."""
    import tensorflow as tf

    devices = devices_of(choice)
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices=devices)
    if devices:
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.get_strategy()


def device_scope(choice: DeviceChoice, what: str):
    """A context that places work which runs on one device (extraction, embedding) on the device `choice`
    names; "auto" leaves the placement to TensorFlow. Raises ValueError for several devices, saying how
    several GPUs share such work."""
    import tensorflow as tf

    devices = devices_of(choice) if choice.kind != "auto" else []
    if len(devices) > 1:
        raise ValueError(f"{what} runs on one device, but --devices {choice} names {len(devices)}; run one "
                         "process per GPU instead, each with CUDA_VISIBLE_DEVICES=I (README, \"Several devices "
                         "and machines\")")
    return tf.device(devices[0]) if devices else contextlib.nullcontext()


def evaluation_batches(dataset, replicas: int):
    """`dataset`'s batches, its first one cut after `replicas` elements, for evaluation under a strategy.

    Keras 3.15 builds a distributed model from the first batch reduced across the devices, which fails when
    the devices' parts differ in shape (an odd batch over two devices: "Inputs to operation AddN ... must have
    the same size and shape", keras-team/keras#19246); a validation set smaller than one batch is exactly
    that. A first batch of one element per device splits evenly. Only for evaluation: a mean over all
    elements does not depend on how they are batched, a training step does.
    """
    import tensorflow as tf

    if replicas <= 1:
        return dataset

    def pieces(index, batch):
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        cut = tf.where(index == 0, tf.minimum(size, replicas), size)
        head = tf.nest.map_structure(lambda t: t[:cut], batch)
        tail = tf.nest.map_structure(lambda t: t[cut:], batch)
        return tf.data.Dataset.from_tensors(head).concatenate(tf.data.Dataset.from_tensors(tail))

    split = dataset.enumerate().flat_map(pieces)
    return split.filter(lambda *batch: tf.shape(tf.nest.flatten(batch)[0])[0] > 0)


def parity(reference, value) -> float:
    """How far `value` is from `reference` (rows of outputs, e.g. pooled embeddings or posteriors): the largest,
    over rows, of the row's largest absolute difference over the row's largest magnitude. The measure the
    mixed-precision and device-parity figures quote; relative per row, so that it does not depend on an
    output's scale, and not per element, which an element near zero would blow up."""
    import numpy as np

    reference, value = (np.asarray(a, np.float64).reshape(len(reference), -1) for a in (reference, value))
    return float(np.max(np.max(np.abs(value - reference), axis=1) / np.max(np.abs(reference), axis=1)))
