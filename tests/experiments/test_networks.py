"""The paper's frame CNNs as stages: labelled lists, training sets, train / score / embed, trained weights."""

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import exvo_keras.experiments.networks as networks
import exvo_keras.training.frame_cnn as frame_cnn
from conftest import write_corpus
from exvo_keras.data.audio import load_audio
from exvo_keras.data.corpus import hard_labels, load_corpus
from exvo_keras.data.labels import EMOTIONS
from exvo_keras.experiments.networks import extract_network, list_training_sets, read_list, train_network
from exvo_keras.metrics import uar, war
from exvo_keras.registry import NETWORKS, network
from exvo_keras.store import read_store, store_attrs
from exvo_keras.training.frame_cnn import ClipSet, embed_clips, utterance_decisions
from exvo_keras.workspace import Workspace

RATE = 16000
# The demo profile shrunk to one epoch (a window every 10 frames): this is about the plumbing, not the learning.
TINY_DEMO = {"hop_frames": 10, "max_epochs": 1, "halving_starts": 2}


def _tone(path, freq, seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, RATE, subtype="PCM_16")


# ---------------------------------------------------------------- labelled lists


@pytest.mark.parametrize("content, message", [
    ("path,speaker\na.wav,s1\n", "missing column.*label"),
    ("file,label\na.wav,x\n", "missing column.*path"),
    ("path,start,label\na.wav,0.1,x\n", "both start and end"),
    ("path,end,label\na.wav,0.1,x\n", "both start and end"),
    ("path,label\na.wav,x\nb.wav,\n", r"empty label in row\(s\) \[1\]"),
    ("", "missing column.*path, label"),
])
def test_read_list_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "my_list.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        read_list(path)
    assert str(path) in str(err.value)


def test_read_list_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="path,label") as err:
        read_list(tmp_path / "nowhere.csv")
    assert str(tmp_path / "nowhere.csv") in str(err.value)


def test_utterance_list_training_sets(tmp_path):
    root = tmp_path / "ser"
    rows = []
    labels = ["sad", "angry", "happy", "neutral"]
    for s in range(10):
        for k in range(2):
            path = f"wav/spk{s}/u{k}.wav"
            _tone(root / path, 200 + 40 * s + 7 * k, 0.2 + 0.01 * k, seed=s)
            rows.append({"path": path, "label": labels[(s + k) % 4], "speaker": f"spk{s}"})
    pd.DataFrame(rows).to_csv(root / "ser.csv", index=False)
    fit, cv, names = list_training_sets(root / "ser.csv", Workspace(tmp_path / "work"), "raw", progress=False)

    assert names == ["angry", "happy", "neutral", "sad"]
    assert len(fit.keys) + len(cv.keys) == 20 and len(cv.keys) >= 1
    assert sorted(fit.keys + cv.keys) == sorted(r["path"] for r in rows)
    speaker = {r["path"]: r["speaker"] for r in rows}
    assert not {speaker[k] for k in fit.keys} & {speaker[k] for k in cv.keys}  # speaker-independent
    label = {r["path"]: names.index(r["label"]) for r in rows}
    for clips in (fit, cv):
        assert clips.labels.dtype == np.int32
        assert list(clips.labels) == [label[k] for k in clips.keys]
        for i, key in enumerate(clips.keys):
            np.testing.assert_array_equal(clips.load(i), load_audio(root / key))
    # the cache holds flat file names under WORK/signals/list-<fingerprint>/raw
    cached = list((tmp_path / "work" / "signals").glob("list-*/raw/*.npy"))
    assert len(cached) == 20 and all("/" not in p.name for p in cached)
    assert any(p.name == "wav__spk3__u1.wav.npy" for p in cached)


def test_segment_list_slices_seconds_and_splits_by_row_without_speakers(tmp_path):
    root = tmp_path / "phones"
    _tone(root / "wav" / "a.wav", 300, 1.0, seed=1)
    _tone(root / "wav" / "b.wav", 500, 0.8, seed=2)
    rows = [("wav/a.wav", 0.0, 0.25, "aa"), ("wav/a.wav", 0.25, 0.6, "iy"), ("wav/a.wav", 0.6, 1.0, "sil"),
            ("wav/b.wav", 0.1, 0.35, "iy"), ("wav/b.wav", 0.35, 0.8, "aa")] * 2
    table = pd.DataFrame(rows, columns=["path", "start", "end", "label"])
    table.to_csv(root / "phones.csv", index=False)
    fit, cv, names = list_training_sets(root / "phones.csv", Workspace(tmp_path / "work"), "raw", progress=False)

    assert names == ["aa", "iy", "sil"]
    assert (len(fit.keys), len(cv.keys)) == (9, 1)
    audio = {p: load_audio(root / p) for p in ("wav/a.wav", "wav/b.wav")}
    seen = []
    for clips in (fit, cv):
        for i in range(len(clips.keys)):
            x = clips.load(i)
            # find the row this clip is: same file, same label, samples equal to its slice
            match = [r for r, (p, start, end, lab) in enumerate(rows)
                     if p == clips.keys[i] and names.index(lab) == clips.labels[i]
                     and len(x) == int(end * RATE) - int(start * RATE)
                     and np.array_equal(x, audio[p][int(start * RATE):int(end * RATE)])]
            assert match, f"clip {clips.keys[i]} is no row's slice"
            seen.append(match[0])
    assert len(seen) == 10
    assert len(list((tmp_path / "work" / "signals").glob("list-*/raw/*.npy"))) == 2  # one cached file per wav


# ---------------------------------------------------------------- an ExVo network: train, score, embed


@pytest.fixture(scope="module")
def exvo_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("net")
    root = write_corpus(base / "corpus")
    corpus = load_corpus(root)
    work = Workspace(base / "work")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(frame_cnn.PROFILES, "demo", dict(TINY_DEMO))
        folder = train_network(network("raw_exvo_er"), corpus, work, "demo", progress=False, verbose=0)
    return corpus, work, folder


@pytest.fixture
def tiny_demo(monkeypatch):
    monkeypatch.setitem(frame_cnn.PROFILES, "demo", dict(TINY_DEMO))


def _raw_clips(corpus, ids):
    signals = [load_audio(corpus.wav_path(f)) for f in ids]
    return ClipSet(list(ids), lambda i: signals[i], np.zeros(len(ids), np.int32))


def test_exvo_network_is_trained_and_scored_on_val(exvo_run):
    import keras

    corpus, work, folder = exvo_run
    assert folder == work.network("raw_exvo_er") and folder.path == work.root / "networks" / "raw_exvo_er"
    metrics = json.loads((folder.path / "metrics.json").read_text())
    assert metrics["network"] == "raw_exvo_er" and metrics["profile"] == "demo"
    assert metrics["classes"] == list(EMOTIONS)
    assert 0.0 <= metrics["cv_clip_accuracy"] <= 1.0
    val = metrics["Val"]
    assert val["clips"] == len(corpus.file_ids("Val")) == 4
    assert 0.0 <= val["uar"] <= 1.0 and 0.0 <= val["war"] <= 1.0
    assert json.loads((folder.path / "config.json").read_text())["hop_frames"] == TINY_DEMO["hop_frames"]
    assert json.loads((folder.path / "state.json").read_text())["done"] is True

    decisions = pd.read_csv(folder.path / "decisions_Val.csv", dtype={"File_ID": str})
    assert list(decisions["File_ID"]) == corpus.file_ids("Val")
    np.testing.assert_array_equal(decisions["true"], hard_labels(corpus, "Val", "emotion"))
    assert val["uar"] == pytest.approx(uar(decisions["true"], decisions["predicted"]))
    assert val["war"] == pytest.approx(war(decisions["true"], decisions["predicted"]))
    assert val["predicted_classes"] == sorted(set(decisions["predicted"]))
    assert val["collapsed"] == (decisions["predicted"].nunique() == 1)
    assert metrics["class_weighting"] == "balanced"
    # the decisions are the best model's, on each Val clip's own audio
    model = keras.saving.load_model(folder.path / "best.keras")
    expected = utterance_decisions(model, _raw_clips(corpus, corpus.file_ids("Val")), hop_frames=10)
    np.testing.assert_array_equal(decisions["predicted"], expected)


def test_scored_network_is_not_rerun(exvo_run, monkeypatch):
    corpus, work, folder = exvo_run
    metrics = (folder.path / "metrics.json").read_text()

    def fail(*a, **k):
        raise AssertionError("retrained")

    monkeypatch.setattr(frame_cnn, "train_frame_cnn", fail)
    assert train_network(network("raw_exvo_er"), corpus, work, "demo", progress=False, verbose=0) == folder
    assert (folder.path / "metrics.json").read_text() == metrics


def test_fresh_process_takes_weights_and_extracts_an_aligned_20d_store(exvo_run, tmp_path):
    """`train-network --weights` and `extract-network` run in processes of their own: loading a .keras file must
    not rely on FrameCNN having been imported by someone else."""
    import keras

    corpus, work, folder = exvo_run
    weights = tmp_path / "given.keras"
    shutil.copyfile(folder.path / "best.keras", weights)
    work2 = tmp_path / "work"
    shutil.copytree(work, work2 / "trained")
    # One process for both, to save a TensorFlow start-up: extract-network first, then FrameCNN's registration
    # is forgotten again so that train-network --weights also starts from nothing.
    script = textwrap.dedent(f"""
        import sys
        from exvo_keras.data.corpus import load_corpus
        from exvo_keras.experiments.networks import extract_network, train_network
        from exvo_keras.registry import network
        from exvo_keras.workspace import Workspace
        corpus, net = load_corpus({str(corpus.root)!r}), network("raw_exvo_er")
        print(extract_network(net, corpus, Workspace({str(work2 / "trained")!r}), progress=False))
        import keras
        keras.saving.get_custom_objects().pop("exvo_keras>FrameCNN")
        sys.modules.pop("exvo_keras.models.frame_cnn")
        train_network(net, corpus, Workspace({str(work2 / "given")!r}), "demo", weights={str(weights)!r},
                      progress=False)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    store = work2 / "trained" / "features" / "raw_exvo_er.h5"
    assert done.stdout.strip().endswith(str(store))
    metrics = json.loads((work2 / "given" / "networks" / "raw_exvo_er" / "metrics.json").read_text())
    assert metrics["weights"] == str(weights) and 0 <= metrics["Val"]["uar"] <= 1

    ids = corpus.file_ids()
    emb = read_store(store, ids, corpus_fingerprint=corpus.fingerprint)
    assert emb.shape == (len(ids), 20) and np.isfinite(emb).all()
    settings = store_attrs(store)["settings"]
    assert settings["network"] == "raw_exvo_er" and settings["signal"] == "raw"
    # row i is File_ID i's embedding, computed here from the audio and the trained weights
    embedder = keras.saving.load_model(folder.path / "best.keras").embedding_model()
    direct = embed_clips(embedder, _raw_clips(corpus, ids), hop_frames=settings["hop_frames"])
    np.testing.assert_allclose(emb, direct, rtol=1e-4, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])


def test_trained_weights_from_a_file_are_scored_without_training(exvo_run, tmp_path, tiny_demo, monkeypatch):
    corpus, work, folder = exvo_run
    weights = tmp_path / "given.keras"
    shutil.copyfile(folder.path / "best.keras", weights)

    def fail(*a, **k):
        raise AssertionError("trained although weights were given")

    monkeypatch.setattr(frame_cnn, "train_frame_cnn", fail)
    monkeypatch.setattr(networks, "training_sets", fail)

    work2 = Workspace(tmp_path / "work")
    out = train_network(network("raw_exvo_er"), corpus, work2, "demo", weights=weights, progress=False)
    metrics = json.loads((out.path / "metrics.json").read_text())
    assert metrics["weights"] == str(weights) and "Val" in metrics
    assert (out.path / "best.keras").read_bytes() == weights.read_bytes()
    ours = pd.read_csv(out.path / "decisions_Val.csv", dtype={"File_ID": str})
    trained = pd.read_csv(folder.path / "decisions_Val.csv", dtype={"File_ID": str})
    pd.testing.assert_frame_equal(ours, trained)
    assert metrics["Val"] == json.loads((folder.path / "metrics.json").read_text())["Val"]

    # an out-of-domain network needs no list when its weights are given
    out = train_network(network("raw_ser"), corpus, work2, "demo", weights=weights, progress=False)
    assert json.loads((out.path / "metrics.json").read_text())["weights"] == str(weights)

    with pytest.raises(FileNotFoundError, match="missing.keras"):
        train_network(network("zff_ser"), corpus, work2, "demo", weights=tmp_path / "missing.keras")


def test_missing_list_or_weights_says_what_to_supply(tiny_corpus, tmp_path, tiny_demo):
    corpus = load_corpus(tiny_corpus)
    with pytest.raises(FileNotFoundError) as err:
        train_network(network("raw_ser"), corpus, Workspace(tmp_path / "work"), "demo", lists={}, progress=False)
    assert "--list ser=" in str(err.value) and "--weights raw_ser=" in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"best\.keras.*train-network zff_exvo_cr"):
        extract_network(network("zff_exvo_cr"), corpus, Workspace(tmp_path / "work"), progress=False)
    assert not (tmp_path / "work" / "networks" / "raw_ser" / "metrics.json").exists()


def test_trained_network_reads_its_folder_and_figure2_draws_it(exvo_run, tmp_path):
    from exvo_keras.experiments.filters import figure2
    from exvo_keras.experiments.networks import TrainedNetwork

    _, work, folder = exvo_run
    trained = TrainedNetwork.load(network("raw_exvo_er"), work)
    assert trained.folder == folder and trained.metrics["profile"] == "demo"
    assert trained.hop_frames == TINY_DEMO["hop_frames"]
    assert trained.weights_sha1 == hashlib.sha1(folder.best.read_bytes()).hexdigest()[:16]
    # a folder whose metrics.json predates hop_frames: the hop its config.json was trained with
    old = TrainedNetwork(trained.net, folder, trained.model, {"profile": "demo"})
    assert old.hop_frames == json.loads((folder.path / "config.json").read_text())["hop_frames"]
    path, drawn = figure2(work, tmp_path / "figure2.png")
    assert path.exists() and drawn == ["Raw(ExVo)-ER"]
    with pytest.raises(FileNotFoundError, match="train-network zff_ser"):
        TrainedNetwork.load(network("zff_ser"), work)


def test_network_registry():
    assert {n.signal for n in NETWORKS.values()} == {"raw", "zff"}
    assert network("raw_asr").architecture == "asr" and network("zff_exvo_cr").task == "country"
    with pytest.raises(KeyError, match="raw_exvo_er"):
        network("raw_exvo")


def test_table1_reports_a_network_that_collapsed_to_one_class(exvo_run):
    from exvo_keras.experiments.report import table1_markdown
    from exvo_keras.experiments.tables import table1_frame

    corpus, work, folder = exvo_run
    metrics = json.loads((folder.path / "metrics.json").read_text())
    saved = (folder.path / "metrics.json").read_text()
    try:
        metrics["Val"].update(collapsed=True, predicted_classes=[2])
        (folder.path / "metrics.json").write_text(json.dumps(metrics))
        frame = table1_frame(work)
        row = frame[frame["system"] == network("raw_exvo_er").label].iloc[0]
        assert row["status"].startswith("run: collapsed to one class")
        assert "collapsed to one class" in table1_markdown(frame, "")
        metrics["Val"]["collapsed"] = False
        (folder.path / "metrics.json").write_text(json.dumps(metrics))
        frame = table1_frame(work)
        assert frame[frame["system"] == network("raw_exvo_er").label].iloc[0]["status"] == "run"
    finally:
        (folder.path / "metrics.json").write_text(saved)
