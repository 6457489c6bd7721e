"""Per-clip input normalisation against Hugging Face's formula (Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm),
written out in numpy: each clip over its own samples, padding zero."""

import numpy as np

from exvo_keras.signal.normalize import EPS, normalize_clips


def hugging_face_normalise(x, eps=1e-7):
    """transformers' zero_mean_unit_var_norm for one clip (numpy, float64 here)."""
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / np.sqrt(x.var() + eps)


def test_each_clip_is_normalised_over_its_own_samples():
    rng = np.random.default_rng(0)
    clips = [0.3 * rng.standard_normal(n) + 0.05 for n in (16000, 400, 1)] + [np.full(800, 0.2)]
    waveform = np.full((len(clips), 16100), 7.0, np.float32)  # padding values must not matter
    for i, c in enumerate(clips):
        waveform[i, :c.size] = c
    mask = np.arange(16100)[None, :] < np.array([c.size for c in clips])[:, None]
    out = normalize_clips(waveform, mask).numpy()
    assert out.dtype == np.float32 and EPS == 1e-7
    for i, c in enumerate(clips):
        expected = hugging_face_normalise(c.astype(np.float32))
        np.testing.assert_allclose(out[i, :c.size], expected, rtol=0, atol=2e-6)
        assert not out[i, c.size:].any()  # padding stays zero
    assert not out[3].any()  # a constant clip becomes zeros, not NaN


def test_a_batch_gives_a_clip_what_it_gets_alone():
    x = np.random.default_rng(1).standard_normal((2, 3000)).astype(np.float32)
    mask = np.ones((2, 3000), bool)
    mask[1, 1000:] = False
    alone = normalize_clips(x[1:, :1000], mask[1:, :1000]).numpy()
    np.testing.assert_allclose(normalize_clips(x, mask).numpy()[1, :1000], alone[0], rtol=0, atol=1e-6)
