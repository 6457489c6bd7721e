import wave
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import solve_toeplitz
from scipy.signal import butter, sosfilt

from conftest import read_rows, read_wav
from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.data.ood_demo import (
    GENERATOR_VERSION,
    PHONE_CLASSES,
    SER_CLASSES,
    SILENCE,
    VOWELS,
    make_ood_demo,
)

SER_COLUMNS = ["path", "label", "speaker"]
PHONE_COLUMNS = ["path", "start", "end", "label", "speaker"]
TINY = dict(ser_speakers=3, ser_clips_per_class=2, phone_speakers=2, phone_utterances=3)
MICRO = dict(ser_speakers=2, ser_clips_per_class=1, phone_speakers=2, phone_utterances=1)
# Enough speakers to hold some out; speakers alternate male/female, so holding out the last two keeps one of each.
LEARN = dict(ser_speakers=10, ser_clips_per_class=2, phone_speakers=6, phone_utterances=3)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return make_ood_demo(tmp_path_factory.mktemp("tiny") / "ood", seed=0, progress=False, **TINY)


def test_returns_both_lists_and_leaves_no_partial(tiny):
    root = tiny["ser"].parent.parent
    assert tiny == {"ser": root / "ser" / "ser.csv", "phones": root / "phones" / "phones.csv"}
    assert tiny["ser"].is_file() and tiny["phones"].is_file()
    assert not (root.parent / "ood.partial").exists()
    readme = (root / "README.txt").read_text()
    assert "seed 0" in readme and GENERATOR_VERSION in readme and "synthetic" in readme.lower()


def test_wav_files_are_16k_mono_pcm16_and_all_listed(tiny):
    for key, (shortest, longest) in (("ser", (1.0, 2.5)), ("phones", (1.5, 3.0))):
        folder = tiny[key].parent
        _, rows = read_rows(tiny[key])
        listed = {r["path"] for r in rows}
        assert listed == {f"wav/{p.name}" for p in (folder / "wav").iterdir()}
        for rel in listed:
            with wave.open(str(folder / rel)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
                assert shortest - 1e-3 <= w.getnframes() / SAMPLE_RATE <= longest + 1e-3
            x = read_wav(folder / rel)
            assert 0.0 < np.max(np.abs(x)) < 0.99  # audible, not clipped


def test_ser_list_is_balanced_per_speaker(tiny):
    header, rows = read_rows(tiny["ser"])
    assert header == SER_COLUMNS
    assert len(rows) == 3 * 4 * 2
    assert len({r["path"] for r in rows}) == len(rows)
    per_speaker = defaultdict(Counter)
    for r in rows:
        assert r["label"] in SER_CLASSES
        per_speaker[r["speaker"]][r["label"]] += 1
        # The file name must not leak the class.
        assert not any(c in r["path"] for c in SER_CLASSES)
    assert len(per_speaker) == 3
    assert all(counts == Counter({c: 2 for c in SER_CLASSES}) for counts in per_speaker.values())


def test_phone_segments_are_ordered_labelled_steady_parts(tiny):
    header, rows = read_rows(tiny["phones"])
    assert header == PHONE_COLUMNS
    folder = tiny["phones"].parent
    by_file = defaultdict(list)
    for r in rows:
        by_file[r["path"]].append(r)
    assert len(by_file) == 2 * 3
    assert {r["speaker"] for r in rows} == {rs[0]["speaker"] for rs in by_file.values()}
    assert len({r["speaker"] for r in rows}) == 2
    assert {r["label"] for r in rows} == set(PHONE_CLASSES)
    for path, segs in by_file.items():
        assert len({r["speaker"] for r in segs}) == 1
        with wave.open(str(folder / path)) as w:
            duration = w.getnframes() / SAMPLE_RATE
        times = [(float(r["start"]), float(r["end"])) for r in segs]
        assert all(0.0 <= s < e <= duration + 1e-4 for s, e in times)
        # Segments never overlap, and transitions between them stay unlabelled.
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(times, times[1:]))
        assert segs[0]["label"] == SILENCE and segs[-1]["label"] == SILENCE
        assert times[0][0] == 0.0 and times[-1][1] == pytest.approx(duration, abs=1e-4)
        for r, (s, e) in zip(segs, times):
            if r["label"] in VOWELS:
                assert 0.08 - 1e-3 <= e - s <= 0.30 + 1e-3
        # A vowel never directly follows itself, which would hide the boundary between them.
        labels = [r["label"] for r in segs]
        assert all(a != b for a, b in zip(labels, labels[1:]))


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path):
    first = make_ood_demo(tmp_path / "a", seed=3, progress=False, **MICRO)
    again = make_ood_demo(tmp_path / "b", seed=3, progress=False, **MICRO)
    other = make_ood_demo(tmp_path / "c", seed=4, progress=False, **MICRO)
    ref = tree_bytes(tmp_path / "a")
    assert tree_bytes(tmp_path / "b") == ref
    assert first["ser"].read_bytes() == again["ser"].read_bytes()
    differ = tree_bytes(tmp_path / "c")
    wavs = [k for k in ref if k.endswith(".wav")]
    assert wavs and all(differ.get(k) != ref[k] for k in wavs)
    assert other["phones"].read_bytes() != first["phones"].read_bytes()


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "ood"
    make_ood_demo(out, seed=0, progress=False, **MICRO)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_ood_demo(out, seed=1, progress=False, **MICRO)
    assert "seed 0" in (out / "README.txt").read_text()
    make_ood_demo(out, seed=1, progress=False, **{**MICRO, "ser_clips_per_class": 2}, overwrite=True)
    assert "seed 1" in (out / "README.txt").read_text()
    assert len(list((out / "ser" / "wav").iterdir())) == 2 * 4 * 2


def test_never_replaces_a_folder_that_is_not_an_ood_demo(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_ood_demo(tmp_path / "mine", progress=False, overwrite=True, **MICRO)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "mine.partial").exists()


def test_stale_partial_is_rebuilt(tmp_path):
    stale = tmp_path / "ood.partial"
    (stale / "ser" / "wav").mkdir(parents=True)
    (stale / "ser" / "wav" / "junk.wav").write_bytes(b"junk")
    out = make_ood_demo(tmp_path / "ood", progress=False, **MICRO)
    assert not stale.exists()
    assert not (out["ser"].parent / "wav" / "junk.wav").exists()
    assert len(read_rows(out["ser"])[1]) == len(list((out["ser"].parent / "wav").iterdir())) == 8


@pytest.mark.parametrize("bad", [dict(ser_speakers=1), dict(phone_speakers=1), dict(ser_clips_per_class=0),
                                 dict(phone_utterances=0)])
def test_rejects_designs_without_held_out_speakers_or_clips(tmp_path, bad):
    with pytest.raises(ValueError):
        make_ood_demo(tmp_path / "ood", progress=False, **{**MICRO, **bad})
    assert not (tmp_path / "ood").exists()


# Learnability smoke checks: plain features must follow the classes on speakers held out of the centroids,
# without the task being trivial.

WINDOW = SAMPLE_RATE // 4  # the frame CNNs' 250 ms
BAND_EDGES = np.geomspace(100.0, 8000.0, 17)
LOWPASS = butter(4, 900, fs=SAMPLE_RATE, output="sos")


def log_bands(frame: np.ndarray) -> np.ndarray:
    spec = np.abs(np.fft.rfft(frame * np.hanning(frame.size))) ** 2
    freqs = np.fft.rfftfreq(frame.size, 1.0 / SAMPLE_RATE)
    return np.log([spec[(freqs >= lo) & (freqs < hi)].sum() + 1e-10
                   for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])])


def nearest_centroid_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
    z = (x - mu) / sd
    classes = np.unique(y[train])
    centroids = np.array([z[train & (y == c)].mean(0) for c in classes])
    pred = classes[np.argmin(((z[~train, None] - centroids) ** 2).sum(-1), axis=1)]
    return float(np.mean(pred == y[~train]))


def median_f0(x: np.ndarray) -> float:
    """Autocorrelation pitch of the loud frames, low-passed so formant ringing is not taken for f0."""
    frame, hop = 640, 160
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    low = np.lib.stride_tricks.sliding_window_view(sosfilt(LOWPASS, x), frame)[::hop][rms > 0.3 * rms.max()]
    low = low - low.mean(axis=1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(low, 2 * frame, axis=1)) ** 2, axis=1)
    ac /= ac[:, :1] + 1e-12
    lags = np.arange(SAMPLE_RATE // 600, SAMPLE_RATE // 60)
    best = lags[ac[:, lags].argmax(axis=1)]
    voiced = ac[np.arange(best.size), best] > 0.5
    return float(np.median(SAMPLE_RATE / best[voiced]))


def lpc_f1_f2(x: np.ndarray, order: int = 18) -> tuple[float, float]:
    x = np.append(x[0], x[1:] - 0.97 * x[:-1]) * np.hamming(x.size)
    r = np.correlate(x, x, "full")[x.size - 1:x.size + order]
    a = solve_toeplitz(r[:order], -r[1:order + 1])
    roots = np.roots(np.concatenate([[1.0], a]))
    roots = roots[np.imag(roots) > 0]
    freqs = np.angle(roots) * SAMPLE_RATE / (2 * np.pi)
    bandwidths = -np.log(np.abs(roots)) * SAMPLE_RATE / np.pi
    formants = np.sort(freqs[(freqs > 150) & (bandwidths < 500)])
    return (formants[0], formants[1]) if formants.size >= 2 else (np.nan, np.nan)


@pytest.fixture(scope="module")
def learn(tmp_path_factory) -> dict[str, Path]:
    return make_ood_demo(tmp_path_factory.mktemp("learn") / "ood", seed=0, progress=False, **LEARN)


@pytest.fixture(scope="module")
def ser_clips(learn) -> list[dict]:
    _, rows = read_rows(learn["ser"])
    return [{**r, "x": read_wav(learn["ser"].parent / r["path"])} for r in rows]


def test_ser_prosody_orders_the_classes_within_speakers(ser_clips):
    # Compare each clip with its own speaker's mean, as speaker level and sex would swamp raw values.
    level, pitch = defaultdict(list), defaultdict(list)
    by_speaker = defaultdict(list)
    for c in ser_clips:
        by_speaker[c["speaker"]].append(c)
    for clips in by_speaker.values():
        db = np.array([10 * np.log10(np.mean(c["x"] ** 2)) for c in clips])
        st = np.array([12 * np.log2(median_f0(c["x"])) for c in clips])
        for c, d, s in zip(clips, db - db.mean(), st - st.mean()):
            level[c["label"]].append(d)
            pitch[c["label"]].append(s)
    lv = {k: np.mean(v) for k, v in level.items()}
    f0 = {k: np.mean(v) for k, v in pitch.items()}
    assert lv["anger"] > lv["neutral"] + 3 > lv["sad"] + 6
    assert lv["happy"] > lv["neutral"] > lv["sad"]
    assert f0["happy"] > f0["neutral"] + 1.5 and f0["anger"] > f0["neutral"] + 1.0
    assert f0["neutral"] > f0["sad"] + 0.5


def test_ser_classes_are_learnable_from_250ms_windows_on_held_out_speakers(ser_clips):
    feats, labels, held_out = [], [], []
    speakers = sorted({c["speaker"] for c in ser_clips})
    for c in ser_clips:
        for start in range(0, c["x"].size - WINDOW + 1, WINDOW // 2):
            feats.append(log_bands(c["x"][start:start + WINDOW]))
            labels.append(SER_CLASSES.index(c["label"]))
            held_out.append(c["speaker"] in speakers[-2:])
    acc = nearest_centroid_accuracy(np.array(feats), np.array(labels), ~np.array(held_out))
    # Chance is 0.25. Not near 1 either: speakers' levels and voices overlap the classes.
    assert 0.35 < acc < 0.9


def test_ser_levels_overlap_across_speakers(ser_clips):
    # Loudness alone must not separate neighbouring classes once speakers differ.
    db = defaultdict(list)
    for c in ser_clips:
        db[c["label"]].append(10 * np.log10(np.mean(c["x"] ** 2)))
    assert max(db["neutral"]) > min(db["happy"])
    assert max(db["sad"]) > min(db["neutral"])


@pytest.fixture(scope="module")
def phone_segments(learn) -> list[dict]:
    _, rows = read_rows(learn["phones"])
    folder = learn["phones"].parent
    audio = {p: read_wav(folder / p) for p in {r["path"] for r in rows}}
    out = []
    for r in rows:
        a, b = round(float(r["start"]) * SAMPLE_RATE), round(float(r["end"]) * SAMPLE_RATE)
        out.append({**r, "x": audio[r["path"]][a:b]})
    return out


def test_vowel_formants_follow_the_vowel_chart(phone_segments):
    formants = defaultdict(list)
    for seg in phone_segments:
        if seg["label"] in VOWELS:
            formants[seg["label"]].append(lpc_f1_f2(seg["x"]))
    f1 = {v: np.nanmedian([f[0] for f in fs]) for v, fs in formants.items()}
    f2 = {v: np.nanmedian([f[1] for f in fs]) for v, fs in formants.items()}
    by_f1 = sorted(f1, key=f1.get)
    by_f2 = sorted(f2, key=f2.get)
    assert set(by_f1[:2]) == {"iy", "uw"}       # close vowels
    assert set(by_f1[-2:]) == {"aa", "ae"}      # open vowels
    assert by_f2[-1] == "iy"                    # front
    assert set(by_f2[:2]) == {"uw", "ao"}       # back, rounded
    assert f2["eh"] > f2["ax"] > f2["aa"]


def test_phones_are_learnable_on_held_out_speakers(phone_segments):
    speakers = sorted({s["speaker"] for s in phone_segments})
    feats, labels, held_out = [], [], []
    for seg in phone_segments:
        mid = seg["x"].size // 2
        # The shortest steady vowel is 80 ms; take that much from its middle.
        feats.append(log_bands(seg["x"][max(0, mid - 640):mid + 640]))
        labels.append(PHONE_CLASSES.index(seg["label"]))
        held_out.append(seg["speaker"] in speakers[-2:])
    acc = nearest_centroid_accuracy(np.array(feats), np.array(labels), ~np.array(held_out))
    assert acc > 0.6  # chance is 1/8
