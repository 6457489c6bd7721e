"""Which paths `predict` takes from a folder, and that everything else is named on stderr (no model needed: a
stand-in with the export's `serve_waveform` signature)."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from exvo_keras import predict
from exvo_keras.cli import main
from exvo_keras.data.labels import EMOTIONS


class _Model:
    """The export's serve_waveform: emotion `[n, 10]`, age `[n]`, country_index `[n]`; age = clip seconds."""

    def serve_waveform(self, waveform, lengths):
        import tensorflow as tf

        n = waveform.shape[0]
        return {"emotion": tf.fill([n, len(EMOTIONS)], 0.5), "age": tf.cast(lengths, tf.float32) / 16000,
                "country_index": tf.zeros([n], tf.int32)}


def _tone(seconds=0.5):
    t = np.arange(int(16000 * seconds)) / 16000
    return 0.3 * np.sin(2 * np.pi * 220 * t)


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    sf.write(folder / "a.wav", _tone(0.5), 16000, subtype="PCM_16")
    sf.write(folder / "b.mp3", _tone(1.0), 16000, format="MP3")
    sf.write(folder / "c.flac", _tone(0.25), 16000)
    (folder / "notes.txt").write_text("not audio")
    (folder / "x.wav").mkdir()
    return folder


def test_mp3_is_taken_from_a_folder_and_the_rest_is_named_with_the_reason(folder):
    assert "MP3" in sf.available_formats()  # libsndfile >= 1.1 reads and writes it
    files, skipped = predict.collect_inputs([folder])
    assert [f.name for f in files] == ["a.wav", "b.mp3", "c.flac"]
    reasons = dict(skipped)
    assert set(reasons) == {str(folder / "notes.txt"), str(folder / "x.wav")}
    assert reasons[str(folder / "x.wav")].startswith("skipped: a folder")
    assert reasons[str(folder / "notes.txt")].startswith("skipped: .txt is not an audio file extension")


def test_every_format_soundfile_decodes_is_taken(tmp_path):
    assert {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".caf", ".w64", ".rf64"} <= set(predict.AUDIO_SUFFIXES)
    assert ".raw" not in predict.AUDIO_SUFFIXES  # headerless: soundfile needs the rate and channels given
    sf.write(tmp_path / "LOUD.WAV", _tone(), 16000, subtype="PCM_16")
    sf.write(tmp_path / "d.aiff", _tone(), 16000)
    files, skipped = predict.collect_inputs([tmp_path])
    assert [f.name for f in files] == ["LOUD.WAV", "d.aiff"] and skipped == []


def test_predict_command_lists_the_skipped_paths_on_stderr(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, "load_model", lambda model_dir: _Model())
    out = tmp_path / "preds.csv"
    assert main(["predict", str(tmp_path / "model"), str(folder), "--out", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"{folder / 'x.wav'}: skipped: a folder" in err
    assert f"{folder / 'notes.txt'}: skipped: .txt is not an audio file extension" in err
    frame = pd.read_csv(out, dtype={"File_ID": str})
    assert list(frame["File_ID"]) == ["a", "b", "c"]
    # The mp3 was decoded, not only listed: about one second (MP3 encoders add a little padding).
    assert abs(frame.set_index("File_ID").loc["b", "Age"] - 1.0) < 0.1
