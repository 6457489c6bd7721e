"""DeepSpectrum: spectrogram images, the VGG16 weights file, and the 4,096-d store."""

import numpy as np
import pytest

from conftest import write_corpus
from exvo_keras.data.corpus import load_corpus
from exvo_keras.features.deepspectrum import DIMS, extract_deepspectrum, spectrogram_image, vgg16_fc7
from exvo_keras.store import read_store, store_attrs


def _tone(freq, seconds=1.0):
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_image_is_224_rgb_with_low_frequencies_at_the_bottom():
    low, high = spectrogram_image(_tone(300)), spectrogram_image(_tone(6000))
    assert low.shape == (224, 224, 3) and low.dtype == np.float32
    assert 0 <= low.min() and low.max() <= 255
    # viridis: bright (yellow) where the energy is; find the brightest image row
    row_low = low.sum(axis=(1, 2)).argmax()
    row_high = high.sum(axis=(1, 2)).argmax()
    assert row_low > 180 and row_high < 100, (row_low, row_high)


def test_a_clip_shorter_than_one_frame_still_gives_an_image():
    assert spectrogram_image(np.zeros(100, np.float32)).shape == (224, 224, 3)


def test_missing_or_wrong_weights_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.h5: ImageNet VGG16 weights not found"):
        vgg16_fc7(tmp_path / "nowhere.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="junk.h5: not VGG16 ImageNet weights"):
        vgg16_fc7(junk)


def test_store_holds_fc7_of_the_weights_given(tmp_path):
    """Random VGG16 weights in Keras's legacy .h5 layout (the ImageNet file's), through the whole extraction."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    vgg = keras.applications.VGG16(weights=None, include_top=True)
    weights = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    with h5py.File(weights, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
    corpus = load_corpus(write_corpus(tmp_path / "corpus", n_per_split=(2, 1, 1), duration=0.3))
    store = extract_deepspectrum(corpus, weights, tmp_path / "deepspectrum.h5", progress=False)
    ids = corpus.file_ids()
    emb = read_store(store, ids)
    assert emb.shape == (len(ids), DIMS)
    from exvo_keras.data.audio import load_audio

    image = keras.applications.vgg16.preprocess_input(spectrogram_image(load_audio(corpus.wav_path(ids[0])))[None])
    fc2 = keras.Model(vgg.input, vgg.get_layer("fc2").output)
    np.testing.assert_allclose(emb[0], np.asarray(fc2(image))[0], rtol=1e-4, atol=1e-4)
    assert store_attrs(store)["settings"]["weights"].startswith("sha1 ")
