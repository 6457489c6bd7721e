import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from exvo_keras.data.audio import AudioError, load_audio
from exvo_keras.signal.resample import resample


def _sine(sr, seconds=0.5, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return 0.5 * np.sin(2 * np.pi * f * t)


def test_reads_pcm16_mono_as_float32(tmp_path):
    x = _sine(16000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    y = load_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-4  # PCM16 quantisation only


@pytest.mark.parametrize("rate", [44100, 8000])
def test_other_rates_are_resampled_as_scipy_resamples(tmp_path, rate):
    """The loader's TensorFlow filter against scipy's resample_poly on the decoded float32 audio (what the loader
    called before): within 5e-7 (float32 round-off of scipy's float32 filter; measured 3.0e-7 at 44.1 kHz and
    2.4e-7 at 8 kHz), and scipy run in float64 rounded to float32."""
    from math import gcd

    from scipy.signal import resample_poly

    t = np.arange(int(rate * 1.3)) / rate
    x = 0.45 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * np.sin(2 * np.pi * 3100 * t)
    sf.write(tmp_path / "r.wav", x, rate, subtype="PCM_16")
    decoded = sf.read(tmp_path / "r.wav", dtype="float32")[0]
    g = gcd(rate, 16000)
    y = load_audio(tmp_path / "r.wav")
    assert y.dtype == np.float32 and y.shape == (int(16000 * 1.3),)
    assert np.abs(y - resample_poly(decoded, 16000 // g, rate // g)).max() < 5e-7
    np.testing.assert_allclose(y, resample_poly(decoded.astype(np.float64), 16000 // g, rate // g), rtol=0,
                               atol=6e-8)  # float32 rounding of the same float64 values


def test_44k1_is_resampled_to_16k_keeping_the_tone(tmp_path):
    sf.write(tmp_path / "hi.wav", _sine(44100, 1.0, 440.0), 44100, subtype="PCM_16")
    y = load_audio(tmp_path / "hi.wav")
    assert y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440.0) <= 1.0


def test_stereo_keeps_the_first_channel(tmp_path):
    left, right = _sine(16000, f=300.0), _sine(16000, f=1000.0)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    y = load_audio(tmp_path / "st.wav")
    assert np.max(np.abs(y - left)) < 1e-4


@pytest.mark.parametrize("content,problem", [
    (None, "file not found"),
    (b"", "empty file"),
    (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "not a readable audio file"),
    (b"this is not audio at all" * 10, "not a readable audio file"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_header_only_wav_is_an_empty_clip(tmp_path):
    sf.write(tmp_path / "z.wav", np.zeros(0), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty clip|no audio samples"):
        load_audio(tmp_path / "z.wav")


def test_very_short_clip_is_refused(tmp_path):
    sf.write(tmp_path / "s.wav", _sine(16000, 0.01), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="too short"):
        load_audio(tmp_path / "s.wav")


def _truncated_wav(path, declared=16000, present=4000):
    sf.write(path, _sine(16000, declared / 16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[:44 + 2 * present])  # canonical 44-byte header, 2 bytes a frame
    return path


def test_truncated_wav_names_the_declared_and_the_present_frames(tmp_path):
    # libsndfile silently shortens the clip to the bytes present (info.frames says 4000 too), so without a check
    # of the RIFF data chunk a cut download is stored as a 0.25 s burst.
    path = _truncated_wav(tmp_path / "t.wav")
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    assert "truncated: header declares 16000 frames, 4000 present" in str(err.value)


def test_truncated_mp3_is_reported(tmp_path):
    path = tmp_path / "t.mp3"
    sf.write(path, _sine(16000, 1.0), 16000, format="MP3")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # less and libsndfile no longer recognises it as MP3
    with pytest.raises(AudioError, match=r"t\.mp3: truncated: header declares 16000 frames, \d+ present"):
        load_audio(path)


def test_wav_with_unknown_data_size_is_read_whole(tmp_path):
    # Streaming writers leave the data size at 0xFFFFFFFF: unknown, not a truncation (libsndfile reads to the end).
    x = _sine(16000, 0.5)
    path = tmp_path / "stream.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert load_audio(path).shape == x.shape


def test_chunks_before_the_data_chunk_are_skipped(tmp_path):
    path = tmp_path / "list.wav"
    sf.write(path, _sine(16000, 0.5), 16000, subtype="PCM_16")
    data = path.read_bytes()
    chunk = b"LIST" + (5).to_bytes(4, "little") + b"INFOx" + b"\x00"  # odd size, one pad byte
    body = data[12:36] + chunk + data[36:]
    path.write_bytes(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body)
    assert load_audio(path).shape == (8000,)
    path.write_bytes(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body[:-4000])
    with pytest.raises(AudioError, match="truncated: header declares 8000 frames, 6000 present"):
        load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_samples_are_refused(tmp_path, bad):
    x = _sine(16000).astype(np.float32)
    x[100] = bad
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"f\.wav: audio contains NaN or infinite samples"):
        load_audio(tmp_path / "f.wav")


def test_audio_error_survives_pickling():
    # Worker processes send it back to the parent; an exception that does not unpickle hangs a Pool.
    err = pickle.loads(pickle.dumps(AudioError("a/b.wav", "not a readable audio file")))
    assert isinstance(err, AudioError)
    assert err.path == Path("a/b.wav") and err.problem == "not a readable audio file"
    assert str(err) == f"{Path('a/b.wav')}: not a readable audio file"


def test_resample_length_ratio():
    assert resample(np.zeros(44100, np.float32), 44100, 16000).shape == (16000,)
    assert resample(np.zeros(8000, np.float32), 8000, 16000).shape == (16000,)
