"""Decoding inside tf.data (tensorflow-io) against the soundfile + polyphase path that `load_audio` is.

The bound: identical samples for every WAV, FLAC and AIFF subtype and every rate (tensorflow-io's integer
samples scaled as libsndfile scales them, or the file routed to soundfile); Ogg Vorbis and MP3 come from other
decoders than libsndfile's and differ by round-off (measured 6.7e-8 and 2.0e-7 of full scale), bound 1e-6.
"""

import numpy as np
import pytest
import soundfile as sf

from exvo_keras.data import tf_audio
from exvo_keras.data.audio import AudioError, load_audio
from exvo_keras.data.tf_audio import SOUNDFILE, DecodedStream, decoded_clips

LOSSY_TOL = 1e-6
# (format, subtype, extension, rate, whether tensorflow-io decodes it)
CASES = [("WAV", "PCM_16", "wav", 16000, True), ("WAV", "PCM_16", "wav", 44100, True),
         ("WAV", "PCM_24", "wav", 22050, True), ("WAV", "FLOAT", "wav", 48000, True),
         ("WAV", "PCM_32", "wav", 16000, False), ("WAV", "PCM_U8", "wav", 8000, False),
         ("FLAC", "PCM_16", "flac", 44100, True), ("FLAC", "PCM_24", "flac", 16000, True),
         ("OGG", "VORBIS", "ogg", 16000, True), ("MP3", "MPEG_LAYER_III", "mp3", 44100, True),
         ("AIFF", "PCM_16", "aiff", 16000, False)]


def _signal(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([mono, 0.5 * mono], axis=1).astype(np.float32)  # stereo: the first channel is kept


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    out = []
    for k, (fmt, subtype, ext, rate, _) in enumerate(CASES):
        path = folder / f"{subtype}_{rate}.{ext}"
        sf.write(path, _signal(1.3, rate, k), rate, subtype=subtype, format=fmt)
        out.append(path)
    return out


def test_every_format_and_rate_equals_the_soundfile_path(files):
    decoded = list(decoded_clips(files))
    assert [d.index for d in decoded] == list(range(len(files)))
    for (fmt, subtype, _, rate, by_tfio), path, clip in zip(CASES, files, decoded):
        assert clip.error is None, clip.error
        # the route is part of the contract: a supported file that silently fell back to soundfile would pass
        assert (tf_audio._tfio_route(str(path))[0] != SOUNDFILE) == by_tfio, path.name
        expected = load_audio(path)
        assert clip.signal.dtype == np.float32 and clip.signal.shape == expected.shape, path.name
        tol = LOSSY_TOL if fmt in ("OGG", "MP3") else 0.0
        assert np.abs(clip.signal - expected).max() <= tol, (path.name, np.abs(clip.signal - expected).max())


def test_bad_files_get_load_audios_error_and_the_rest_still_decode(files, tmp_path):
    good = files[0]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:20000])
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 3)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(200, np.float32), 16000)
    nan = tmp_path / "nan.wav"
    x = _signal(0.5, 16000, 9)[:, 0]
    x[100] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")  # a float WAV: decoded by tensorflow-io, refused by its own check
    bad = [empty, tmp_path / "missing.wav", truncated, garbage, short, nan]
    order = [bad[0], good, *bad[1:], files[3]]
    decoded = list(decoded_clips(order))
    for path, clip in zip(order, decoded):
        if path in bad:
            with pytest.raises(AudioError) as expected:
                load_audio(path)
            assert clip.signal is None and str(clip.error) == str(expected.value)
        else:
            np.testing.assert_array_equal(clip.signal, load_audio(path))


def test_transform_runs_in_the_pipeline_and_threads_do_not_change_the_output(files):
    double = lambda x: 2.0 * x  # noqa: E731
    one = [d.signal for d in decoded_clips(files[:4], transform=double, threads=1)]
    two = [d.signal for d in decoded_clips(files[:4], transform=double, threads=2)]
    for a, b, path in zip(one, two, files):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, 2.0 * load_audio(path))


def test_a_stream_decodes_the_plan_once_and_serves_retries_from_its_last_chunk(files, monkeypatch):
    keys = [p.name for p in files[:6]]
    by_name = {p.name: p for p in files}
    started = []
    real = tf_audio.decoded_clips

    def counting(paths, **kwargs):
        started.append(len(paths))
        return real(paths, **kwargs)

    monkeypatch.setattr(tf_audio, "decoded_clips", counting)
    stream = DecodedStream(by_name.__getitem__)
    stream.plan(keys)
    first = stream.take(keys[:3])
    again = stream.take(keys[1:2])  # a chunk retried clip by clip
    rest = stream.take(keys[3:])
    assert started == [6]  # one pipeline for the plan, nothing decoded twice
    np.testing.assert_array_equal(again[0].signal, first[1].signal)
    for key, clip in zip(keys, first + rest):
        np.testing.assert_array_equal(clip.signal, load_audio(by_name[key]))
    stream.take(keys[:1])  # off the plan: decoded on its own
    assert started == [6, 1]
