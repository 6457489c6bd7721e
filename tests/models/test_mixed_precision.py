"""Mixed precision against float32: the same weights on the same input, and how far the outputs move.

On the CPU with mixed_bfloat16, which CPUs compute natively; mixed_float16, the GPU policy, has no float16
arithmetic on a CPU (emulated, slower than float32), so it is checked once here, on one small encoder, and at
full size by benchmarks/gpu_check.sh on a GPU. Parity is `exvo_keras.devices.parity`: per output row, the
largest difference over the row's largest magnitude, the worst row.
"""

import json

import numpy as np
import pytest

from conftest import write_corpus
from exvo_keras.batching import pad_clips
from exvo_keras.data.corpus import load_corpus
from exvo_keras.devices import parity, precision
from exvo_keras.features.ssl import extract_ssl, ssl_settings
from exvo_keras.models.frame_cnn import FrameCNN
from exvo_keras.models.ssl.presets import demo_encoder
from exvo_keras.store import StoreError
from exvo_keras.training.frame_cnn import ClipSet, FrameTraining, train_frame_cnn

RATE = 16000


@pytest.fixture(scope="module")
def padded_clips():
    # Three lengths in one padded batch: the masks, the per-clip normalisation and the pooling all take part.
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    clips = [(0.3 * np.sin(2 * np.pi * 220 * t[:n]) + 0.05 * rng.standard_normal(n)).astype(np.float32)
             for n in (3 * RATE, 20000, 33001)]
    return pad_clips(clips)


def _pooled(family, policy, padded_clips):
    with precision(policy):
        encoder = demo_encoder(family, 0, do_normalize=True)
    return encoder, encoder.pooled_function("last")(*padded_clips).numpy()


# Measured (pooled mean+std of the last hidden state, demo encoders, 3 clips of 1.25-3 s): mixed_bfloat16
# wavlm 3.6e-3, hubert 4.9e-3, wav2vec2 6.3e-3 (bfloat16 keeps 8 significant bits: 2^-8 = 3.9e-3);
# mixed_float16 wavlm 5.7e-4.
@pytest.mark.filterwarnings("ignore:mixed_float16 without a GPU")
@pytest.mark.parametrize("family, policy, bound", [("wavlm", "mixed_bfloat16", 2e-2), ("hubert", "mixed_bfloat16", 2e-2),
                                                   ("wav2vec2", "mixed_bfloat16", 2e-2),
                                                   ("wavlm", "mixed_float16", 3e-3)])
def test_ssl_embeddings_in_mixed_precision_stay_near_float32(family, policy, bound, padded_clips):
    _, reference = _pooled(family, "float32", padded_clips)
    encoder, pooled = _pooled(family, policy, padded_clips)
    assert encoder.precision == policy
    assert encoder.get_layer("feature_projection").compute_dtype == policy.removeprefix("mixed_")
    assert np.isfinite(pooled).all()
    # Above 0: the policy took effect; below the bound: nothing sensitive ran in half precision.
    assert 0 < parity(reference, pooled) < bound


# Measured: wav2vec2 4.6e-3, wavlm 4.9e-3; 0.26 and 0.35 with the per-clip normalisation in bfloat16, whose
# 8 significant bits cannot hold 1e-3 of signal on 0.5 of offset.
@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_each_clip_is_normalised_in_float32(family):
    rng = np.random.default_rng(0)
    padded = pad_clips([(0.5 + 1e-3 * rng.standard_normal(n)).astype(np.float32) for n in (32000, 20000)])
    _, reference = _pooled(family, "float32", padded)
    _, pooled = _pooled(family, "mixed_bfloat16", padded)
    assert parity(reference, pooled) < 2e-2


# Measured on 32 random windows, random weights (seed 0), mixed_bfloat16: posteriors subseg 6.1e-4, seg 4.2e-4,
# asr 1.0e-4 (4.0e-3 to 4.2e-3 on 64 such windows while the softmax layer computed in bfloat16); pre-activation
# embeddings 8.7e-3, 8.2e-3, 1.1e-2.
@pytest.mark.parametrize("architecture", ["subseg", "seg", "asr"])
def test_frame_cnn_posteriors_in_mixed_precision_stay_near_float32(architecture):
    x = np.random.default_rng(1).standard_normal((32, 4000)).astype(np.float32)
    reference = FrameCNN(architecture, 10, seed=0)
    with precision("mixed_bfloat16"):
        mixed = FrameCNN(architecture, 10, seed=0)
    posteriors = mixed(x)
    assert posteriors.dtype == "float32" and mixed.get_layer("conv_0").compute_dtype == "bfloat16"
    assert 0 < parity(reference(x), posteriors) < 3e-3
    assert 0 < parity(reference.embedding_model()(x), mixed.embedding_model()(x)) < 5e-2


def _two_class_clips(n):
    rng = np.random.default_rng(0)
    t = np.arange(int(0.3 * RATE)) / RATE
    signals = [(0.4 * np.sin(2 * np.pi * (150 if i % 2 == 0 else 2500) * t)
                + 0.03 * rng.standard_normal(t.size)).astype(np.float32) for i in range(n)]
    return ClipSet([f"c{i}" for i in range(n)], lambda i: signals[i], (np.arange(n) % 2).astype(np.int32))


@pytest.mark.filterwarnings("ignore:mixed_float16 without a GPU")
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_frame_cnn_trains_in_mixed_precision_and_its_run_records_it(tmp_path, policy):
    clips = _two_class_clips(12)
    fit, cv = clips.subset(range(8)), clips.subset(range(8, 12))
    cfg = FrameTraining(hop_frames=10, batch_size=8, max_epochs=2, class_names=["low", "high"])
    with precision(policy):  # mixed_float16 adds Keras's loss scaling to the optimiser
        train_frame_cnn(tmp_path / "run", fit, cv, cfg, verbose=0)
    history = np.genfromtxt(tmp_path / "run" / "history.csv", delimiter=",", names=True)
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == policy
    # The same folder in float32 would resume weights trained in another precision: refused.
    with pytest.raises(ValueError, match="precision"):
        train_frame_cnn(tmp_path / "run", fit, cv, cfg, verbose=0)


def test_a_float32_store_is_not_reused_in_mixed_precision(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "corpus", n_per_split=(3, 1, 1)))
    path = extract_ssl(corpus, demo_encoder("wav2vec2"), tmp_path / "w.h5", progress=False)
    assert "precision" not in ssl_settings(demo_encoder("wav2vec2"))  # float32 stores keep their settings
    with precision("mixed_bfloat16"):
        mixed = demo_encoder("wav2vec2")
    assert ssl_settings(mixed)["precision"] == "mixed_bfloat16"
    with pytest.raises(StoreError, match="precision"):
        extract_ssl(corpus, mixed, path, progress=False)
