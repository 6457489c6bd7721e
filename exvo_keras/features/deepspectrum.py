"""DeepSpectrum: the challenge baseline's second feature set (4,096 dims).

DeepSpectrum (Amiriparian et al., 2017) turns each clip into a spectrogram *image* and takes the activations of an
ImageNet CNN: here, as in the ExVo baseline, a mel spectrogram (128 bands) in dB drawn with the viridis colour map,
scaled to 224 × 224 and passed through VGG16 up to its second fully connected layer ("fc2", the fc7 of the
original VGG paper): 4,096 values per clip.

The ImageNet weights are never downloaded: pass the Keras file (`vgg16_weights_tf_dim_ordering_tf_kernels.h5`,
the one `keras.applications.VGG16(weights="imagenet")` would fetch, with the top) or any `.weights.h5` saved from
`keras.applications.VGG16(include_top=True)`. Without them the Tables 2 and 3 DeepSpectrum rows say "not run".
The image is built with TensorFlow ops (STFT, mel matrix, colour-map lookup, bilinear resize) rather than by
plotting with matplotlib as the DeepSpectrum tool does, so values differ from the tool's within rendering detail
(axes, anti-aliasing); the recipe (mel, dB, viridis, 224², VGG16 fc7) is the same.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from exvo_keras.data.audio import load_audio
from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.store import build_store

EXTRACTOR = "deepspectrum"
DIMS = 4096
IMAGE_SIZE = 224
MEL_BANDS = 128
FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
DYNAMIC_RANGE_DB = 80.0
WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"


def spectrogram_image(x: np.ndarray) -> np.ndarray:
    """The clip's mel spectrogram as a viridis RGB image, `[224, 224, 3]` float32 in [0, 255].

    Low frequencies at the bottom, as the spectrogram plot DeepSpectrum draws; the top `DYNAMIC_RANGE_DB`
    below the clip's peak are mapped onto the colour map.
    """
    import tensorflow as tf
    from matplotlib import colormaps

    frame = int(FRAME_SECONDS * SAMPLE_RATE)
    hop = int(HOP_SECONDS * SAMPLE_RATE)
    x = np.asarray(x, np.float32)
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    power = tf.abs(tf.signal.stft(x, frame, hop, fft_length=512)) ** 2
    mel = tf.linalg.matmul(power, tf.signal.linear_to_mel_weight_matrix(MEL_BANDS, 257, SAMPLE_RATE, 20.0, 8000.0))
    db = 10.0 * np.log10(np.maximum(mel.numpy(), 1e-10))
    level = np.clip((db - (db.max() - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0.0, 1.0)
    rgb = colormaps["viridis"](level.T[::-1])[..., :3].astype(np.float32)  # [bands, frames, 3], low at bottom
    return tf.image.resize(rgb, (IMAGE_SIZE, IMAGE_SIZE), method="bilinear").numpy() * 255.0


def vgg16_fc7(weights) -> "keras.Model":
    """VGG16 with the ImageNet weights in `weights`, cut at fc2 (4,096 outputs). Never downloads."""
    import keras

    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: ImageNet VGG16 weights not found; supply Keras's {WEIGHTS_FILE} "
                                "(with the top, 138 M parameters) for the DeepSpectrum rows")
    vgg = keras.applications.VGG16(weights=None, include_top=True)
    try:
        vgg.load_weights(weights)
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError depending on what is wrong in the file
        raise ValueError(f"{weights}: not VGG16 ImageNet weights with the top ({type(exc).__name__}: {exc})") from exc
    return keras.Model(vgg.input, vgg.get_layer("fc2").output, name="deepspectrum_vgg16_fc7")


def extract_deepspectrum(corpus: Corpus, weights, out_path, *, batch_size: int = 16, progress: bool = True) -> Path:
    """DeepSpectrum features of every clip into the store `out_path` (resumable; bad files named at the end)."""
    import keras

    weights = Path(weights)
    if not weights.is_file():
        vgg16_fc7(weights)  # raises, naming the file and what to supply
    digest = hashlib.sha1()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    settings = {"cnn": "VGG16", "layer": "fc2", "weights": f"sha1 {digest.hexdigest()[:16]}",
                "mel_bands": MEL_BANDS, "frame_s": FRAME_SECONDS, "hop_s": HOP_SECONDS, "colormap": "viridis",
                "dynamic_range_db": DYNAMIC_RANGE_DB, "image": IMAGE_SIZE}

    model = []  # built on the first batch: a complete store is checked without loading 138 M weights

    def embed(ids):
        if not model:
            model.append(vgg16_fc7(weights))
        images = np.stack([spectrogram_image(load_audio(corpus.wav_path(f))) for f in ids])
        images = keras.applications.vgg16.preprocess_input(images)
        return np.asarray(model[0].predict(images, batch_size=batch_size, verbose=0), np.float32)

    return build_store(out_path, corpus.file_ids(), embed, extractor=EXTRACTOR, settings=settings,
                       corpus=corpus, batch_size=batch_size,
                       progress=progress, desc="DeepSpectrum")
