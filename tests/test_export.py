"""End-to-end SavedModel export and `predict`: a process that imports TensorFlow alone (Keras, exvo_keras and
tensorflow-io made unimportable) loads each export and gives the package's own predictions; the wav-bytes
signature (44.1 kHz files resampled in the graph), metadata, refusals and the predict command. The signal steps
the graphs run are exvo_keras.signal's own, tested in tests/signal."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import exvo_keras.training.frame_cnn as frame_cnn
from conftest import write_corpus
from exvo_keras.cli import main
from exvo_keras.data.audio import load_audio
from exvo_keras.data.corpus import load_corpus
from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments.networks import extract_network, train_network
from exvo_keras.export import METADATA_FILE, ExportError, best_exportable_system, export_system
from exvo_keras.features.ssl import extract_feature_set
from exvo_keras.registry import WEIGHTED, NetworkSource, network, row_by_key
from exvo_keras.signal.resample import resample
from exvo_keras.store import ALL_LAYERS, read_fused
from exvo_keras.training.mtl import HeadTraining, best_seed, load_head, predict, run_head, seed_metrics
from exvo_keras.workspace import Workspace

TOL = 1e-5
TINY_DEMO = {"hop_frames": 10, "max_epochs": 1, "halving_starts": 2}
ROWS = ("raw_exvo_er-sys1", "zff_exvo_er-sys1", "wavlm-sys1", "raw_exvo_er+wavlm-sys1", "wavlm@weighted-sys1")
HYBRID = "hybrid-raw_exvo_er-sys1+raw_exvo_cr"
# raw and ZFF frame CNNs, an SSL encoder, early fusion of a CNN and an SSL encoder, a softmax-weighted sum of
# every SSL layer, and a hybrid taking country from a second CNN's own decision
EXPORTED = ("raw_exvo_er-sys1", "zff_exvo_er-sys1", "wavlm-sys1", "raw_exvo_er+wavlm-sys1", "wavlm@weighted-sys1",
            HYBRID)


def _burst(n, freq, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + \
        0.02 * rng.standard_normal(n)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A work folder with three frame CNNs (demo profile, one epoch), their stores, a demo WavLM store and four
    heads (two seeds each): clips of 0.2-1.1 s, so batches carry padding and ZFF meets clips shorter than its
    0.3 s reflection margin."""
    base = tmp_path_factory.mktemp("export")
    root = write_corpus(base / "corpus", n_per_split=(8, 6, 4))
    for k, path in enumerate(sorted((root / "wav").glob("*.wav"))):
        seconds = (0.2, 0.4, 0.7, 1.1)[k % 4]
        sf.write(path, _burst(int(seconds * 16000), 140 + 15 * k, k), 16000, subtype="PCM_16")
    corpus = load_corpus(root)
    work = Workspace(base / "work")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(frame_cnn.PROFILES, "demo", dict(TINY_DEMO))
        for name in ("raw_exvo_er", "zff_exvo_er", "raw_exvo_cr"):
            train_network(network(name), corpus, work, "demo", progress=False, verbose=0)
    for name in ("raw_exvo_er", "zff_exvo_er"):
        extract_network(network(name), corpus, work, progress=False)
    extract_feature_set("wavlm", corpus, work, progress=False)
    for key in ROWS:
        row = row_by_key(key)
        cfg = HeadTraining.from_recipe(work.stores(row.features), row.head, epochs=2, eval_splits=["Val"],
                                       layer=row.layer)
        run_head(work.run(key), corpus, cfg, seeds=[0, 1], progress=False)
    return corpus, work


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    corpus, work = trained
    out = tmp_path_factory.mktemp("saved")
    dirs = {key: export_system(key, work, out / key, data=corpus.root if key == HYBRID else None)
            for key in EXPORTED}
    return dirs


def _clips(corpus, ids):
    return [load_audio(corpus.wav_path(f)) for f in ids]


def _padded(clips, fill=0.5):
    """A batch padded with a non-zero value: the model must read only each clip's own samples."""
    waveform = np.full((len(clips), max(c.size for c in clips) + 100), fill, np.float32)
    for i, c in enumerate(clips):
        waveform[i, :c.size] = c
    return waveform, np.array([c.size for c in clips], np.int32)


def _package_predictions(corpus, work, key, ids):
    """What the package predicts for these clips: store rows -> the exported seed's head (network posteriors
    computed from the audio for a network source)."""
    from exvo_keras.experiments.tables import system_sources
    from exvo_keras.training.frame_cnn import ClipSet, pooled_window_outputs

    out = {}
    for task, source in system_sources(key, work).items():
        if isinstance(source, NetworkSource):
            import keras

            model = keras.saving.load_model(work.network(source.network).best)
            hop = json.loads(work.network(source.network).metrics.read_text())["hop_frames"]
            clips = _clips(corpus, ids)
            out["country_probabilities"], _ = pooled_window_outputs(
                model, ClipSet(ids, lambda i: clips[i], np.zeros(len(ids))), hop_frames=hop)
            continue
        row = row_by_key(source.key)
        folder = work.run(source.key)
        X = read_fused(work.stores(row.features), ids, layer=ALL_LAYERS if row.layer == WEIGHTED else row.layer)
        pred = predict(load_head(folder.seed(best_seed(folder)).model), X)
        if task == "emotion":
            out["emotion"] = pred["emotion"]
        elif task == "age":
            out["age"] = pred["age"]
        else:
            out["country_probabilities"] = pred["country_prob"]
    out["country_index"] = out["country_probabilities"].argmax(axis=1)
    return out


BARE = textwrap.dedent("""
    import sys
    # Keras, exvo_keras and tensorflow-io cannot be imported in this process at all.
    for name in ("keras", "tf_keras", "exvo_keras", "tensorflow_io"):
        sys.modules[name] = None
    import numpy as np
    import tensorflow as tf

    args = np.load(sys.argv[1])
    wavs = [open(p, "rb").read() for p in sys.argv[3].split("|")]
    results = {}
    for i, folder in enumerate(sys.argv[4:]):
        model = tf.saved_model.load(folder)
        out = model.signatures["serve_waveform"](waveform=tf.constant(args["waveform"]),
                                                 lengths=tf.constant(args["lengths"]))
        for k, v in out.items():
            results[f"{i}/waveform/{k}"] = v.numpy().astype("S") if v.dtype == tf.string else v.numpy()
        out = model.serve_wav_bytes(tf.constant(wavs))
        for k, v in out.items():
            results[f"{i}/bytes/{k}"] = v.numpy().astype("S") if v.dtype == tf.string else v.numpy()
    np.savez(sys.argv[2], **results)
    loaded = [m for m in ("keras", "tf_keras", "exvo_keras", "tensorflow_io") if sys.modules.get(m) is not None]
    print("LOADED", loaded)
""")


@pytest.fixture(scope="module")
def bare(trained, exported, tmp_path_factory):
    """Every export run once in a TensorFlow-only process on all corpus clips, through both signatures, plus a
    44.1 kHz copy of one clip through the bytes signature: {key: {"waveform/<output>" | "bytes/<output>": array}}."""
    import os

    corpus, _ = trained
    tmp = tmp_path_factory.mktemp("bare")
    ids = corpus.file_ids()
    waveform, lengths = _padded(_clips(corpus, ids))
    np.savez(tmp / "in.npz", waveform=waveform, lengths=lengths)
    sf.write(tmp / "44k.wav", resample(load_audio(corpus.wav_path(ids[3])), 16000, 44100), 44100,
             subtype="PCM_16")
    wavs = [str(corpus.wav_path(f)) for f in ids] + [str(tmp / "44k.wav")]
    (tmp / "bare.py").write_text(BARE)
    done = subprocess.run([sys.executable, str(tmp / "bare.py"), str(tmp / "in.npz"), str(tmp / "out.npz"),
                           "|".join(wavs), *[str(exported[k]) for k in EXPORTED]],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert "LOADED []" in done.stdout  # nothing but TensorFlow (and numpy) was imported
    results = dict(np.load(tmp / "out.npz"))
    outputs = {key: {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(f"{i}/")}
               for i, key in enumerate(EXPORTED)}
    return outputs, tmp / "44k.wav"


@pytest.mark.parametrize("key", EXPORTED)
def test_tensorflow_alone_gives_the_package_predictions(trained, bare, key):
    corpus, work = trained
    got = bare[0][key]
    ids = corpus.file_ids()
    expected = _package_predictions(corpus, work, key, ids)
    np.testing.assert_allclose(got["waveform/emotion"], expected["emotion"], rtol=0, atol=TOL)
    np.testing.assert_allclose(got["waveform/age"], expected["age"], rtol=0, atol=TOL)
    np.testing.assert_allclose(got["waveform/country_probabilities"], expected["country_probabilities"],
                               rtol=0, atol=TOL)
    np.testing.assert_array_equal(got["waveform/country_index"], expected["country_index"])
    assert [s.decode() for s in got["waveform/country_label"]] == [COUNTRIES[i] for i in expected["country_index"]]
    for i, name in enumerate(EMOTIONS):
        np.testing.assert_array_equal(got[f"waveform/{name}"], got["waveform/emotion"][:, i])
    assert got["waveform/emotion"].shape == (len(ids), 10) and got["waveform/age"].shape == (len(ids),)


@pytest.mark.parametrize("key", EXPORTED)
def test_wav_bytes_signature_equals_the_waveform_signature(trained, bare, key):
    corpus, _ = trained
    got = bare[0][key]
    n = len(corpus.file_ids())  # the 16 kHz corpus files; row n is the 44.1 kHz copy
    # Same samples; only the batch's padded length differs (the SSL encoders' float rounding follows it).
    for name in ("emotion", "age", "country_probabilities"):
        np.testing.assert_allclose(got[f"bytes/{name}"][:n], got[f"waveform/{name}"], rtol=0, atol=TOL)
    np.testing.assert_array_equal(got["bytes/country_index"][:n], got["waveform/country_index"])
    assert got["bytes/emotion"].shape == (n + 1, 10) and np.isfinite(got["bytes/emotion"]).all()


@pytest.mark.parametrize("key", ["zff_exvo_er-sys1", "wavlm-sys1"])
def test_a_44khz_file_resampled_in_the_graph_matches_the_loaders_resampling(trained, exported, bare, key):
    """serve_wav_bytes on a 44.1 kHz file (resampled in the graph) against the package's loader (the same
    resampler, exvo_keras.signal.resample) fed to serve_waveform: the same samples; only the batch differs."""
    import tensorflow as tf

    n = len(trained[0].file_ids())
    clip = load_audio(bare[1])
    model = tf.saved_model.load(str(exported[key]))
    out = model.serve_waveform(tf.constant(clip[None]), tf.constant([clip.size], tf.int32))
    got = bare[0][key]
    np.testing.assert_allclose(got["bytes/emotion"][n], out["emotion"].numpy()[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got["bytes/age"][n], out["age"].numpy()[0], rtol=0, atol=1e-3)
    np.testing.assert_allclose(got["bytes/country_probabilities"][n], out["country_probabilities"].numpy()[0],
                               rtol=0, atol=1e-4)


# ---------------------------------------------------------------- metadata, refusals, choosing, re-exporting


def test_metadata_records_system_seeds_corpus_scores_and_versions(trained, exported):
    corpus, work = trained
    meta = json.loads((exported[HYBRID] / METADATA_FILE).read_text())
    assert meta["system"] == HYBRID
    assert meta["sources"] == {"emotion": "raw_exvo_er-sys1", "age": "raw_exvo_er-sys1",
                               "country": "network:raw_exvo_cr"}
    folder = work.run("raw_exvo_er-sys1")
    component = meta["components"]["raw_exvo_er-sys1"]
    assert component["seed"] == best_seed(folder) and component["seeds_available"] == [0, 1]
    assert component["Val_of_seed"] == seed_metrics(folder)[component["seed"]]["Val"]
    assert component["Val_over_seeds"] == json.loads(folder.summary.read_text())["Val"]
    assert meta["components"]["network:raw_exvo_cr"]["network"]["hop_frames"] == TINY_DEMO["hop_frames"]
    assert meta["corpus"] == {"fingerprint": corpus.fingerprint, "root": str(corpus.root)}
    assert meta["frame_cnn_profiles"] == {"raw_exvo_er": "demo", "raw_exvo_cr": "demo"}
    exported_scores = meta["val_scores"]["exported"]  # --data given: the exported combination scored on Val
    assert exported_scores["emo_ccc"] == pytest.approx(component["Val_of_seed"]["emo_ccc"])
    assert exported_scores["age_mae"] == pytest.approx(component["Val_of_seed"]["age_mae"])
    assert meta["labels"] == {"emotions": list(EMOTIONS), "countries": list(COUNTRIES)}
    assert meta["sample_rate"] == 16000
    assert set(meta["versions"]) >= {"tensorflow", "keras", "numpy", "exvo_keras"}
    assert meta["zff"] is None and "resample_poly" in meta["resampling"]

    zff_meta = json.loads((exported["zff_exvo_er-sys1"] / METADATA_FILE).read_text())
    assert "float64" in zff_meta["zff"]
    assert zff_meta["features"]["zff_exvo_er"]["signal"] == "zff"
    ssl_meta = json.loads((exported["wavlm-sys1"] / METADATA_FILE).read_text())
    assert ssl_meta["features"]["wavlm"]["settings"]["weights"] == "random-init seed 0"
    assert ssl_meta["val_scores"]["system_over_seeds"] == json.loads(
        work.run("wavlm-sys1").summary.read_text())["Val"]


@pytest.mark.parametrize("key, why", [("compare-sys1", "openSMILE"), ("deepspectrum-sys1", "VGG16")])
def test_compare_and_deepspectrum_systems_are_refused_with_the_reason(trained, tmp_path, key, why, capsys):
    _, work = trained
    with pytest.raises(ExportError, match=why):
        export_system(key, work, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["export", key, str(tmp_path / "out"), "--work", str(work)]) == 2
    assert "not exportable" in capsys.readouterr().err


def test_best_exportable_system_skips_what_cannot_be_exported(tmp_path):
    work = Workspace(tmp_path)

    def scored(key, s_mtl):
        folder = tmp_path / "runs" / key
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"Val": {"s_mtl": {"mean": s_mtl, "std": 0, "n": 1}}}))

    with pytest.raises(FileNotFoundError, match="no exportable system"):
        best_exportable_system(work)
    scored("compare-sys1", 0.9)  # best on Val, but openSMILE features
    scored("raw_exvo_er-sys1", 0.3)
    scored("wavlm-sys2", 0.4)
    scored("raw_exvo_er+wavlm-sys1", 0.35)
    assert best_exportable_system(work) == "wavlm-sys2"


def test_export_best_from_the_command_line(trained, exported, capsys):
    _, work = trained
    key = best_exportable_system(work)
    assert key in ROWS  # the hybrid has not run here (no summary), so a trained row wins
    # into its existing export: same inputs, so nothing is traced again
    assert main(["export", "best", str(exported[key]), "--work", str(work), "-q"]) == 0
    assert key in capsys.readouterr().out


def test_an_identical_export_is_kept_and_another_is_not_overwritten(trained, exported):
    _, work = trained
    target = exported["raw_exvo_er-sys1"]
    stamp = (target / "saved_model.pb").stat().st_mtime_ns
    assert export_system("raw_exvo_er-sys1", work, target) == target  # same inputs: nothing rewritten
    assert (target / "saved_model.pb").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_system("raw_exvo_er-sys1", work, exported["wavlm-sys1"])


# ---------------------------------------------------------------- predict


def test_predict_a_folder_names_the_bad_files_and_predicts_the_others(trained, exported, tmp_path, capsys):
    corpus, work = trained
    folder = tmp_path / "wavs"
    folder.mkdir()
    ids = corpus.file_ids("Val")[:3]
    for fid in ids:
        shutil.copyfile(corpus.wav_path(fid), folder / corpus.wav_path(fid).name)
    shutil.copyfile(corpus.wav_path(ids[0]), folder / "my clip.wav")
    (folder / "00999.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEgarbage, not audio")
    (folder / "00998.wav").write_bytes(b"")
    sf.write(folder / "00997.wav", np.zeros(100), 16000, subtype="PCM_16")  # 6 ms: too short
    out = tmp_path / "preds.csv"
    code = main(["predict", str(exported["raw_exvo_er-sys1"]), str(folder), str(tmp_path / "missing.wav"),
                 "--out", str(out), "--batch-size", "2", "-q"])
    err = capsys.readouterr().err
    assert code == 0
    for bad in ("00999.wav", "00998.wav", "00997.wav", "missing.wav"):
        assert bad in err
    assert "too short" in err and "file not found" in err and "empty" in err
    frame = pd.read_csv(out, dtype={"File_ID": str})
    assert list(frame.columns) == ["File_ID", "Country", "Age", *EMOTIONS]
    assert list(frame["File_ID"]) == sorted(ids) + ["my clip"]
    expected = _package_predictions(corpus, work, "raw_exvo_er-sys1", sorted(ids) + [ids[0]])
    np.testing.assert_allclose(frame[list(EMOTIONS)].to_numpy(), expected["emotion"], rtol=0, atol=TOL)
    np.testing.assert_allclose(frame["Age"].to_numpy(), expected["age"], rtol=0, atol=TOL)
    np.testing.assert_array_equal(frame["Country"].to_numpy(), expected["country_index"])


def test_predict_a_corpus_split_and_fail_when_nothing_is_readable(trained, exported, tmp_path, capsys):
    corpus, _ = trained
    out = tmp_path / "test.csv"
    model = str(exported[HYBRID])
    assert main(["predict", model, "--data", str(corpus.root), "--split", "Test", "--out", str(out), "-q"]) == 0
    assert list(pd.read_csv(out, dtype={"File_ID": str})["File_ID"]) == corpus.file_ids("Test")
    capsys.readouterr()
    # same model, unchanged inputs: the file is reused; a changed input predicts again
    stamp = out.stat().st_mtime_ns
    assert main(["predict", model, "--data", str(corpus.root), "--split", "Test", "--out", str(out), "-q"]) == 0
    assert "complete, skipped" in capsys.readouterr().out and out.stat().st_mtime_ns == stamp
    wav = corpus.wav_path(corpus.file_ids("Test")[0])
    wav.write_bytes(wav.read_bytes())  # same content, new modification time
    assert main(["predict", model, "--data", str(corpus.root), "--split", "Test", "--out", str(out), "-q"]) == 0
    assert "complete, skipped" not in capsys.readouterr().out and out.stat().st_mtime_ns != stamp
    assert main(["predict", model, "--data", str(corpus.root), "--out", str(out), "-q"]) == 2  # --split missing
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "00001.wav").write_bytes(b"not a wav")
    assert main(["predict", model, str(bad), "--out", str(tmp_path / "none.csv"), "-q"]) == 1
    assert "00001.wav" in capsys.readouterr().err and not (tmp_path / "none.csv").exists()
    assert main(["predict", str(tmp_path), str(bad), "-q"]) == 2  # not a SavedModel: a clean error


@pytest.mark.parametrize("command", ["export", "predict"])
def test_commands_have_help(command, capsys):
    from exvo_keras.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m exvo_keras " + command in capsys.readouterr().out
