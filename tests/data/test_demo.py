import re
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfilt
from scipy.stats import kruskal, spearmanr

from conftest import read_rows, read_wav
from exvo_keras.data.demo import (
    ACOUSTIC_WEIGHTS,
    DATA_INFO,
    GENERATOR_VERSION,
    TEST_LABELS,
    make_demo,
)
from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE, SPLITS

COLUMNS = ["File_ID", "Subject_ID", "Split", "Age", "Country", "Country_string", *EMOTIONS]
LABELS = COLUMNS[3:]
TINY = dict(n_speakers=12, clips_per_speaker=4)


def wav_path(root: Path, file_id: str) -> Path:
    return root / "wav" / f"{file_id[1:-1]}.wav"


def labelled(root: Path) -> list[dict[str, str]]:
    """Train/Val rows from data_info.csv plus the hidden Test rows."""
    _, rows = read_rows(root / DATA_INFO)
    _, test = read_rows(root / TEST_LABELS)
    return [r for r in rows if r["Split"] != "Test"] + test


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_demo(tmp_path_factory.mktemp("tiny") / "corpus", seed=0, **TINY)


def test_returns_path_and_leaves_no_partial(tiny):
    assert (tiny / DATA_INFO).is_file()
    assert not (tiny.parent / "corpus.partial").exists()


def test_columns_and_file_ids_match_wavs(tiny):
    header, rows = read_rows(tiny / DATA_INFO)
    assert header == COLUMNS
    assert len(rows) == 48
    assert all(re.fullmatch(r"\[\d{5}\]", r["File_ID"]) for r in rows)
    assert all(re.fullmatch(r"Speaker_\d{4}", r["Subject_ID"]) for r in rows)
    ids = [r["File_ID"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert {p.name for p in (tiny / "wav").iterdir()} == {f"{i[1:-1]}.wav" for i in ids}


def test_wav_format(tiny):
    for path in sorted((tiny / "wav").iterdir()):
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
            assert 0.5 <= w.getnframes() / SAMPLE_RATE <= 3.0
        peak = np.max(np.abs(read_wav(path)))
        assert 0.29 <= peak <= 0.91


def test_labelled_rows_are_valid(tiny):
    rows = labelled(tiny)
    assert len(rows) == 48
    for r in rows:
        assert all(re.fullmatch(r"\d\.\d{4}", r[e]) for e in EMOTIONS)
        emotions = np.array([float(r[e]) for e in EMOTIONS])
        assert emotions.max() == 1.0
        assert emotions.min() >= 0.0
        assert 18 <= int(r["Age"]) <= 40
        assert r["Country_string"] == COUNTRIES[int(r["Country"])]


def test_test_labels_hidden_in_data_info_and_given_beside_it(tiny):
    _, rows = read_rows(tiny / DATA_INFO)
    test_rows = [r for r in rows if r["Split"] == "Test"]
    assert test_rows
    assert all(r[c] == "" for r in test_rows for c in LABELS)
    assert all(r[c] != "" for r in rows if r["Split"] != "Test" for c in LABELS)

    header, hidden = read_rows(tiny / TEST_LABELS)
    assert header == COLUMNS
    assert [(r["File_ID"], r["Subject_ID"]) for r in hidden] == [
        (r["File_ID"], r["Subject_ID"]) for r in test_rows]
    assert all(r[c] != "" for r in hidden for c in LABELS)


def test_splits_are_speaker_disjoint_and_balanced(tiny):
    rows = labelled(tiny)
    splits_of = {}
    facts_of = {}
    for r in rows:
        splits_of.setdefault(r["Subject_ID"], set()).add(r["Split"])
        facts_of.setdefault(r["Subject_ID"], set()).add((r["Age"], r["Country"]))
    assert all(len(s) == 1 for s in splits_of.values())
    assert all(len(f) == 1 for f in facts_of.values())
    per_split = [sum(s == {split} for s in splits_of.values()) for split in SPLITS]
    assert all(3 <= n <= 5 for n in per_split), per_split
    assert {int(r["Country"]) for r in rows} == set(range(len(COUNTRIES)))


def test_readme_names_seed_and_version(tiny):
    text = (tiny / "README.txt").read_text()
    assert "ynthetic" in text and "seed 0" in text and GENERATOR_VERSION in text


def corpus_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tiny, tmp_path):
    again = make_demo(tmp_path / "again", seed=0, **TINY)
    assert corpus_bytes(again) == corpus_bytes(tiny)
    other = make_demo(tmp_path / "other", seed=1, **TINY)
    assert (other / DATA_INFO).read_bytes() != (tiny / DATA_INFO).read_bytes()
    assert corpus_bytes(other)["wav/00000.wav"] != corpus_bytes(tiny)["wav/00000.wav"]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = make_demo(tmp_path / "c", seed=0, n_speakers=3, clips_per_speaker=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_demo(out, seed=1, n_speakers=3, clips_per_speaker=1)
    assert "seed 0" in (out / "README.txt").read_text()
    make_demo(out, seed=1, n_speakers=3, clips_per_speaker=2, overwrite=True)
    assert "seed 1" in (out / "README.txt").read_text()
    assert len(list((out / "wav").iterdir())) == 6


def test_never_replaces_a_folder_that_is_not_a_corpus(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_demo(tmp_path / "mine", n_speakers=3, clips_per_speaker=1, overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_stale_partial_is_rebuilt(tmp_path):
    stale = tmp_path / "c.partial"
    (stale / "wav").mkdir(parents=True)
    (stale / "wav" / "99999.wav").write_bytes(b"junk")
    out = make_demo(tmp_path / "c", n_speakers=3, clips_per_speaker=1)
    assert not stale.exists()
    assert not (out / "wav" / "99999.wav").exists()
    assert len(list((out / "wav").iterdir())) == 3


def test_rejects_too_few_speakers(tmp_path):
    with pytest.raises(ValueError):
        make_demo(tmp_path / "c", n_speakers=2)
    assert not (tmp_path / "c").exists()


# Learnability smoke checks: plain per-clip features must move with the labels the
# generator says they drive.

LOWPASS = butter(4, 900, fs=SAMPLE_RATE, output="sos")
FRAME, HOP = 640, 160


def clip_features(x: np.ndarray) -> dict[str, float]:
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    loud = rms > 0.3 * rms.max()
    zcr = np.mean(np.abs(np.diff(np.signbit(frames[loud]), axis=1)))

    # Autocorrelation pitch on low-passed frames, so formant ringing is not taken for f0.
    low = np.lib.stride_tricks.sliding_window_view(sosfilt(LOWPASS, x), FRAME)[::HOP][loud]
    low = low - low.mean(axis=1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(low, 2 * FRAME, axis=1)) ** 2, axis=1)
    ac /= ac[:, :1] + 1e-12
    lags = np.arange(SAMPLE_RATE // 700, SAMPLE_RATE // 70)
    best = lags[ac[:, lags].argmax(axis=1)]
    voiced = ac[np.arange(len(best)), best] > 0.6
    f0 = np.median(SAMPLE_RATE / best[voiced]) if voiced.any() else np.nan
    return {"zcr": zcr, "voiced": voiced.mean(), "f0": f0}


@pytest.fixture(scope="module")
def learn(tmp_path_factory) -> list[dict]:
    root = make_demo(tmp_path_factory.mktemp("learn") / "corpus", seed=0,
                     n_speakers=40, clips_per_speaker=6)
    rows = labelled(root)
    pitch_weights = np.array([ACOUSTIC_WEIGHTS[e][0] for e in EMOTIONS])
    out = []
    for r in rows:
        emotions = np.array([float(r[e]) for e in EMOTIONS])
        out.append({
            **clip_features(read_wav(wav_path(root, r["File_ID"]))),
            "speaker": r["Subject_ID"],
            "age": int(r["Age"]),
            "country": int(r["Country"]),
            "emotions": dict(zip(EMOTIONS, emotions)),
            "emotion_pitch_st": float(emotions @ pitch_weights),
        })
    return out


def test_gasp_emotions_make_clips_less_voiced(learn):
    gaspiness = [np.mean([c["emotions"][e] for e in ("Awe", "Fear", "Surprise")]) for c in learn]
    r, _ = spearmanr(gaspiness, [c["voiced"] for c in learn])
    assert r < -0.4, r


def test_surprise_raises_pitch(learn):
    voiced = [c for c in learn if not np.isnan(c["f0"])]
    r, _ = spearmanr([c["emotions"]["Surprise"] for c in voiced], [c["f0"] for c in voiced])
    assert r > 0.2, r


def test_pitch_follows_emotions_within_each_speakers_laughs(learn):
    # Holding burst type and speaker fixed, the continuous emotion mix still moves f0,
    # so emotion regression has more to learn than the burst type.
    laughs = {}
    for c in learn:
        if c["emotions"]["Amusement"] == 1.0 and not np.isnan(c["f0"]):
            laughs.setdefault(c["speaker"], []).append(c)
    driven, measured = [], []
    for clips in laughs.values():
        if len(clips) > 1:
            st = np.array([c["emotion_pitch_st"] for c in clips])
            f0 = 12 * np.log2([c["f0"] for c in clips])
            driven.extend(st - st.mean())
            measured.extend(f0 - f0.mean())
    assert len(driven) > 30
    r, _ = spearmanr(driven, measured)
    assert r > 0.3, r


def test_older_speakers_have_lower_pitch(learn):
    residual = {}
    for c in learn:
        if c["voiced"] > 0.5:
            st = 12 * np.log2(c["f0"]) - c["emotion_pitch_st"]
            residual.setdefault(c["speaker"], []).append(st)
    ages = {c["speaker"]: c["age"] for c in learn}
    speakers = sorted(residual)
    assert len(speakers) > 25
    r, _ = spearmanr([np.median(residual[s]) for s in speakers], [ages[s] for s in speakers])
    assert r < -0.2, r


def test_country_changes_timbre(learn):
    groups = [[c["zcr"] for c in learn if c["country"] == k] for k in range(len(COUNTRIES))]
    assert kruskal(*groups).pvalue < 0.01
