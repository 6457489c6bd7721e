"""Frame-level raw-waveform CNNs (Idiap family): a 250 ms window -> class posteriors and a hidden-layer embedding.

The paper (Purohit et al., ExVo 2022) trains these CNNs on raw or zero-frequency-filtered (ZFF) waveform and
uses each one's hidden layer, taken **before** its ReLU and mean+std pooled over an utterance's windows, as an
utterance embedding: 10 units -> 20 dims for the ExVo/SER networks, 1,024 units -> 2,048 dims for Raw(ASR).

Architectures (valid padding, ReLU after every conv, no batch norm, no dropout; see FACTS.md, "Raw-waveform
CNNs (Idiap)", taken from idiap/RawSpeechClassification):

- ``subseg``: the first kernel spans 30 samples (1.9 ms), shorter than a pitch period: its filters see
  vocal-tract (formant) structure and single excitation events, not harmonics.
- ``seg``: the first kernel spans 300 samples (18.75 ms), several pitch periods: its filters can resolve
  harmonics, i.e. F0.
- ``asr``: our stand-in for the paper's Raw(ASR) phone classifier (no public code or weights); see
  :class:`FrameCNN` for its layer table.

Layer names are fixed so other modules can find them: ``conv_0`` (first conv; Figure 2 reads its kernel),
``embedding`` (hidden Dense, pre-activation), ``embedding_relu``, ``posteriors`` (softmax output).
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from keras import layers

from exvo_keras.data.labels import COUNTRIES, EMOTIONS


class Conv(NamedTuple):
    filters: int
    kernel: int
    stride: int = 1


class Pool(NamedTuple):
    size: int


ARCHITECTURES = {
    "subseg": (Conv(128, 30, 10), Pool(2), Conv(256, 10, 5), Pool(3), Conv(512, 4, 2), Conv(512, 3, 1)),
    "seg": (Conv(128, 300, 100), Pool(2), Conv(256, 5, 2), Conv(512, 4, 2), Conv(512, 3, 1)),
    # Five VGG-style blocks of two convs; block 0 opens with the subseg front end so that the first-layer
    # filters of Raw(ASR) and Raw(ExVo) share a kernel length and are comparable in Figure 2.
    "asr": (Conv(128, 30, 10), Conv(128, 3), Pool(2),
            Conv(256, 3), Conv(256, 3), Pool(2),
            Conv(256, 3), Conv(256, 3), Pool(2),
            Conv(512, 3), Conv(512, 3), Pool(2),
            Conv(512, 3), Conv(512, 3), Pool(2)),
}

DEFAULT_HIDDEN_UNITS = {"subseg": 10, "seg": 10, "asr": 1024}

# Paper network -> (architecture, classes). ASR's phone set depends on the lexicon, so its classes are required.
TASKS = {
    "ER": ("subseg", len(EMOTIONS)),  # ExVo emotion, the argmax of the ten intensities as a hard label
    "CR": ("subseg", len(COUNTRIES)),  # ExVo country
    "SER": ("subseg", 4),  # speech emotion (IEMOCAP's four classes, as shipped with RawSpeechClassification)
    "ASR": ("asr", None),  # AMI phone classification
}


def layer_lengths(architecture: str, window: int = 4000) -> list[int]:
    """Output length (time steps) of every conv/pool layer, in order, for a `window`-sample input."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    lengths, n = [], int(window)
    for spec in ARCHITECTURES[architecture]:
        # Valid padding: Keras' conv and pool output lengths.
        n = (n - spec.kernel) // spec.stride + 1 if isinstance(spec, Conv) else n // spec.size
        lengths.append(n)
    return lengths


@keras.saving.register_keras_serializable(package="exvo_keras")
class FrameCNN(keras.Model):
    """Classifies a z-normalised waveform window; its pre-ReLU hidden layer is the frame embedding.

    Input ``[batch, window]`` float32, already z-normalised per window by the pipeline (the model does not
    normalise). Output ``[batch, num_classes]`` softmax posteriors.

    The default architecture is ``subseg``. The paper says only "four convolution layers, one hidden layer of
    ten units" for its ExVo ER/CR networks, which fits both Idiap variants. We take ``subseg``: it is the default
    of idiap/RawSpeechClassification (``run.sh``), the toolkit the paper's group released, and that group's
    earlier work on ZFF and other voice-source signals, as far as we know, modelled them sub-segmentally. This is
    our reading, not the paper's statement; ``seg`` is one argument away.

    Raw(ASR) design. The paper gives only "10 convolutional layers followed by a fully connected layer with 1024
    nodes and an output layer", trained on AMI phones from raw waveform. We keep the Idiap recipe (sub-segmental
    first conv with a small kernel and stride, stacked small convs with max pooling, ReLU, valid padding) and
    fill in the depth VGG-style: five blocks of two convs, each block closed by max-pool 2, widths doubling
    128 -> 256 -> 512 as time is pooled. The first conv equals the ``subseg`` one, so Figure 2 compares like with
    like. Lengths for a 4,000-sample window:

    layer        op                   output       parameters
    ----------   ------------------   ----------   ----------
    conv_0       Conv 128, k30, s10   398 x 128         3,968
    conv_1       Conv 128, k3         396 x 128        49,280
    pool_0       MaxPool 2            198 x 128
    conv_2       Conv 256, k3         196 x 256        98,560
    conv_3       Conv 256, k3         194 x 256       196,864
    pool_1       MaxPool 2             97 x 256
    conv_4       Conv 256, k3          95 x 256       196,864
    conv_5       Conv 256, k3          93 x 256       196,864
    pool_2       MaxPool 2             46 x 256
    conv_6       Conv 512, k3          44 x 512       393,728
    conv_7       Conv 512, k3          42 x 512       786,944
    pool_3       MaxPool 2             21 x 512
    conv_8       Conv 512, k3          19 x 512       786,944
    conv_9       Conv 512, k3          17 x 512       786,944
    pool_4       MaxPool 2              8 x 512
    flatten                           4,096
    embedding    Dense 1024           1,024         4,195,328
    posteriors   Dense N, softmax     N             1,025 N

    7.69 M parameters before the output layer. One final time step sees 1,560 samples (97.5 ms, a few
    phones) at a 20 ms hop, and flattening the 8 x 512 map, as the Idiap nets do, keeps where in the 250 ms
    window each pattern sits, which phone context needs; Dense(1024) on 4,096 inputs is over half the weights.

    Args:
        architecture: "subseg" (default), "seg" or "asr".
        num_classes: output classes (10 ExVo emotions, 4 countries, 4 SER emotions, N phones).
        window: input samples (4,000 = 250 ms at 16 kHz).
        hidden_units: width of the hidden Dense layer; None takes 10 (subseg, seg) or 1,024 (asr).
        seed: seed of the initialisers (each layer gets its own seed derived from it), so a seed fixes the
            initial weights; None draws them from Keras' global generator.

    Example:
        >>> model = FrameCNN("subseg", num_classes=10, seed=0)
        >>> x = np.zeros((2, 4000), "float32")
        >>> tuple(model(x).shape), tuple(model.embedding_model()(x).shape), model.first_conv_kernel().shape
        ((2, 10), (2, 10), (30, 128))
    """

    def __init__(self, architecture: str = "subseg", num_classes: int = 10, window: int = 4000,
                 hidden_units: int | None = None, seed: int | None = None, **kwargs):
        lengths = layer_lengths(architecture, window)
        if min(lengths) < 1:
            raise ValueError(f"a {window}-sample window is too short for {architecture!r}: lengths {lengths}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        hidden_units = DEFAULT_HIDDEN_UNITS[architecture] if hidden_units is None else int(hidden_units)
        seeds = iter(range(seed * 1000, seed * 1000 + 1000)) if seed is not None else None

        def init():
            return keras.initializers.GlorotUniform(seed=None if seeds is None else next(seeds))

        inputs = keras.Input(shape=(window,), dtype="float32", name="window")
        x = layers.Reshape((window, 1), name="add_channel")(inputs)
        n_conv = n_pool = 0
        for spec in ARCHITECTURES[architecture]:
            if isinstance(spec, Conv):
                x = layers.Conv1D(spec.filters, spec.kernel, strides=spec.stride, padding="valid",
                                  kernel_initializer=init(), name=f"conv_{n_conv}")(x)
                x = layers.ReLU(name=f"conv_{n_conv}_relu")(x)
                n_conv += 1
            else:
                x = layers.MaxPooling1D(spec.size, name=f"pool_{n_pool}")(x)
                n_pool += 1
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(hidden_units, kernel_initializer=init(), name="embedding")(x)
        x = layers.ReLU(name="embedding_relu")(x)
        # float32 under a mixed policy too: posteriors near 0 and 1, which the loss takes the log of, and which
        # utterance decisions average over hundreds of windows.
        outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer=init(), dtype="float32",
                               name="posteriors")(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.architecture = architecture
        self.num_classes = int(num_classes)
        self.window = int(window)
        self.hidden_units = hidden_units
        self.seed = seed

    @classmethod
    def for_task(cls, task: str, num_classes: int | None = None, **kwargs) -> "FrameCNN":
        """The network of one of the paper's tasks: "ER", "CR", "SER" or "ASR" (which needs `num_classes`).

        Keyword arguments (e.g. ``architecture="seg"``) override the task's defaults.
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
        architecture, classes = TASKS[task]
        classes = num_classes if num_classes is not None else classes
        if classes is None:
            raise ValueError(f"task {task!r} needs num_classes (the size of its phone set)")
        return cls(**{"architecture": architecture, "num_classes": classes, **kwargs})

    @property
    def embedding_dim(self) -> int:
        return self.hidden_units

    def embedding_model(self) -> keras.Model:
        """Window -> hidden Dense output before its ReLU, ``[batch, hidden_units]``; shares this model's weights.

        Built on each call rather than stored: a sub-model kept as an attribute would be tracked, and saved,
        as a second copy of the same layers.
        """
        # The input tensor rather than the `inputs` list, so that calling it on a bare array raises no warning.
        return keras.Model(self.input, self.get_layer("embedding").output, name=f"{self.name}_embedding")

    def first_conv_kernel(self) -> np.ndarray:
        """The first conv layer's kernel as ``[kernel_size, filters]`` (one input channel squeezed out)."""
        kernel = keras.ops.convert_to_numpy(self.get_layer("conv_0").kernel)
        return kernel[:, 0, :].copy()

    def get_config(self):
        return {
            **super().get_config(),
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "window": self.window,
            "hidden_units": self.hidden_units,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
