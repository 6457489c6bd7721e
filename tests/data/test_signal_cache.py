"""SignalCache: per-clip raw / ZFF waveforms cached once, resumable, refused when made for other clips."""

import json

import numpy as np
import pytest
import soundfile as sf

import exvo_keras.data.tf_audio as tf_audio
from exvo_keras.data.audio import load_audio
from exvo_keras.data.signals import SignalCache, SignalCacheError
from exvo_keras.signal import zff


def _wav(path, seed, seconds=0.3, rate=16000):
    """A voiced-like clip (pulse train through a decaying resonance + noise), distinct per seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 100 + 20 * seed
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3 * f0 * t) + 0.01 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype="PCM_16")
    return path


@pytest.fixture
def wavs(tmp_path):
    return {f"[{i:05d}]": _wav(tmp_path / "wav" / f"{i:05d}.wav", i) for i in range(1, 5)}


def _counting_loader(monkeypatch):
    calls = []

    decoded = tf_audio.decoded_clips

    def counted(paths, **kwargs):
        calls.extend(str(p) for p in paths)
        return decoded(paths, **kwargs)

    monkeypatch.setattr(tf_audio, "decoded_clips", counted)
    return calls


def test_raw_cache_equals_load_audio(tmp_path, wavs):
    cache = SignalCache(tmp_path / "cache", "raw", "corpus-A")
    cache.build(wavs, progress=False)
    for key, path in wavs.items():
        x = cache.load(key)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, load_audio(path))
    assert json.loads((tmp_path / "cache" / "cache.json").read_text()) == {
        "kind": "raw", "source": "corpus-A", "sample_rate": 16000}


def test_zff_cache_equals_zff_of_the_decoded_audio(tmp_path, wavs):
    cache = SignalCache(tmp_path / "cache", "zff", "corpus-A")
    cache.build(wavs, progress=False)
    for key, path in wavs.items():
        x = cache.load(key)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, zff(load_audio(path), 16000).astype(np.float32))
    # ZFF changes the signal: the cache is not the raw waveform under another name
    key = next(iter(wavs))
    assert not np.allclose(cache.load(key), load_audio(wavs[key]))


def test_build_resumes_computing_only_missing_clips(tmp_path, wavs, monkeypatch):
    keys = list(wavs)
    calls = _counting_loader(monkeypatch)
    SignalCache(tmp_path / "cache", "raw", "c").build({k: wavs[k] for k in keys[:2]}, progress=False)
    assert len(calls) == 2
    # a build interrupted while writing a clip leaves only a temporary file: that clip still counts as missing
    cache = SignalCache(tmp_path / "cache", "raw", "c")
    (tmp_path / "cache" / (cache.path(keys[2]).name + ".tmp.npy")).write_bytes(b"partial")
    assert cache.missing(keys) == keys[2:]
    calls.clear()
    cache.build(wavs, progress=False)
    assert sorted(calls) == sorted(str(wavs[k]) for k in keys[2:])
    calls.clear()
    cache.build(wavs, progress=False)  # complete: nothing is decoded again
    assert calls == []
    for key in keys:
        np.testing.assert_array_equal(cache.load(key), load_audio(wavs[key]))


@pytest.mark.parametrize("kind, source, field", [("zff", "corpus-A", "kind"), ("raw", "corpus-B", "source")])
def test_cache_made_for_other_clips_or_kind_is_refused(tmp_path, wavs, kind, source, field):
    SignalCache(tmp_path / "cache", "raw", "corpus-A").build(wavs, progress=False)
    with pytest.raises(SignalCacheError, match=field) as err:
        SignalCache(tmp_path / "cache", kind, source)
    assert str(tmp_path / "cache") in str(err.value)
    other = "corpus-A" if field == "source" else "raw"
    assert other in str(err.value)  # says what the cache holds


def test_unknown_kind_and_uncached_clip(tmp_path, wavs):
    with pytest.raises(ValueError, match="mfcc"):
        SignalCache(tmp_path / "cache", "mfcc", "c")
    cache = SignalCache(tmp_path / "cache", "raw", "c")
    with pytest.raises(SignalCacheError, match=r"not cached"):
        cache.load("[00001]")


def test_corrupt_wav_is_listed_and_other_clips_are_cached(tmp_path, wavs):
    bad = tmp_path / "wav" / "00099.wav"
    bad.write_bytes(b"RIFF this is not a wav file at all")
    sources = {**wavs, "[00099]": bad}
    cache = SignalCache(tmp_path / "cache", "raw", "c")
    with pytest.raises(SignalCacheError) as err:
        cache.build(sources, progress=False)
    assert str(bad) in str(err.value) and "1 file(s)" in str(err.value)
    assert cache.missing(list(sources)) == ["[00099]"]
    for key in wavs:
        np.testing.assert_array_equal(cache.load(key), load_audio(wavs[key]))
    # fixing the file and rebuilding computes only that clip
    _wav(bad, 99)
    cache.build(sources, progress=False)
    np.testing.assert_array_equal(cache.load("[00099]"), load_audio(bad))


def test_list_paths_with_slashes_map_to_flat_distinct_files(tmp_path):
    root = tmp_path / "list"
    sources = {"ser/wav/a.wav": _wav(root / "ser" / "wav" / "a.wav", 1),
               "ser/wav2/a.wav": _wav(root / "ser" / "wav2" / "a.wav", 2),
               "b.wav": _wav(root / "b.wav", 3)}
    cache = SignalCache(tmp_path / "cache", "raw", "list")
    cache.build(sources, progress=False)
    assert cache.path("ser/wav/a.wav") == tmp_path / "cache" / "ser__wav__a.wav.npy"
    assert cache.path("[00042]") == tmp_path / "cache" / "00042.npy"
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert files == sorted(["cache.json", "ser__wav__a.wav.npy", "ser__wav2__a.wav.npy", "b.wav.npy"])
    for key, path in sources.items():
        np.testing.assert_array_equal(cache.load(key), load_audio(path))
