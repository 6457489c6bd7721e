import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from exvo_keras.data.corpus import (CorpusError, check_corpus, hard_labels, load_corpus, speaker_split,
                                    wav_name)
from exvo_keras.data.labels import EMOTIONS


def test_wav_name_strips_brackets_and_pads():
    assert wav_name("[58712]") == "58712.wav"
    assert wav_name("[42]") == "00042.wav"
    assert wav_name(" [00042] ") == "00042.wav"


def test_columns_are_matched_by_name_and_test_labels_may_be_empty(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    assert corpus.file_ids("Train")[0] == "[00101]"
    assert corpus.wav_path("[00101]") == tiny_corpus / "wav" / "00101.wav"
    raw = pd.read_csv(tiny_corpus / "data_info.csv")
    y = corpus.labels("Train")
    np.testing.assert_allclose(y["emotion"], raw[raw.Split == "Train"][list(EMOTIONS)].to_numpy(), atol=1e-6)
    assert y["emotion"].shape == (6, 10) and y["country"].dtype == np.int32
    assert corpus.has_labels("Val") and not corpus.has_labels("Test")
    with pytest.raises(CorpusError, match="no \\(complete\\) labels"):
        corpus.labels("Test")


def test_hidden_test_labels_are_merged_from_test_labels_csv(tiny_corpus):
    raw = pd.read_csv(tiny_corpus / "data_info.csv")
    test = raw[raw.Split == "Test"].copy()
    test[list(EMOTIONS)] = 0.5
    test["Age"], test["Country"] = 30, 2
    test.to_csv(tiny_corpus / "test_labels.csv", index=False)
    y = load_corpus(tiny_corpus).labels("Test")
    assert (y["age"] == 30).all() and (y["country"] == 2).all()


def _edit(root, fn):
    df = pd.read_csv(root / "data_info.csv", dtype={"File_ID": str})
    fn(df)
    df.to_csv(root / "data_info.csv", index=False)


def test_every_problem_is_listed_at_once(tiny_corpus):
    def damage(df):
        df.loc[0, "Awe"] = np.nan            # NaN label in Train
        df.loc[1, "Fear"] = 1.5              # out of range
        df.loc[2, "Split"] = "Dev"           # unknown split
        df.loc[3, "File_ID"] = df.loc[4, "File_ID"]  # duplicate
    _edit(tiny_corpus, damage)
    (tiny_corpus / "wav" / "00108.wav").unlink()                      # missing wav
    (tiny_corpus / "wav" / "00109.wav").write_bytes(b"garbage" * 20)  # corrupt wav
    sf.write(tiny_corpus / "wav" / "00110.wav", np.zeros((8000, 2)), 44100)  # stereo, 44.1 kHz
    problems = check_corpus(tiny_corpus)
    text = "\n".join(map(str, problems))
    for needle in ("NaN Awe", "outside [0, 1]", "unknown Split value(s) ['Dev']", "duplicate File_ID",
                   "00108.wav: file not found", "00109.wav: not a readable audio file",
                   "sample rate 44100", "2 channels"):
        assert needle in text, needle
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 6  # the two warnings (rate, channels) are not errors
    with pytest.raises(CorpusError) as err:
        load_corpus(tiny_corpus)
    assert len(err.value.problems) == 4  # table problems only; audio is checked by check_corpus


def test_missing_folder_and_missing_columns(tmp_path, tiny_corpus):
    with pytest.raises(CorpusError, match="corpus folder not found"):
        load_corpus(tmp_path / "nowhere")
    _edit(tiny_corpus, lambda df: df.drop(columns=["Age"], inplace=True))
    with pytest.raises(CorpusError, match="missing column\\(s\\): Age"):
        load_corpus(tiny_corpus)


def test_speaker_split_is_speaker_disjoint_and_seeded(tmp_path):
    from conftest import write_corpus

    root = write_corpus(tmp_path / "c", n_per_split=(40, 2, 2))
    df = pd.read_csv(root / "data_info.csv")
    df.loc[df.Split == "Train", "Subject_ID"] = [f"Speaker_{i % 20:04d}" for i in range(40)]
    df.to_csv(root / "data_info.csv", index=False)
    corpus = load_corpus(root)
    fit, held = speaker_split(corpus, 0.1, seed=3)
    spk = corpus.table["Subject_ID"]
    assert set(spk[fit]).isdisjoint(spk[held])
    assert len(set(spk[held])) == 2 and len(fit) + len(held) == 40
    assert speaker_split(corpus, 0.1, seed=3) == (fit, held)
    assert any(speaker_split(corpus, 0.1, seed=s)[1] != held for s in range(4, 10))


def test_hard_labels(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    y = corpus.labels("Train")
    assert (hard_labels(corpus, "Train", "emotion") == y["emotion"].argmax(1)).all()
    assert (hard_labels(corpus, "Train", "country") == y["country"]).all()
    with pytest.raises(ValueError, match="unknown task"):
        hard_labels(corpus, "Train", "age")


def test_fingerprint_changes_with_the_audio_not_the_labels(tiny_corpus):
    before = load_corpus(tiny_corpus).fingerprint
    _edit(tiny_corpus, lambda df: df.__setitem__("Age", df["Age"] + 1))
    assert load_corpus(tiny_corpus).fingerprint == before
    same_size = tiny_corpus / "wav" / "00102.wav"
    x, _ = sf.read(same_size)
    sf.write(same_size, 0.5 * x, 16000, subtype="PCM_16")  # other audio, same length and file size
    after_same_size = load_corpus(tiny_corpus).fingerprint
    assert after_same_size != before
    sf.write(tiny_corpus / "wav" / "00101.wav", np.zeros(9000), 16000, subtype="PCM_16")
    assert load_corpus(tiny_corpus).fingerprint not in (before, after_same_size)


def _problems_of(problems, name):
    return [p for p in problems if p.where.endswith(name)]


def test_truncated_and_nan_clips_are_errors(tiny_corpus):
    # Both pass a header-only check: the samples have to be read.
    path = tiny_corpus / "wav" / "00101.wav"
    sf.write(path, np.full(16000, 0.1), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 2 * 4000])
    x = np.full(8000, 0.1, np.float32)
    x[10] = np.nan
    sf.write(tiny_corpus / "wav" / "00102.wav", x, 16000, subtype="FLOAT")
    problems = check_corpus(tiny_corpus)
    assert [str(p) for p in _problems_of(problems, "00101.wav")] == [
        f"error: {path}: truncated: header declares 16000 frames, 4000 present"]
    assert [(p.severity, p.message) for p in _problems_of(problems, "00102.wav")] == [
        ("error", "audio contains NaN or infinite samples")]
    assert len(problems) == 2


def test_silent_and_over_long_clips_are_warnings(tiny_corpus):
    from exvo_keras.features.ssl import DEFAULT_MAX_SECONDS

    sf.write(tiny_corpus / "wav" / "00101.wav", np.zeros(8000), 16000, subtype="PCM_16")
    sf.write(tiny_corpus / "wav" / "00102.wav", np.full(8000, 5e-5), 16000, subtype="FLOAT")
    sf.write(tiny_corpus / "wav" / "00103.wav", np.full(8000, 5e-4), 16000, subtype="FLOAT")  # quiet, not silent
    long_s = DEFAULT_MAX_SECONDS + 1
    sf.write(tiny_corpus / "wav" / "00104.wav", np.full(int(long_s * 16000), 0.1), 16000, subtype="PCM_16")
    problems = check_corpus(tiny_corpus)
    assert all(p.severity == "warning" for p in problems)
    assert [p.message for p in _problems_of(problems, "00101.wav")] == [
        "silent: peak 0.0e+00 of full scale (below 1e-04)"]
    assert [p.message for p in _problems_of(problems, "00102.wav")] == [
        "silent: peak 5.0e-05 of full scale (below 1e-04)"]
    assert _problems_of(problems, "00103.wav") == []
    (long_clip,) = _problems_of(problems, "00104.wav")
    assert f"{long_s:.1f} s long, over the {DEFAULT_MAX_SECONDS:g} s SSL extraction limit" in long_clip.message
    assert len(problems) == 3


def test_check_corpus_reports_its_speed(tiny_corpus, capsys):
    from exvo_keras.cli import main

    assert main(["check-corpus", str(tiny_corpus), "-q"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^checked 14 clips in \d+\.\d s \(\d+ clips/s\)$", out, re.M), out
