"""Scale rehearsal: the reproduction's stages on an ExVo-size synthetic corpus, how each grows with the corpus,
and the projected wall time of the whole reproduction at the paper profile.

Corpus. ExVo 2022 Multi-Task has 59,201 clips, about 37 h, Train 19,990 / Val 19,396 / Test 19,815, 1,702
speakers (FACTS.md). The rehearsal writes that many clips in ExVo's format (`data_info.csv` with the columns of
`exvo_keras.data.demo.COLUMNS`, `wav/NNNNN.wav` 16 kHz mono 16-bit, Test labels empty as in the release) under
`--work`, never inside the repository. Durations: log-normal with sigma 0.45, clipped to [0.3, 12] s, its mu
solved so that the clipped mean is 37 h / 59,201 = 2.25 s (median about 2.0 s, 5-95 % about 1.0-4.3 s: "about
1-3 s, a few up to ~10 s"). Signals are cheap on purpose: every clip is a slice, at a random offset and gain
with 10 ms fades, of one of 48 seeded 12.5 s prototypes in which harmonic tones (gliding f0 120-450 Hz, vibrato,
five harmonics) alternate with coloured-noise bursts at a syllable rate; the costs measured here do not depend
on what the audio sounds like. Speakers are split-disjoint, their age and country drawn per speaker; each
labelled row's emotions have a maximum of exactly 1.0. `check-corpus` accepts it.

Stages. Every measurement runs in a fresh subprocess: the package's CLI (`python -m exvo_keras ...`) for
check-corpus, extract-compare, report and export, else this script as a worker that calls the package's public
functions (so a rerun picks up their changes). For each: wall time of the whole process (interpreter and
imports included: they land in the fitted intercept), CPU time (user + system of the process and of every child
it waited for, from wait4), peak memory: the process's own high-water mark (VmHWM) and the summed resident memory
of its process tree (which counts ComParE's worker processes), both read from /proc every 0.25 s. (ru_maxrss is
kept only as a cross-check: Linux carries the launching process's peak across vfork + exec into it.)

    stage                       size (default)                  unit           sizes in --quick
    check-corpus                full corpus                     clip           full quick corpus (300)
    open corpus (fingerprint, wav sha1 digests)  full           clip           full quick corpus
    raw signal cache            2,500 / 5,000 / 10,000 clips    audio hour     40 / 80
    ZFF signal cache            1,000 / 2,000 / 4,000 clips     audio hour     20 / 40
    ComParE (--jobs = cores)    200 / 400 / 800 clips           audio hour     4 / 8
    window pipeline, 1 epoch    2,000 / 4,000 / 8,000 clips     window         20 / 40
      (training_windows at the 10 ms hop, batches of 256, iterated without a model)
    frame-CNN training step     batch 256, 5 steps, subseg,     step           1 step, subseg only
                                seg and asr
    embeddings (embed_clips)    subseg 100 / 200 / 400 clips,   window         3 / 6 (subseg only)
                                asr 20 / 40 / 80 clips
    SSL extraction              wavlm-, hubert-large 32/64/128, audio hour     2 / 4 clips, 2 layers
      (random-init encoders     wav2vec2-base 48/96/192 clips                  (wav2vec2 only)
       of the checkpoints' sizes; no checkpoint is loaded)
    heads Sys-1, Sys-2          19,990 rows x 6,373 and 2,048   epoch          1,000 rows, 1 epoch
      (default recipe),         dims, 2 seeds x 2 epochs                       (Sys-1 only)
      baseline head (its recipe)
    linear reference fit        8,000 rows x 6,373 and 2,048    fit            300 rows
    report, export              once, on a 300-clip work folder run            120 clips

A stage measured at three sizes is fitted as cost = a + b * units (least squares; for the workers, on the work
they time themselves, with the mean process overhead added to a once per invocation, so that import times of
5-15 s on a busy machine do not blur the slope; for the CLI stages on the whole process); the fit's R^2, largest
relative residual and the ratio of the last to the first segment's slope say whether it grows linearly (ratio
near 1; judged on the CPU-time fit, which the machine's load hardly moves). Peak memory is fitted the same way and compared with what holding the stage's data would add (4 bytes a
sample for signals, 16 kB a window): no stage may hold the whole corpus's signals or windows. Every figure in
the output says "measured" (at the size given) or "fitted" (on the sizes given). Head epochs are measured at the
full Train size; the linear reference fit is measured at 8,000 rows and scaled in proportion to 19,990 rows
(above d rows scikit-learn's ridge solves the primal, n*d^2, and each logistic iteration costs n*d): "scaled".

Projection at the paper profile (PROFILES["paper"]: a window every 10 ms, batches of 256, up to 60 epochs; the
seven NETWORKS; the SSL encoders over all 37 h; ComParE; the heads of every registered row over the CLI's
default seeds; DeepSpectrum left out: it needs ImageNet weights) on
  (a) this machine: measured or fitted costs, stages one after the other, a frame-CNN epoch = training steps +
      the window pipeline + the cross-validation forward pass (all compete for the same cores); given as
      measured (wall time, inflated by whatever else shares the machine) and CPU-bound (CPU seconds / cores,
      what an idle machine would approach: CPU time hardly moves with the load);
  (b) one 16-core machine with one GPU: per-clip-parallel CPU stages (signal caches, ComParE, heads over
      systems and seeds) take their CPU seconds / (16 cores x 0.8 efficiency), and so does the window pipeline
      (a parallel tf.data map: this machine's rate x 16 x 0.8 / the cores it used here; a variant total keeps
      this machine's rate); serial stages (check-corpus, report, export) keep their wall time (same single-core
      speed assumed); the networks and SSL encoders run at counted FLOPs / (30 % of an A100's 156 TFLOP/s dense TF32:
      TensorFlow runs float32 matmuls and convolutions in TF32 on Ampere and later), plus 3 ms per training step,
      and a window stage takes the longer of its GPU time and its input pipeline's time. Flags change each
      assumption. The out-of-domain lists are assumed to be IEMOCAP's four classes (about 7 h) and AMI's
      training partition (about 80 h): the paper gives neither size, and a reproduction given their trained
      weights (train-network --weights) skips them, so the totals are also given without them.

Default mode: 25-40 minutes on a 2-core machine (38 min measured with other jobs on both cores; the heaviest
parts: SSL extraction, the linear fit and the heads),
4.3 GB of wavs and up to 1.5 GB of caches under --work, removed at the end unless --keep. It prints a table
ready to paste into the README and writes benchmarks/results/scale.json (--quick: scale_quick.json).

    python benchmarks/scale.py                      # default mode (~25 min on 2 cores)
    python benchmarks/scale.py --quick              # smoke test (figures meaningless): every stage's code path
                                                    # once (wav2vec2 only, subseg only, Sys-1 only), 2 sizes
    python benchmarks/scale.py --sizes zff=1000,2000,4000 --keep
    python benchmarks/scale.py --reproject benchmarks/results/scale.json --gpu-peak-tflops 989  # no measuring
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from common import report  # noqa: E402

MARK = "SCALE_RESULT "
SAMPLE_RATE = 16000
MIB = 2 ** 20

# ExVo 2022 Multi-Task as distributed (FACTS.md).
EXVO_CLIPS = 59_201
EXVO_SPLITS = {"Train": 19_990, "Val": 19_396, "Test": 19_815}
EXVO_SPEAKERS = 1_702
EXVO_HOURS = 37.0

DURATION_SIGMA = 0.45
DURATION_RANGE_S = (0.3, 12.0)
PROTOTYPES = 48
PROTOTYPE_S = 12.5  # longer than the longest clip, so any clip fits in one prototype
FADE = 160  # 10 ms: no clicks at the cut ends

CACHE_SOURCE = "scale-rehearsal"  # SignalCache's source tag: these caches are built and read only here
WINDOW_BYTES = 4000 * 4  # one 250 ms float32 window
EMBED_CHUNK = 256  # clips per embed call, as extract_network's store chunks
PHONE_CLASSES = 40  # an AMI-like phone set (assumed; only the output layer depends on it)
MEMORY_NOISE_MIB = 256  # peak RSS varies this much between runs of the same process (allocator, TF pools)
HEAD_DIMS = (6373, 2048)  # ComParE's, and the SSL stores' (most rows are one or the other)

SIZES = {
    "raw": (2500, 5000, 10000),
    "zff": (1000, 2000, 4000),
    "compare": (200, 400, 800),
    "pipeline": (2000, 4000, 8000),
    "embed-subseg": (100, 200, 400),
    "embed-asr": (20, 40, 80),
    "ssl-wavlm": (32, 64, 128),
    "ssl-hubert": (32, 64, 128),
    "ssl-wav2vec2": (48, 96, 192),
}
QUICK_SIZES = {
    "raw": (40, 80), "zff": (20, 40), "compare": (4, 8), "pipeline": (20, 40), "embed-subseg": (3, 6),
    "embed-asr": (2, 4), "ssl-wavlm": (2, 4), "ssl-hubert": (2, 4), "ssl-wav2vec2": (2, 4),
}
STAGES = ("check", "open", "raw", "zff", "compare", "pipeline", "train-step", "embed", "ssl", "heads", "linear",
          "report-export")

# The checkpoints' architectures (their config.json), built with random weights: speed does not depend on them.
LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
         "feat_extract_norm": "layer", "do_stable_layer_norm": True}
ENCODERS = {
    "wavlm": ("wavlm-large", {"model_type": "wavlm", **LARGE, "conv_bias": False}),
    "hubert": ("hubert-large-ll60k", {"model_type": "hubert", **LARGE, "conv_bias": True}),
    "wav2vec2": ("wav2vec2-base", {"model_type": "wav2vec2"}),  # transformers' defaults are wav2vec2-base
}


# Synthetic corpus ---------------------------------------------------------------------------------------------

def clip_samples(n: int, seed: int, mean_s: float = EXVO_HOURS * 3600 / EXVO_CLIPS) -> tuple[np.ndarray, float]:
    """Clip lengths in samples (clipped log-normal whose clipped mean is `mean_s`) and the mu that gives it."""
    z = np.random.default_rng([seed, 1]).standard_normal(n)
    lo, hi = np.log(mean_s) - 2.0, np.log(mean_s) + 2.0
    for _ in range(60):  # the clipped mean grows with mu: bisection
        mu = (lo + hi) / 2
        if np.clip(np.exp(mu + DURATION_SIGMA * z), *DURATION_RANGE_S).mean() < mean_s:
            lo = mu
        else:
            hi = mu
    seconds = np.clip(np.exp(mu + DURATION_SIGMA * z), *DURATION_RANGE_S)
    return np.round(seconds * SAMPLE_RATE).astype(np.int64), float(mu)


def prototypes(seed: int) -> np.ndarray:
    """int16 [PROTOTYPES, samples]: harmonic tones alternating with coloured-noise bursts at a syllable rate."""
    from scipy.signal import lfilter

    rng = np.random.default_rng([seed, 2])
    n = int(PROTOTYPE_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    bank = np.empty((PROTOTYPES, n), np.int16)
    for p in range(PROTOTYPES):
        glide = rng.uniform(-4, 4) * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
        vibrato = 0.3 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
        f0 = rng.uniform(120, 450) * 2 ** ((glide + vibrato) / 12)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        tilt = rng.uniform(0.3, 0.8)
        tone = sum(tilt ** k * np.sin((k + 1) * phase) for k in range(5))
        noise = lfilter([1.0], [1.0, -rng.uniform(0.0, 0.9)], rng.standard_normal(n))
        syllable = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 7) * t + rng.uniform(0, 2 * np.pi))
        voiced = np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 2 * np.pi)) > rng.uniform(-0.5, 0.5)
        x = np.where(voiced, tone / np.abs(tone).max(), 0.5 * noise / np.abs(noise).max()) * np.sqrt(syllable)
        x += 1e-3 * rng.standard_normal(n)
        bank[p] = np.round(0.95 * 32767 * x / np.abs(x).max())
    return bank


def _write_pcm16(path: Path, pcm: np.ndarray) -> None:
    # A plain 44-byte RIFF header: three times faster than soundfile for 59k small files.
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + 2 * pcm.size, b"WAVE", b"fmt ", 16, 1, 1,
                         SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16, b"data", 2 * pcm.size)
    with open(path, "wb") as f:
        f.write(header)
        f.write(pcm.astype("<i2").tobytes())


def _split_counts(n: int) -> dict[str, int]:
    counts = {s: int(round(n * c / EXVO_CLIPS)) for s, c in EXVO_SPLITS.items()}
    counts["Train"] += n - sum(counts.values())
    return counts


def corpus_table(n: int, seed: int):
    """data_info.csv rows as strings: speaker-disjoint splits in ExVo's proportions, Test labels empty."""
    import pandas as pd

    from exvo_keras.data.demo import COLUMNS
    from exvo_keras.data.labels import COUNTRIES, EMOTIONS

    rng = np.random.default_rng([seed, 4])
    counts = _split_counts(n)
    speakers = max(int(round(EXVO_SPEAKERS * n / EXVO_CLIPS)), 30)
    split = rng.permutation(np.repeat(list(counts), list(counts.values())))
    speaker = np.empty(n, np.int64)
    first = 0
    for s, count in counts.items():
        # at least ten speakers a split, so that the speaker-independent dev/CV splits have some to take
        k = max(int(round(speakers * count / n)), 10)
        rows = np.flatnonzero(split == s)
        speaker[rows] = first + np.concatenate([np.arange(min(k, len(rows))),
                                                rng.integers(0, k, max(len(rows) - k, 0))])[rng.permutation(len(rows))]
        first += k
    age = np.round(18 + 22 * rng.beta(2, 4, first)).astype(int)
    country = rng.integers(0, len(COUNTRIES), first)
    emotions = rng.random((n, len(EMOTIONS))) ** 3
    emotions /= emotions.max(axis=1, keepdims=True)
    table = pd.DataFrame({
        "File_ID": [f"[{i:05d}]" for i in range(n)], "Subject_ID": [f"Speaker_{s:04d}" for s in speaker],
        "Split": split, "Age": [str(age[s]) for s in speaker], "Country": [str(country[s]) for s in speaker],
        "Country_string": [COUNTRIES[country[s]] for s in speaker],
        **{e: [f"{v:.4f}" for v in emotions[:, j]] for j, e in enumerate(EMOTIONS)}})
    table.loc[table["Split"] == "Test", ["Age", "Country", *EMOTIONS]] = ""
    return table[list(COLUMNS)]


def write_corpus(out: Path, n: int, seed: int) -> dict:
    """Writes the corpus (data_info.csv, wav/) and `lengths.npy` (samples per row) beside it."""
    if n > 100_000:
        raise ValueError(f"at most 99,999 clips fit five-digit File_IDs, asked {n}")
    lengths, mu = clip_samples(n, seed)
    table = corpus_table(n, seed)
    bank = prototypes(seed)
    rng = np.random.default_rng([seed, 3])
    which = rng.integers(0, PROTOTYPES, n)
    offset = (rng.random(n) * (bank.shape[1] - lengths + 1)).astype(np.int64)
    gain = rng.uniform(0.35, 1.0, n).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, FADE, dtype=np.float32)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = bank[which[i], offset[i]:offset[i] + lengths[i]].astype(np.float32) * gain[i]
        x[:FADE] *= ramp
        x[-FADE:] *= ramp[::-1]
        _write_pcm16(out / "wav" / f"{i:05d}.wav", x)
    table.to_csv(out / "data_info.csv", index=False)
    np.save(out.parent / f"{out.name}_lengths.npy", lengths)
    seconds = lengths / SAMPLE_RATE
    return {"clips": n, "audio_hours": float(seconds.sum() / 3600), "mean_s": float(seconds.mean()),
            "median_s": float(np.median(seconds)), "p05_s": float(np.percentile(seconds, 5)),
            "p95_s": float(np.percentile(seconds, 95)), "max_s": float(seconds.max()), "mu": mu,
            "sigma": DURATION_SIGMA, "clipped_to_s": list(DURATION_RANGE_S),
            "splits": {s: int((table["Split"] == s).sum()) for s in EXVO_SPLITS},
            "speakers": int(table["Subject_ID"].nunique()),
            "bytes": int(sum(f.stat().st_size for f in (out / "wav").iterdir()))}


def subset_corpus(full: Path, out: Path, rows: np.ndarray) -> Path:
    """An ExVo-format folder of some rows of `full`, its wav/ a link to the full corpus's (no copy)."""
    import pandas as pd

    table = pd.read_csv(full / "data_info.csv", dtype=str, keep_default_na=False)
    out.mkdir(parents=True, exist_ok=True)
    table.iloc[np.sort(rows)].to_csv(out / "data_info.csv", index=False)
    if not (out / "wav").exists():
        (out / "wav").symlink_to(full / "wav")
    return out


# Workers: one measurement per process ----------------------------------------------------------------------------

def _timed(fn):
    """(result, wall seconds, CPU seconds of this process's threads) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def worker_write(spec: dict) -> dict:
    figures, wall, cpu = _timed(lambda: write_corpus(Path(spec["out"]), spec["clips"], spec["seed"]))
    return {**figures, "work_s": wall, "work_cpu_s": cpu}


def worker_open(spec: dict) -> dict:
    from exvo_keras.data.corpus import load_corpus

    corpus, load_s, _ = _timed(lambda: load_corpus(spec["data"]))
    _, fingerprint_s, _ = _timed(lambda: corpus.fingerprint)
    _, digests_s, _ = _timed(lambda: [corpus.file_digest(f) for f in corpus.file_ids()])
    return {"clips": len(corpus.file_ids()), "load_s": load_s, "fingerprint_s": fingerprint_s,
            "digests_s": digests_s, "work_s": load_s + fingerprint_s + digests_s}


def _raw_clips(spec: dict):
    """A subset corpus's clips in the raw cache the raw stage built, as the networks' stages see them
    (`experiments.networks.corpus_clips`: the loader and the cache files the tf.data pipelines read)."""
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.data.signals import ClipFiles, SignalCache
    from exvo_keras.training.frame_cnn import ClipSet

    keys = load_corpus(spec["data"]).file_ids()
    cache = SignalCache(spec["cache"], "raw", CACHE_SOURCE)
    missing = cache.missing(keys)
    if missing:
        raise RuntimeError(f"{spec['cache']}: {len(missing)} clips not cached (the raw stage's largest size must "
                           "cover the pipeline and embedding sizes)")
    return ClipSet(keys, lambda i: cache.load(keys[int(i)]), np.zeros(len(keys), np.int32),
                   ClipFiles(tuple(str(cache.path(k)) for k in keys)))


def worker_cache(spec: dict) -> dict:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.data.signals import SignalCache

    corpus = load_corpus(spec["data"])
    cache = SignalCache(spec["cache"], spec["kind"], CACHE_SOURCE)
    sources = {fid: corpus.wav_path(fid) for fid in corpus.file_ids()}
    _, wall, cpu = _timed(lambda: cache.build(sources, progress=False))
    return {"clips": len(sources), "work_s": wall, "work_cpu_s": cpu,
            "bytes": int(sum(f.stat().st_size for f in Path(spec["cache"]).glob("*.npy")))}


def worker_pipeline(spec: dict) -> dict:
    from exvo_keras.data.pipeline import training_windows

    clips = _raw_clips(spec)
    # train_frame_cnn reads every clip's length once per run (for the epoch's batch count), not per epoch
    lengths, lengths_s, _ = _timed(clips.lengths)
    labels = np.random.default_rng(0).integers(0, 10, len(clips.keys))
    ds = training_windows(clips.source, labels, hop_frames=spec["hop"], batch_size=spec["batch"], seed=0,
                          lengths=lengths)
    windows, wall, cpu = _timed(lambda: sum(int(x.shape[0]) for x, _ in ds))
    return {"clips": len(clips.keys), "windows": windows, "lengths_s": lengths_s, "work_s": wall,
            "work_cpu_s": cpu, "windows_per_s": windows / wall}


def worker_train_step(spec: dict) -> dict:
    import keras

    from exvo_keras.models.frame_cnn import FrameCNN

    model = FrameCNN(architecture=spec["arch"], num_classes=spec["classes"], seed=0)
    # train_frame_cnn's compile: the same optimiser, loss and metric
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["batch"], model.window), dtype=np.float32)  # windows are z-normalised
    y = rng.integers(0, spec["classes"], spec["batch"])
    _, trace_s, _ = _timed(lambda: model.train_on_batch(x, y))
    steps = []
    cpu = time.process_time()
    for _ in range(spec["steps"]):
        steps.append(_timed(lambda: model.train_on_batch(x, y))[1])
    step_s = float(np.median(steps))
    return {"trace_s": trace_s, "step_s": step_s, "steps_s": steps, "windows_per_s": spec["batch"] / step_s,
            "work_s": sum(steps), "work_cpu_s": time.process_time() - cpu, "parameters": model.count_params()}


def worker_embed(spec: dict) -> dict:
    from exvo_keras.models.frame_cnn import FrameCNN
    from exvo_keras.training.frame_cnn import embed_clips

    clips = _raw_clips(spec)
    embedder = FrameCNN(architecture=spec["arch"], num_classes=spec["classes"], seed=0).embedding_model()
    count = len(clips.keys)

    def run():
        rows = 0
        for start in range(0, count, EMBED_CHUNK):
            rows += len(embed_clips(embedder, clips.subset(range(start, min(start + EMBED_CHUNK, count))),
                                    hop_frames=spec["hop"]))
        return rows

    rows, wall, cpu = _timed(run)
    return {"clips": rows, "work_s": wall, "work_cpu_s": cpu}


def worker_ssl(spec: dict) -> dict:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.features.ssl import extract_ssl
    from exvo_keras.models.ssl import SSLEncoder

    config = dict(ENCODERS[spec["encoder"]][1])
    if spec.get("layers"):
        config["num_hidden_layers"] = spec["layers"]
    corpus = load_corpus(spec["data"])
    encoder, build_s, _ = _timed(lambda: SSLEncoder.from_hf_config(config, seed=0))
    _, wall, cpu = _timed(lambda: extract_ssl(corpus, encoder, spec["out"], progress=False))
    return {"clips": len(corpus.file_ids()), "build_s": build_s, "work_s": wall, "work_cpu_s": cpu,
            "parameters": encoder.count_params()}


def _synthetic_heads_data(rows: int, dims: int):
    """Random features and labels: a speaker-independent 90:10 split stands in for Train / dev."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, dims), dtype=np.float32)
    y = {"emotion": rng.random((rows, 10), dtype=np.float32), "age": rng.uniform(18, 40, rows).astype(np.float32),
         "country": rng.integers(0, 4, rows)}
    k = int(rows * 0.9)
    return X[:k], {n: v[:k] for n, v in y.items()}, X[k:], {n: v[k:] for n, v in y.items()}


def worker_heads(spec: dict) -> dict:
    from exvo_keras.training.mtl import HeadTrainer
    from exvo_keras.training.recipes import HeadTraining

    out = {}
    for dims in spec["dims"]:
        data = _synthetic_heads_data(spec["rows"], dims)
        # patience above the epoch count, so both seeds train every epoch; no linear skip: its fit is the
        # linear stage's, measured there (the skip's own forward pass is a dims x 15 product, ~1 % of Sys-1's)
        cfg = HeadTraining.from_recipe([], spec["head"], spec["recipe"], epochs=spec["epochs"],
                                       patience=spec["epochs"] + 1, linear_skip=False)
        trainer, setup_s, _ = _timed(lambda: HeadTrainer(*data, cfg))
        _, first_s, _ = _timed(lambda: trainer.fit(seed=0))
        _, later_s, later_cpu = _timed(lambda: trainer.fit(seed=1))
        # the first seed also traces the graphs; later seeds of a system reuse them
        out[str(dims)] = {"setup_s": setup_s, "first_seed_s": first_s, "later_seed_s": later_s,
                          "trace_s": max(first_s - later_s, 0.0) + setup_s,
                          "epoch_s": later_s / spec["epochs"], "epoch_cpu_s": later_cpu / spec["epochs"],
                          "batch_size": cfg.batch_size}
        del trainer, data
    return {"rows": spec["rows"], "epochs": spec["epochs"], "dims": out}


def worker_linear(spec: dict) -> dict:
    from exvo_keras.training.mtl import HeadTrainer
    from exvo_keras.training.recipes import HeadTraining

    out = {}
    for dims in spec["dims"]:
        data = _synthetic_heads_data(spec["rows"], dims)
        cfg = HeadTraining.from_recipe([], "linear", "default")
        # the whole of a system's linear work: the penalty grid on dev, the fit without dev, the refit on all
        _, wall, cpu = _timed(lambda: HeadTrainer(*data, cfg).fit(seed=0))
        out[str(dims)] = {"fit_s": wall, "fit_cpu_s": cpu}
        del data
    return {"rows": spec["rows"], "dims": out}


WORKERS = {"write": worker_write, "open": worker_open, "cache": worker_cache, "pipeline": worker_pipeline,
           "train-step": worker_train_step, "embed": worker_embed, "ssl": worker_ssl, "heads": worker_heads,
           "linear": worker_linear}


def run_worker(name: str, spec: dict) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(MARK + json.dumps(WORKERS[name](spec)), flush=True)


# Measurement ----------------------------------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def _high_water(pid: int) -> int:
    """Peak resident bytes of `pid` since its exec (VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (shared pages counted in each: an upper bound)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


class Runner:
    """Runs each measurement in a fresh process and keeps its log under WORK/logs."""

    def __init__(self, work: Path, timeout_s: float):
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self.count = 0
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    def cli(self, label: str, *args: str) -> dict:
        return self.run(label, [sys.executable, "-m", "exvo_keras", *map(str, args)])

    def worker(self, label: str, name: str, **spec) -> dict:
        return self.run(label, [sys.executable, str(Path(__file__).resolve()), "--worker", name,
                                "--spec", json.dumps(spec)])

    def run(self, label: str, cmd: list[str]) -> dict:
        self.count += 1
        log_path = self.logs / f"{self.count:02d}_{label.replace(' ', '_').replace('/', '-')}.log"
        load = os.getloadavg()[0]
        start = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=self.env,
                                    start_new_session=True)
        peak, peak_tree, timed_out = 0, 0, False
        try:
            while True:
                # wait4 gives this child's own rusage (with the children it waited for), which getrusage cannot
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                peak, peak_tree = max(peak, _high_water(proc.pid)), max(peak_tree, _tree_rss(proc.pid))
                if time.perf_counter() - start > self.timeout_s and not timed_out:
                    os.killpg(proc.pid, signal.SIGKILL)
                    timed_out = True
                time.sleep(0.25)
        except BaseException:
            # the child runs in its own session: stopping this script must stop it too
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        text = log_path.read_text(errors="replace")
        marked = [line for line in text.splitlines() if line.startswith(MARK)]
        record = {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                  "peak_rss_mib": round(peak / MIB, 1), "peak_tree_rss_mib": round(peak_tree / MIB, 1),
                  # ru_maxrss starts from the launching process's own peak: Linux keeps the high-water mark
                  # across vfork + exec, so it is kept only as a cross-check
                  "ru_maxrss_mib": round(usage.ru_maxrss / 1024, 1),
                  "loadavg_1min_before": round(load, 2), "log": str(log_path)}
        if marked:
            record["result"] = json.loads(marked[-1][len(MARK):])
        if proc.returncode != 0 or timed_out:
            tail = "\n".join(text.strip().splitlines()[-12:])
            record["error"] = (f"timed out after {self.timeout_s:.0f} s" if timed_out
                               else f"exit {proc.returncode}") + f": {tail}"
        status_line = (f"ERROR ({record['error'].splitlines()[0]}; log {log_path})" if "error" in record else
                       f"{wall:7.1f} s wall, {record['cpu_s']:7.1f} s CPU, peak {record['peak_rss_mib']:7.0f} MiB "
                       f"(tree {record['peak_tree_rss_mib']:.0f})")
        print(f"  {label:<34} {status_line}", flush=True)
        return record


# Fits -------------------------------------------------------------------------------------------------------------

def linear_fit(x, y) -> dict:
    """Least-squares y = a + b x with R^2, the largest relative residual and the last/first segment slope ratio."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    ss_tot = float(((y - y.mean()) ** 2).sum())
    fit = {"a": float(a), "b": float(b), "r2": 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot else 1.0,
           "max_rel_residual": float(np.max(np.abs(y - pred) / np.maximum(np.abs(y), 1e-12)))}
    if len(x) >= 3:
        first = (y[1] - y[0]) / (x[1] - x[0])
        last = (y[-1] - y[-2]) / (x[-1] - x[-2])
        fit["slope_ratio_last_first"] = float(last / first) if first > 0 else None
    return fit


def growth_verdict(fit: dict, points: int) -> str:
    """From the CPU-time fit: CPU seconds hardly move with the machine's load, wall seconds do (a shared
    machine gave R^2 0.92 on wall time where the CPU time of the same runs gave 0.999)."""
    if points < 3:
        return "untested (two sizes: the line passes through both)"
    ratio = fit.get("slope_ratio_last_first")
    if ratio is None:
        return f"not clearly linear (R^2 {fit['r2']:.3f}, the first slope is not positive)"
    if fit["r2"] >= 0.98 and 0.67 <= ratio <= 1.5:
        return "linear"
    if ratio > 1.5:  # a quadratic cost gives 2 on sizes that double
        return f"faster than linear? (slope ratio {ratio:.2f}, R^2 {fit['r2']:.3f})"
    if ratio < 0.67:
        return f"slower than linear (slope ratio {ratio:.2f}: fixed costs weigh on the small sizes)"
    return f"not clearly linear (R^2 {fit['r2']:.3f}, slope ratio {ratio:.2f})"


def fitted_stage(name: str, points: list[dict], unit: str, hold_mib_per_unit: float | None,
                 paper_units: float) -> dict:
    """Time, CPU and memory fits of a stage measured at several sizes, and their values at paper scale."""
    ok = [p for p in points if "error" not in p]
    sizes = ", ".join(f"{p['clips']:,}" for p in ok)
    out = {"name": name, "basis": f"fitted on {sizes} clips", "unit": unit, "points": points}
    if len(ok) < 2:
        out["error"] = "fewer than two sizes ran"
        return out
    x = [p["units"] for p in ok]
    wall, cpu = linear_fit(x, [p["wall_s"] for p in ok]), linear_fit(x, [p["cpu_s"] for p in ok])
    mem = linear_fit(x, [max(p["peak_rss_mib"], p["peak_tree_rss_mib"]) for p in ok])
    out.update(wall=wall, cpu=cpu, memory=mem)
    if all("work_s" in p.get("result", {}) for p in ok):
        # The workers time their own work: its slope is not blurred by how long the imports took this time
        # (5-15 s on a busy machine); the process overhead is added back once per invocation, as its mean.
        work = linear_fit(x, [p["result"]["work_s"] for p in ok])
        work_cpu = linear_fit(x, [p["result"]["work_cpu_s"] for p in ok])
        overhead = float(np.mean([p["wall_s"] - p["result"]["work_s"] for p in ok]))
        overhead_cpu = float(np.mean([p["cpu_s"] - p["result"]["work_cpu_s"] for p in ok]))
        out.update(work=work, work_cpu=work_cpu, process_overhead_s=overhead,
                   cost={"a": work["a"] + overhead, "b": work["b"], "from": "timed work + mean process overhead"},
                   cpu_cost={"a": work_cpu["a"] + overhead_cpu, "b": work_cpu["b"]})
    else:
        out.update(cost={**wall, "from": "whole-process wall time"}, cpu_cost=cpu)
    cost = out["cost"]
    out.update(growth=growth_verdict(out.get("work_cpu", cpu), len(ok)), paper_units=paper_units,
               paper_wall_s=cost["a"] + cost["b"] * paper_units, hold_mib_per_unit=hold_mib_per_unit)
    memory_verdict(out)
    return out


# Why a stage's memory cannot grow with the corpus, read off the code, for where the sizes cannot tell.
MEMORY_BY_DESIGN = {
    "compare": "each worker holds one clip; rows go to the store in chunks (features/compare.py, store.py)",
    "ssl": "64 clips read at a time (chunk_clips), batches of at most 40 s of padded audio (features/ssl.py)",
    "embed": "a clip is pooled once its last window has passed, about one batch of outputs held "
             "(pooled_window_outputs), 256-clip store chunks (extract_network)",
}


def memory_verdict(st: dict) -> None:
    """Whether peak memory grows with the data read, and the peak to expect at paper scale.

    Holding the data would add `hold_mib_per_unit` per unit; a slope under a tenth of that is noise, and the
    peak stays near the largest measured. Where the data added between the smallest and the largest size is
    itself below the RSS noise, the sizes cannot tell: inconclusive, and the code says why it is bounded.
    """
    hold = st.get("hold_mib_per_unit")
    ok = [p for p in st["points"] if "error" not in p]
    if not hold or len(ok) < 2:
        return
    x = [p["units"] for p in ok]
    largest = max(max(p["peak_rss_mib"], p["peak_tree_rss_mib"]) for p in ok)
    added, slope = hold * (max(x) - min(x)), st["memory"]["b"]
    verdict = ("inconclusive at these sizes" if added < MEMORY_NOISE_MIB else
               "grows with the data it reads" if slope > 0.1 * hold else "bounded")
    st["memory_vs_holding"] = {"hold_mib_per_unit": hold, "fitted_mib_per_unit": slope,
                               "data_added_between_sizes_mib": added, "verdict": verdict}
    st["paper_peak_mib"] = (st["memory"]["a"] + slope * st["paper_units"] if verdict.startswith("grows")
                            else largest if verdict == "bounded" else None)
    design = next((why for key, why in MEMORY_BY_DESIGN.items() if st.get("name", "").startswith(key)), None)
    if verdict.startswith("inconclusive") and design:
        st["memory_vs_holding"]["bounded_by_design"] = design


# FLOPs ------------------------------------------------------------------------------------------------------------

def frame_cnn_flops(architecture: str, classes: int) -> float:
    """Forward multiply-adds x 2 of one 4,000-sample window, from the layer shapes of models/frame_cnn.py."""
    from exvo_keras.models.frame_cnn import ARCHITECTURES, DEFAULT_HIDDEN_UNITS, Conv, layer_lengths

    flops, channels = 0.0, 1
    lengths = layer_lengths(architecture)
    for spec, n in zip(ARCHITECTURES[architecture], lengths):
        if isinstance(spec, Conv):
            flops += 2.0 * spec.kernel * channels * spec.filters * n
            channels = spec.filters
    hidden = DEFAULT_HIDDEN_UNITS[architecture]
    return flops + 2.0 * lengths[-1] * channels * hidden + 2.0 * hidden * classes


def ssl_flops(config: dict, samples: np.ndarray) -> float:
    """Forward FLOPs of an encoder over clips of these lengths (padding ignored: batches are sorted by length).

    Counted: the feature convolutions, the feature projection, the grouped positional convolution, and per
    transformer layer the Q/K/V/output projections (8 H^2 a frame), the feed-forward (4 H F) and attention
    (4 T H a frame for T frames). Norms, activations and WavLM's position-bias gates are left out (< 1 %).
    """
    from exvo_keras.models.ssl import hf_config_fields

    c = hf_config_fields(config)
    frames = np.asarray(samples, np.int64)
    flops, channels = 0.0, 1
    for dim, kernel, stride in zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"]):
        frames = (frames - kernel) // stride + 1
        flops += 2.0 * kernel * channels * dim * float(frames.sum())
        channels = dim
    h, total = c["hidden_size"], float(frames.sum())
    flops += 2.0 * channels * h * total
    flops += 2.0 * c["num_conv_pos_embeddings"] * (h / c["num_conv_pos_embedding_groups"]) * h * total
    per_layer = (8.0 * h * h + 4.0 * h * c["intermediate_size"]) * total + 4.0 * h * float((frames ** 2).sum())
    return flops + c["num_hidden_layers"] * per_layer


# Driver -----------------------------------------------------------------------------------------------------------

def parse_sizes(pairs: list[str] | None, base: dict) -> dict:
    sizes = dict(base)
    for pair in pairs or []:
        name, sep, values = pair.partition("=")
        if not sep or name not in sizes:
            raise SystemExit(f"--sizes takes STAGE=N,N,N with STAGE one of {', '.join(sizes)}; got {pair!r}")
        try:
            sizes[name] = tuple(sorted(int(v) for v in values.split(",")))
        except ValueError:
            raise SystemExit(f"--sizes {pair!r}: sizes are whole numbers of clips") from None
        if len(sizes[name]) < 2:
            raise SystemExit(f"--sizes {pair!r}: at least two sizes, to fit a line")
    return sizes


MARKER = ".scale_rehearsal"


def clear_work(work: Path) -> None:
    """Removes everything under `work` but the logs and the marker that says this script made the folder."""
    for child in work.iterdir():
        if child.name not in ("logs", MARKER):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def prepare_work(work: Path) -> None:
    work = work.resolve()
    if work == ROOT or ROOT in work.parents:
        raise SystemExit(f"--work {work} is inside the repository; choose a folder outside it (default /tmp)")
    if work.exists():
        if any(work.iterdir()) and not (work / MARKER).exists():
            raise SystemExit(f"--work {work} is a non-empty folder this script did not make; choose another")
        clear_work(work)  # a previous run's corpus and caches would be stale
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/exvo_scale"),
                        help="folder for the corpus, caches and stores, outside the repository (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2-layer encoders: checks that every "
                        "stage's code path runs (about 3 min); writes results/scale_quick.json")
    parser.add_argument("--clips", type=int, help=f"clips of the full corpus (default {EXVO_CLIPS:,}; quick 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    parser.add_argument("--sizes", action="append", metavar="STAGE=N,N,N",
                        help="clips at which to measure a fitted stage, e.g. zff=500,1000,2000; stages: "
                             + ", ".join(SIZES))
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="stages to measure (default all; pipeline and embed need raw)")
    parser.add_argument("--steps", type=int, help="frame-CNN training steps to time per architecture (default 5)")
    parser.add_argument("--head-rows", type=int, help=f"Train rows for the heads (default {EXVO_SPLITS['Train']:,})")
    parser.add_argument("--head-epochs", type=int, help="epochs per seed timed for each head (default 2)")
    parser.add_argument("--linear-rows", type=int, help="rows of the linear reference fit (default 8,000)")
    parser.add_argument("--encoders", nargs="+", choices=list(ENCODERS),
                        help="SSL encoders to measure (default all; quick wav2vec2)")
    parser.add_argument("--report-clips", type=int, help="clips of the work folder for report/export (default 300)")
    parser.add_argument("--ser-hours", type=float, default=7.0,
                        help="audio of the speech-emotion list (default 7: IEMOCAP's four classes)")
    parser.add_argument("--asr-hours", type=float, default=80.0,
                        help="audio of the phone list (default 80: AMI's training partition)")
    parser.add_argument("--cores", type=int, default=16, help="cores of machine (b) (default 16)")
    parser.add_argument("--cpu-efficiency", type=float, default=0.8,
                        help="parallel efficiency of per-clip-parallel CPU stages on machine (b) (default 0.8)")
    parser.add_argument("--gpu-name", default="A100, dense TF32", help="what --gpu-peak-tflops describes")
    parser.add_argument("--gpu-peak-tflops", type=float, default=156.0, help="GPU peak (default 156: A100 TF32)")
    parser.add_argument("--gpu-efficiency", type=float, default=0.30, help="sustained share of the peak (0.30)")
    parser.add_argument("--gpu-step-overhead-ms", type=float, default=3.0,
                        help="per training step dispatch time on the GPU, not counted by FLOPs (default 3)")
    parser.add_argument("--stage-timeout", type=float, default=1800, help="seconds before a measurement is killed")
    parser.add_argument("--keep", action="store_true", help="keep the corpus, caches and stores under --work")
    parser.add_argument("--reproject", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: recompute the projection of a results file (e.g. "
                             "benchmarks/results/scale.json) under the assumption flags given, and rewrite it")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, json.loads(args.spec))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up lines, once it is imported here
    if args.reproject:
        return reproject(args.reproject, args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a kill stops the running measurement too

    quick = args.quick
    args.clips = args.clips or (300 if quick else EXVO_CLIPS)
    args.steps = args.steps or (1 if quick else 5)
    args.head_rows = args.head_rows or (1000 if quick else EXVO_SPLITS["Train"])
    args.head_epochs = args.head_epochs or (1 if quick else 2)
    args.linear_rows = args.linear_rows or (300 if quick else 8000)
    args.report_clips = args.report_clips or (120 if quick else 300)
    # --quick checks each code path once: one encoder, one architecture, one head
    args.encoders = args.encoders or (["wav2vec2"] if quick else list(ENCODERS))
    step_archs = ("subseg",) if quick else ("subseg", "seg", "asr")
    embed_archs = ("subseg",) if quick else ("subseg", "asr")
    heads = (("sys1", "default", list(HEAD_DIMS)),) if quick else (
        ("sys1", "default", list(HEAD_DIMS)), ("sys2", "default", list(HEAD_DIMS)), ("baseline", "baseline", [6373]))
    sizes = parse_sizes(args.sizes, QUICK_SIZES if quick else SIZES)
    for name, values in sizes.items():
        if max(values) > args.clips:
            raise SystemExit(f"--sizes {name}: {max(values)} clips, more than the corpus's {args.clips}")
    for name in ("pipeline", "embed-subseg", "embed-asr"):
        if max(sizes[name]) > max(sizes["raw"]):
            raise SystemExit(f"{name} reads the raw cache: its largest size must not exceed raw's {max(sizes['raw'])}")

    started = time.perf_counter()
    work = args.work
    prepare_work(work)
    runner = Runner(work, args.stage_timeout)
    print(f"scale rehearsal ({'quick' if quick else 'default'} mode) in {work}; logs in {runner.logs}", flush=True)
    measured: dict = {}

    print(f"writing the synthetic corpus ({args.clips:,} clips)", flush=True)
    full = work / "corpus"
    measured["write"] = runner.worker("write corpus", "write", out=str(full), clips=args.clips, seed=args.seed)
    if "error" in measured["write"]:
        raise SystemExit(f"the corpus could not be written: {measured['write']['error']}")
    corpus_info = measured["write"]["result"]
    lengths = np.load(work / "corpus_lengths.npy")
    import pandas as pd

    split = pd.read_csv(full / "data_info.csv", dtype=str, keep_default_na=False)["Split"].to_numpy()
    order = np.random.default_rng([args.seed, 5]).permutation(args.clips)  # nested subsets, splits mixed
    subsets: dict[int, Path] = {}

    def subset(n: int) -> Path:
        if n not in subsets:
            subsets[n] = subset_corpus(full, work / "subsets" / str(n), order[:n])
        return subsets[n]

    def sized(stage: str, unit: str, measure) -> list[dict]:
        points = []
        for n in sizes[stage]:
            record = measure(n)
            points.append({"clips": n, "unit": unit, **record})
            if "error" in record:
                break  # a bigger size would fail the same way
        return points

    stages = set(args.stages)
    if {"pipeline", "embed"} & stages and "raw" not in stages:
        print("pipeline and embed read the raw stage's cache: skipped without it", flush=True)

    if "check" in stages:
        print("check-corpus (full corpus)", flush=True)
        measured["check"] = runner.cli("check-corpus", "check-corpus", full, "-q")
    if "open" in stages:
        measured["open"] = runner.worker("open corpus", "open", data=str(full))

    caches = work / "caches"
    raw_cache = None
    for kind in ("raw", "zff"):
        if kind not in stages:
            continue
        print(f"{kind} signal cache", flush=True)

        def build(n, kind=kind):
            folder = caches / f"{kind}_{n}"
            return runner.worker(f"{kind} cache {n}", "cache", data=str(subset(n)), cache=str(folder), kind=kind)

        measured[kind] = sized(kind, "audio hour", build)
        for n in sizes[kind][:-1] if kind == "raw" else sizes[kind]:
            shutil.rmtree(caches / f"{kind}_{n}", ignore_errors=True)  # only raw's largest is read again
        if kind == "raw":
            raw_cache = caches / f"raw_{max(sizes['raw'])}"

    if "compare" in stages:
        print("ComParE (extract-compare)", flush=True)
        measured["compare"] = sized("compare", "audio hour", lambda n: runner.cli(
            f"compare {n}", "extract-compare", "--data", subset(n), "--work", work / "compare" / str(n),
            "--jobs", os.cpu_count() or 1, "-q"))
        shutil.rmtree(work / "compare", ignore_errors=True)

    have_raw = raw_cache is not None and raw_cache.exists()
    if "pipeline" in stages and have_raw:
        print("window pipeline, one epoch at the 10 ms hop", flush=True)
        measured["pipeline"] = sized("pipeline", "window", lambda n: runner.worker(
            f"pipeline {n}", "pipeline", data=str(subset(n)), cache=str(raw_cache), hop=1, batch=256))

    classes = {"subseg": 10, "seg": 10, "asr": PHONE_CLASSES}
    if "train-step" in stages:
        print("frame-CNN training step, batch 256", flush=True)
        measured["train-step"] = {arch: runner.worker(f"train step {arch}", "train-step", arch=arch,
                                                      classes=classes[arch], batch=256, steps=args.steps)
                                  for arch in step_archs}

    if "embed" in stages and have_raw:
        print("embeddings (frame-CNN forward over every window)", flush=True)
        measured["embed"] = {arch: sized(f"embed-{arch}", "window", lambda n, arch=arch: runner.worker(
            f"embed {arch} {n}", "embed", arch=arch, classes=classes[arch], data=str(subset(n)),
            cache=str(raw_cache), hop=1)) for arch in embed_archs}
    if raw_cache is not None:
        shutil.rmtree(raw_cache, ignore_errors=True)

    if "ssl" in stages:
        print("SSL extraction (random-init encoders of the checkpoints' sizes)", flush=True)
        measured["ssl"] = {}
        for enc in args.encoders:
            measured["ssl"][enc] = sized(f"ssl-{enc}", "audio hour", lambda n, enc=enc: runner.worker(
                f"ssl {enc} {n}", "ssl", encoder=enc, layers=2 if quick else None, data=str(subset(n)),
                out=str(work / "ssl" / f"{enc}_{n}.h5")))
        shutil.rmtree(work / "ssl", ignore_errors=True)

    if "heads" in stages:
        print(f"heads, {args.head_rows:,} Train rows, {args.head_epochs} epoch(s) per seed", flush=True)
        measured["heads"] = {}
        for head, recipe, dims in heads:
            measured["heads"][head] = runner.worker(f"heads {head}", "heads", head=head, recipe=recipe,
                                                    rows=args.head_rows, dims=dims, epochs=args.head_epochs)
    if "linear" in stages:
        print(f"linear reference fit, {args.linear_rows:,} rows", flush=True)
        measured["linear"] = runner.worker("linear fit", "linear", rows=args.linear_rows, dims=list(HEAD_DIMS))

    if "report-export" in stages:
        print(f"report and export on a {args.report_clips}-clip work folder", flush=True)
        small, data = work / "small_work", subset(args.report_clips)
        setup = [runner.cli("setup: extract-ssl wavlm", "extract-ssl", "wavlm", "--data", data, "--work", small, "-q"),
                 runner.cli("setup: train wavlm-sys1", "train", "--table", "2", "--rows", "wavlm-sys1", "--seeds",
                            "1", "--epochs", "2", "--data", data, "--work", small, "-q")]
        measured["report-export"] = {"setup": setup}
        if not any("error" in s for s in setup):
            measured["report-export"]["report"] = runner.cli(
                "report", "report", "--table", "all", "--data", data, "--work", small, "--out", small / "results", "-q")
            measured["report-export"]["export"] = runner.cli(
                "export", "export", "wavlm-sys1", small / "saved_models" / "wavlm-sys1", "--work", small,
                "--data", data, "-q")

    # Only now: TensorFlow in this process would have added its memory to every child's ru_maxrss.
    from exvo_keras.signal.framing import num_windows

    windows = np.array([num_windows(int(n), 1) for n in lengths])
    for value in measured.values():
        for points in value.values() if isinstance(value, dict) else [value]:
            for point in points if isinstance(points, list) else []:
                if not (isinstance(point, dict) and "unit" in point):
                    continue
                rows = order[:point["clips"]]
                point["units"] = float(lengths[rows].sum() / SAMPLE_RATE / 3600 if point["unit"] == "audio hour"
                                       else windows[rows].sum())
    figures = summarise(measured, args, corpus_info, lengths, split, windows, sizes, quick)
    figures["run_s"] = round(time.perf_counter() - started, 1)
    # report() prints every figure as key = value: for these nested stages that is pages of dicts, so its
    # print goes to the log and the console gets the table
    with open(runner.logs / "figures.txt", "w") as log, contextlib.redirect_stdout(log):
        path = report("scale_quick" if quick else "scale", figures)
    print()
    print(figures["markdown"])
    print(f"\nwritten to {path} (every figure printed to {runner.logs / 'figures.txt'})")
    if not args.keep:
        clear_work(work)
        print(f"removed the corpus, caches and stores under {work} (logs kept; --keep keeps everything)")
    print(f"scale rehearsal finished in {figures['run_s'] / 60:.1f} min")


# Summary and projection -------------------------------------------------------------------------------------------

def summarise(measured, args, corpus_info, lengths, split, windows, sizes, quick) -> dict:
    hours = corpus_info["audio_hours"]
    clips = corpus_info["clips"]
    train = split == "Train"
    paper = {
        "clips": clips, "audio_hours": hours,
        "train_windows": int(windows[train].sum()), "val_windows": int(windows[split == "Val"].sum()),
        "test_hours": float(lengths[split == "Test"].sum() / SAMPLE_RATE / 3600),
        "all_windows": int(windows.sum()),
    }
    signal_mib_per_hour = 3600 * SAMPLE_RATE * 4 / MIB
    stages: dict = {}
    if "write" in measured:
        stages["write corpus"] = {"basis": f"measured at {clips:,} clips", **measured["write"]}
    for key in ("check", "open"):
        if key in measured:
            stages[key] = {"basis": f"measured at {clips:,} clips", **measured[key]}
    for key, unit, hold, full_units in (("raw", "audio hour", signal_mib_per_hour, hours),
                                        ("zff", "audio hour", signal_mib_per_hour, hours),
                                        ("compare", "audio hour", signal_mib_per_hour, hours),
                                        ("pipeline", "window", WINDOW_BYTES / MIB, paper["train_windows"])):
        if key in measured:
            stages[key] = fitted_stage(key, measured[key], unit, hold, full_units)
    for arch, points in measured.get("embed", {}).items():
        stages[f"embed {arch}"] = fitted_stage(f"embed {arch}", points, "window", WINDOW_BYTES / MIB,
                                              paper["all_windows"])
    for enc, points in measured.get("ssl", {}).items():
        st = stages[f"ssl {enc}"] = fitted_stage(f"ssl {enc}", points, "audio hour", signal_mib_per_hour, hours)
        st["architecture"] = ENCODERS[enc][0] + (" (2 layers: --quick)" if quick else "")
        # counted for the real architecture, also in --quick, where the measured encoders are cut short
        st["paper_flops"] = ssl_flops(ENCODERS[enc][1], lengths)
        if "cost" in st and not quick:
            st["cpu_gflop_per_s"] = st["paper_flops"] / hours / st["cost"]["b"] / 1e9
    for arch, record in measured.get("train-step", {}).items():
        st = stages[f"train step {arch}"] = {"basis": "measured, batch 256", **record}
        if "result" in record:
            st["cpu_gflop_per_s"] = 3 * frame_cnn_flops(arch, 10) * 256 / record["result"]["step_s"] / 1e9
    for arch in ("subseg", "asr"):
        st = stages.get(f"embed {arch}", {})
        if "cost" in st and st["cost"]["b"] > 0:
            st["cpu_gflop_per_s"] = frame_cnn_flops(arch, 10) / st["cost"]["b"] / 1e9
    for head, record in measured.get("heads", {}).items():
        stages[f"head {head}"] = {"basis": f"measured at {args.head_rows:,} rows", **record}
    if "linear" in measured:
        stages["linear fit"] = {"basis": f"measured at {args.linear_rows:,} rows", **measured["linear"]}
    for key, record in measured.get("report-export", {}).items():
        if key != "setup":
            stages[key] = {"basis": f"measured once, {args.report_clips}-clip work folder", **record}
    if "report-export" in measured:
        stages["report/export setup"] = measured["report-export"]["setup"]

    projection = project(stages, paper, args, os.cpu_count() or 1)
    figures = {
        "mode": "quick" if quick else "default",
        "corpus": {**corpus_info, "windows_10ms_hop": paper["all_windows"],
                   "train_windows_10ms_hop": paper["train_windows"],
                   "distribution": f"log-normal, sigma {DURATION_SIGMA}, mu {corpus_info['mu']:.4f} (clipped mean "
                                   f"{EXVO_HOURS:g} h / {EXVO_CLIPS:,}), clipped to {DURATION_RANGE_S} s"},
        "sizes_clips": {k: list(v) for k, v in sizes.items()},
        "stages": stages,
        "memory": memory_summary(stages),
        "memory_notes": {
            # what a .cache() of the CV windows would hold (train_frame_cnn recomputes them each epoch instead)
            "frame_cnn_cv_windows_gib_at_paper_scale": 0.1 * paper["train_windows"] * WINDOW_BYTES / 2 ** 30,
        },
        "projection": projection,
    }
    figures["markdown"] = markdown(figures, time.strftime("%Y-%m-%d"))
    return figures


def memory_summary(stages: dict) -> dict:
    """Per stage: peak memory (largest measurement) and, for fitted stages, whether it grows with the corpus."""
    out = {}
    for name, stage in stages.items():
        if isinstance(stage, list) or "error" in stage and "points" not in stage:
            continue
        if "points" in stage:
            ok = [p for p in stage["points"] if "error" not in p]
            if not ok:
                continue
            entry = {"peak_mib_at_largest": max(max(p["peak_rss_mib"], p["peak_tree_rss_mib"]) for p in ok),
                     "fitted_mib_per_unit": stage.get("memory", {}).get("b"),
                     "unit": stage["unit"], "projected_peak_mib_at_paper_scale": stage.get("paper_peak_mib")}
            if "memory_vs_holding" in stage:
                entry["verdict"] = stage["memory_vs_holding"]["verdict"]
            out[name] = entry
        elif "peak_rss_mib" in stage:
            out[name] = {"peak_mib": max(stage["peak_rss_mib"], stage["peak_tree_rss_mib"]), "basis": stage["basis"]}
    return out


def duration(seconds: float) -> str:
    return (f"{seconds:.1f} s" if abs(seconds) < 120 else f"{seconds / 60:.1f} min" if abs(seconds) < 7200
            else f"{seconds / 3600:.1f} h")


def project(stages: dict, paper: dict, args, here_cores: int) -> dict:
    """Rows of stage -> per-unit cost, units at paper scale, hours on (a) this machine and (b) 16 cores + GPU.

    (a) is given twice: at the wall times measured (on a shared machine, inflated by whatever else ran), and
    CPU-bound, the CPU seconds measured over this machine's `here_cores` (one core for serial stages): what an
    idle machine would need if every parallel stage kept all its cores busy. CPU seconds vary far less with
    the machine's load than wall time, so the truth on an idle machine lies between the two, nearer the second.
    """
    from exvo_keras.models.frame_cnn import DEFAULT_HIDDEN_UNITS
    from exvo_keras.registry import COMPARE, DEEPSPECTRUM, NETWORKS, SSL_FEATURE_SETS, Row, embedded_networks, systems
    from exvo_keras.training.frame_cnn import PROFILES, FrameTraining
    from exvo_keras.training.recipes import DEFAULT_RECIPE, DEFAULT_SEEDS, RECIPES

    profile = PROFILES["paper"]
    epochs, hop = profile["max_epochs"], profile["hop_frames"]
    batch = profile.get("batch_size", FrameTraining.batch_size)
    if hop != 1:
        raise ValueError(f"the paper profile's hop is {hop} frames; this projection counts windows at 1")
    seeds = DEFAULT_SEEDS
    sustained = args.gpu_peak_tflops * 1e12 * args.gpu_efficiency
    cpu_parallel = args.cores * args.cpu_efficiency
    rows, missing = [], []
    H = paper["audio_hours"]
    windows_per_hour = paper["all_windows"] / H

    def add(stage, basis, per_unit, units, a_s, a_cpu_s, b_s, b_basis, out_of_domain=False, serial=False):
        rows.append({"stage": stage, "basis": basis, "per_unit": per_unit, "units": units, "a_hours": a_s / 3600,
                     "a_cpu_bound_hours": a_cpu_s / (1 if serial else here_cores) / 3600, "b_hours": b_s / 3600,
                     "b_basis": b_basis, "out_of_domain": out_of_domain})

    def have(*names):
        absent = [n for n in names if n not in stages or "error" in stages[n]
                  or ("cost" not in stages[n] and "wall_s" not in stages[n])]
        missing.extend(absent)
        return not absent

    # Serial one-off stages keep their measured wall time on (b): one process, same single-core speed assumed.
    if have("check"):
        s = stages["check"]["wall_s"]
        add("check-corpus", stages["check"]["basis"], f"{s / paper['clips'] * 1e3:.2f} ms/clip",
            f"{paper['clips']:,} clips", s, stages["check"]["cpu_s"], s, "serial: same wall time", serial=True)
    opens = 7  # extract-compare, extract-network, extract-ssl, train x2, report, export each open the corpus once
    if have("open"):
        s = stages["open"]["wall_s"]
        add(f"open corpus (fingerprint, wav digests) x {opens}", stages["open"]["basis"], f"{s:.1f} s/open",
            f"{opens} processes", s * opens, stages["open"]["cpu_s"] * opens, s * opens, "serial: same wall time",
            serial=True)

    def fitted(name, units, invocations=1):
        st = stages[name]
        wall = st["cost"]["a"] * invocations + st["cost"]["b"] * units
        cpu = st["cpu_cost"]["a"] * invocations + st["cpu_cost"]["b"] * units
        return st, wall, cpu

    cache_hours = {"raw": H + args.ser_hours + args.asr_hours, "zff": H + args.ser_hours}
    cache_sources = {"raw": 3, "zff": 2}  # ExVo, the SER list, the phone list (raw only)
    for kind, label in (("raw", "raw signal cache"), ("zff", "ZFF signal cache")):
        if have(kind):
            st, wall, cpu = fitted(kind, cache_hours[kind], cache_sources[kind])
            add(f"{label} (ExVo {H:.0f} h + lists)", st["basis"], f"{st['cost']['b']:.3g} s/audio-h",
                f"{cache_hours[kind]:.0f} h", wall, cpu, cpu / cpu_parallel, "per-clip parallel: CPU s / cores")
    if have("compare"):
        st, wall, cpu = fitted("compare", H)
        add("ComParE functionals", st["basis"], f"{st['cost']['b']:.3g} s/audio-h", f"{H:.1f} h", wall, cpu,
            cpu / cpu_parallel, "per-clip parallel: CPU s / cores")

    # Frame CNNs: an epoch is its training steps, the window pipeline over fit + CV windows and the CV forward pass.
    pipe_ok = have("pipeline")
    pipe_s = stages["pipeline"]["cost"]["b"] if pipe_ok else None  # s per window
    pipe_cpu = stages["pipeline"]["cpu_cost"]["b"] if pipe_ok else None
    pipe_util = pipe_cpu / pipe_s if pipe_ok and pipe_s > 0 else 1.0
    embed_ok = {arch: have(f"embed {arch}") for arch in ("subseg", "asr")}
    step_ok = {arch: have(f"train step {arch}") for arch in ("subseg", "asr")}
    train_w = paper["train_windows"]
    nets = {"exvo": [n for n in NETWORKS.values() if n.source == "exvo"],
            "ser": [n for n in NETWORKS.values() if n.source == "ser"],
            "phones": [n for n in NETWORKS.values() if n.source == "phones"]}
    source_windows = {"exvo": train_w, "ser": args.ser_hours * windows_per_hour,
                      "phones": args.asr_hours * windows_per_hour}
    unscaled_pipe_rows = []

    def window_stage_gpu(piped, forward, forward_flops, train_steps=0, train_flops=0.0, parallel=True):
        """Seconds on (b): the GPU's time for `forward` windows' forward passes and the training steps, or the
        input pipeline's for `piped` windows, whichever is longer (prefetch overlaps them). The pipeline maps
        clips in parallel (tf.data, AUTOTUNE): it gets (b)'s cores over the cores it used here, or with
        parallel=False only this machine's rate (the variant total)."""
        gpu = forward * forward_flops / sustained + train_steps * (train_flops / sustained
                                                                   + args.gpu_step_overhead_ms / 1e3)
        rate_s = pipe_s / (cpu_parallel / pipe_util) if parallel else pipe_s
        return max(gpu, piped * rate_s)

    for source, group in nets.items():
        arch = group[0].architecture
        classes = {"exvo": 10, "ser": 4, "phones": PHONE_CLASSES}[source]
        if not (pipe_ok and embed_ok.get(arch) and step_ok.get(arch)):
            continue
        total_w = source_windows[source]
        fit_w, cv_w = 0.9 * total_w, 0.1 * total_w
        steps = -(-int(fit_w) // batch)
        step = stages[f"train step {arch}"]["result"]
        step_s, step_cpu = step["step_s"], step["work_cpu_s"] / len(step["steps_s"])
        fwd_s, fwd_cpu = stages[f"embed {arch}"]["cost"]["b"], stages[f"embed {arch}"]["cpu_cost"]["b"]
        fwd, train_flops = frame_cnn_flops(arch, classes), 3 * frame_cnn_flops(arch, classes) * batch
        # The CV windows go through the pipeline every epoch: train_frame_cnn recomputes them (no .cache()).
        a_epoch = steps * step_s + total_w * pipe_s + cv_w * fwd_s
        a_epoch_cpu = steps * step_cpu + total_w * pipe_cpu + cv_w * fwd_cpu
        b_epoch = window_stage_gpu(total_w, cv_w, fwd, steps, train_flops)
        b_par = window_stage_gpu(total_w, cv_w, fwd, steps, train_flops, parallel=False)
        n = len(group)
        label = ", ".join(x.label for x in group)
        add(f"frame-CNN training: {label} ({arch}), {epochs} epochs", "step measured; pipeline, forward fitted",
            f"{duration(a_epoch)}/epoch", f"{n} x {epochs} epochs x {total_w / 1e6:.2f} M windows",
            n * epochs * a_epoch, n * epochs * a_epoch_cpu, n * epochs * b_epoch,
            "max(GPU FLOPs, window pipeline on (b)'s cores)",
            out_of_domain=source != "exvo")
        unscaled_pipe_rows.append((len(rows) - 1, n * epochs * b_par))

    # Table 1: each ExVo network's decisions on its CV clips and on Val.
    if pipe_ok and embed_ok["subseg"]:
        dec_w = 0.1 * train_w + paper["val_windows"]
        n = len(nets["exvo"])
        fwd_s = stages["embed subseg"]["cost"]["b"]
        add("Table 1 decisions (CV + Val windows)", "fitted (subseg forward)", f"{fwd_s * 1e6:.0f} us/window",
            f"{n} x {dec_w / 1e6:.2f} M windows", n * dec_w * fwd_s,
            n * dec_w * stages["embed subseg"]["cpu_cost"]["b"],
            n * window_stage_gpu(dec_w, dec_w, frame_cnn_flops("subseg", 10)), "max(GPU FLOPs, window pipeline on (b)'s cores)")
        unscaled_pipe_rows.append((len(rows) - 1, n * window_stage_gpu(dec_w, dec_w, frame_cnn_flops("subseg", 10),
                                                                         parallel=False)))

    # Embeddings: every clip's windows through each network whose store a table row reads.
    for arch in ("subseg", "asr"):
        group = [name for name in embedded_networks() if NETWORKS[name].architecture == arch]
        if not group or not (pipe_ok and embed_ok[arch]):
            continue
        st, wall, cpu = fitted(f"embed {arch}", paper["all_windows"])
        fwd = frame_cnn_flops(arch, 10)
        add(f"embeddings: {', '.join(NETWORKS[g].label for g in group)}", st["basis"],
            f"{st['cost']['b'] * 1e6:.0f} us/window", f"{len(group)} x {paper['all_windows'] / 1e6:.1f} M windows",
            len(group) * wall, len(group) * cpu,
            len(group) * window_stage_gpu(paper["all_windows"], paper["all_windows"], fwd),
            "max(GPU FLOPs, window pipeline on (b)'s cores)")
        unscaled_pipe_rows.append((len(rows) - 1, len(group) * window_stage_gpu(
            paper["all_windows"], paper["all_windows"], fwd, parallel=False)))

    # SSL encoders over every clip.
    decode_s_per_hour = stages["raw"]["cost"]["b"] if have("raw") else 0.0
    for enc in SSL_FEATURE_SETS:
        name = f"ssl {enc}"
        if not have(name):
            continue
        st, wall, cpu = fitted(name, H)
        flops = stages[name]["paper_flops"]
        add(f"SSL extraction: {ENCODERS[enc][0]}", st["basis"], f"{st['cost']['b'] / 3600:.3g} s/audio-s",
            f"{H:.1f} h", wall, cpu, max(flops / sustained, H * decode_s_per_hour),
            "GPU FLOPs (wav decoding serial)")

    # Heads: every registered row with a trained head (DeepSpectrum left out), seeds x epochs, plus linear fits.
    dims_of = {COMPARE: 6373, **{n: 2 * ENCODERS[n][1].get("hidden_size", 768) for n in SSL_FEATURE_SETS},
               **{n: 2 * DEFAULT_HIDDEN_UNITS[NETWORKS[n].architecture] for n in NETWORKS}}
    heads_ok = all(have(f"head {h}") for h in ("sys1", "sys2", "baseline")) and have("linear fit")
    if heads_ok:
        rows_scale = EXVO_SPLITS["Train"] / stages["linear fit"]["result"]["rows"]

        def per_dims(points: dict, key: str, d: int) -> float:
            # through the measured dims (a line in d; constant when one was measured), never below zero
            xs = sorted(int(k) for k in points)
            ys = [points[str(x)][key] for x in xs]
            if len(xs) == 1:
                return ys[0]
            b = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
            return max(ys[0] + b * (d - xs[0]), 0.05 * ys[0])

        def linear_s(d: int, key: str) -> float:
            # a power law in d through the two measured dims (ridge is n d^2, logistic n d per iteration)
            pts = stages["linear fit"]["result"]["dims"]
            (d0, d1) = sorted(int(k) for k in pts)
            t0, t1 = pts[str(d0)][key], pts[str(d1)][key]
            k = np.log(t1 / t0) / np.log(d1 / d0)
            return float(t0 * (d / d0) ** k) * rows_scale

        head_rows = [r for r in systems().values() if isinstance(r, Row) and DEEPSPECTRUM not in r.features]
        deep = {"a": 0.0, "cpu": 0.0, "n": 0, "runs": 0}
        base = dict(deep)
        linear = {"a": 0.0, "cpu": 0.0, "n": 0}
        for row in head_rows:
            d = sum(dims_of[f] for f in row.features)
            recipe = RECIPES[row.recipe or DEFAULT_RECIPE]
            if row.head == "linear" or recipe.get("linear_skip"):
                linear["a"] += linear_s(d, "fit_s")
                linear["cpu"] += linear_s(d, "fit_cpu_s")
                linear["n"] += 1
            if row.head == "linear":
                continue
            points = stages[f"head {row.head}"]["result"]["dims"]
            e = recipe["epochs"]
            target = base if row.head == "baseline" else deep
            target["a"] += seeds * e * per_dims(points, "epoch_s", d) + per_dims(points, "trace_s", d)
            target["cpu"] += seeds * e * per_dims(points, "epoch_cpu_s", d) + per_dims(points, "trace_s", d)
            target["n"] += 1
        sys_points = stages["head sys1"]["result"]["dims"]["6373"]
        add(f"heads Sys-1/Sys-2: {deep['n']} systems x {seeds} seeds x <= {RECIPES['default']['epochs']} epochs",
            stages["head sys1"]["basis"] + " (6,373 and 2,048 dims)",
            f"{sys_points['epoch_s']:.1f} s/epoch (Sys-1, 6,373 dims)", f"{deep['n'] * seeds} trainings",
            deep["a"], deep["cpu"], deep["cpu"] / cpu_parallel, "parallel over systems and seeds: CPU s / cores")
        bpts = stages["head baseline"]["result"]["dims"]["6373"]
        add(f"baseline head: {base['n']} system x {seeds} seeds x {RECIPES['baseline']['epochs']} epochs",
            stages["head baseline"]["basis"], f"{bpts['epoch_s']:.1f} s/epoch", f"{base['n'] * seeds} trainings",
            base["a"], base["cpu"], base["cpu"] / cpu_parallel, "parallel over seeds: CPU s / cores")
        lpts = stages["linear fit"]["result"]["dims"]["6373"]
        add(f"linear reference fits (every default-recipe system and linear row): {linear['n']}",
            f"scaled: {stages['linear fit']['basis']} x {rows_scale:.2f} rows",
            f"{duration(lpts['fit_s'] * rows_scale)}/fit at 6,373 dims", f"{linear['n']} fits",
            linear["a"], linear["cpu"], linear["cpu"] / cpu_parallel, "parallel over systems: CPU s / cores")

    for key, label in (("report", "report (all tables)"), ("export", "export best")):
        if have(key):
            s = stages[key]["wall_s"]
            add(label, stages[key]["basis"] + "; size-independent (reads per-seed CSVs)", f"{s:.0f} s/run", "1 run",
                s, stages[key]["cpu_s"], s, "serial: same wall time", serial=True)

    # predict Test through the paper's best exported system (WavLM Sys-2 + Raw(ExVo)-ER Sys-2 hybrid)
    if have("ssl wavlm") and pipe_ok and embed_ok["subseg"]:
        test_h = paper["test_hours"]
        test_w = test_h * windows_per_hour
        a = test_h * stages["ssl wavlm"]["cost"]["b"] + test_w * stages["embed subseg"]["cost"]["b"]
        a_cpu = test_h * stages["ssl wavlm"]["cpu_cost"]["b"] + test_w * stages["embed subseg"]["cpu_cost"]["b"]
        flops = stages["ssl wavlm"].get("paper_flops", 0) * test_h / H + test_w * frame_cnn_flops("subseg", 10)
        add("predict Test through the best export (WavLM-large + Raw(ExVo)-ER)",
            "from the fitted SSL and subseg costs", f"{a / test_h / 3600:.2f} s/audio-s", f"{test_h:.1f} h",
            a, a_cpu, max(flops / sustained, test_w * pipe_s), "max(GPU FLOPs, window pipeline on (b)'s cores)")

    def total(key, in_domain=False):
        # The SER and phone networks learn from lists whose sizes are assumed, and are skipped when their
        # trained weights are supplied (train-network --weights): totals are also given without them.
        return sum(r[key] for r in rows if not (in_domain and r["out_of_domain"]))

    total_b = total("b_hours")
    total_b_unscaled = total_b + sum(b / 3600 - rows[i]["b_hours"] for i, b in unscaled_pipe_rows)
    top = lambda key: [r["stage"] for r in sorted(rows, key=lambda r: -(r[key] or 0))[:3]]  # noqa: E731
    return {
        "rows": rows,
        "total_a_hours": total("a_hours"), "total_a_cpu_bound_hours": total("a_cpu_bound_hours"),
        "total_b_hours": total_b,
        "total_a_hours_without_out_of_domain_training": total("a_hours", True),
        "total_a_cpu_bound_hours_without_out_of_domain_training": total("a_cpu_bound_hours", True),
        "total_b_hours_without_out_of_domain_training": total("b_hours", True),
        "total_b_hours_window_pipeline_unscaled": total_b_unscaled,
        "biggest_a": top("a_hours"), "biggest_b": top("b_hours"),
        "missing_stages": sorted(set(missing)),
        "units_at_paper_scale": {k: v for k, v in paper.items() if not k.startswith("_")},
        "assumptions": {
            "profile": f"paper: hop {hop} frame, batch {batch}, {epochs} epochs (the maximum: the halving schedule "
                       "may stop sooner, so frame-CNN and head figures are upper bounds)",
            "seeds": seeds, "cv_share_of_train": 0.1,
            "out_of_domain_hours": {"ser": args.ser_hours, "phones": args.asr_hours},
            "machine_a": "this machine: stages one after another at their measured or fitted wall time; a frame-CNN "
                         "epoch adds its training steps, the window pipeline and the CV forward pass (they compete "
                         "for the same cores)",
            "machine_b": f"{args.cores} cores + one GPU ({args.gpu_name}, peak {args.gpu_peak_tflops:g} TFLOP/s, "
                         f"{args.gpu_efficiency:.0%} sustained = {sustained / 1e12:.1f} TFLOP/s, "
                         f"{args.gpu_step_overhead_ms:g} ms per training step); per-clip-parallel CPU stages at CPU "
                         f"seconds / ({args.cores} x {args.cpu_efficiency}); serial stages at this machine's wall time (same "
                         "single-core speed); a window stage takes the longer of its GPU time and its pipeline time, "
                         f"the window pipeline (a parallel tf.data map over clips) at this machine's rate x "
                         f"{args.cores} x {args.cpu_efficiency} / the {pipe_util:.2f} cores it used here",
            "window_pipeline_unscaled": "the variant total keeps the window pipeline at this machine's rate, as if "
                                        "it could not use more cores (the Python generator it replaced)",
            "left_out": "DeepSpectrum (needs ImageNet weights), hybrids (copy columns), figure2, installs",
        },
        "gpu_flops": {
            "frame_cnn_forward_per_window": {a: frame_cnn_flops(a, 10) for a in ("subseg", "seg", "asr")},
            "frame_cnn_train_step_batch": batch,
            "ssl_forward_per_audio_second": {enc: stages.get(f"ssl {enc}", {}).get("paper_flops", 0) / (H * 3600)
                                             for enc in SSL_FEATURE_SETS},
        },
    }


def markdown(figures: dict, date: str) -> str:
    """The projection and the growth of each fitted stage as markdown tables, ready for the README."""
    projection = figures["projection"]
    name = "scale_quick" if figures["mode"] == "quick" else "scale"
    lines = [f"Scale rehearsal of {date} ({figures['mode']} mode, `python benchmarks/scale.py`; figures from "
             f"`benchmarks/results/{name}.json`). (a) 2 cores: as measured (wall) and CPU-bound (CPU seconds / 2); "
             "(b) 16 cores + one GPU:", "",
             "| Stage | Basis | Per-unit cost (this machine) | Units at paper scale | (a) wall, h | (a) CPU-bound, h | "
             "(b), h |", "|---|---|---|---|---|---|---|"]

    def h(v):
        return "n/a" if v is None else f"{v:,.2f}" if v < 10 else f"{v:,.0f}"

    for r in projection["rows"]:
        lines.append(f"| {r['stage']} | {r['basis']} | {r['per_unit']} | {r['units']} | {h(r['a_hours'])} | "
                     f"{h(r['a_cpu_bound_hours'])} | {h(r['b_hours'])} |")
    lines.append(f"| **Total** | | | | **{h(projection['total_a_hours'])}** | "
                 f"**{h(projection['total_a_cpu_bound_hours'])}** | **{h(projection['total_b_hours'])}** |")
    lines.append("| Total without training the out-of-domain networks (their lists' sizes are assumed; `--weights` "
                 f"skips them) | | | | {h(projection['total_a_hours_without_out_of_domain_training'])} | "
                 f"{h(projection['total_a_cpu_bound_hours_without_out_of_domain_training'])} | "
                 f"{h(projection['total_b_hours_without_out_of_domain_training'])} |")
    lines += ["", f"(b) with the window pipeline held at this machine's rate (not using (b)'s cores): "
                  f"{h(projection['total_b_hours_window_pipeline_unscaled'])} h. Biggest stages: (a) "
                  + "; ".join(projection["biggest_a"]) + "; (b) " + "; ".join(projection["biggest_b"]) + "."]
    if projection["missing_stages"]:
        lines.append(f"Not measured (left out of the totals): {', '.join(projection['missing_stages'])}.")
    lines += ["", "| Stage | Sizes (clips) | Fitted wall cost | R^2 wall / CPU | Growth (CPU time) | "
                  "Peak memory, MiB (largest size) | "
                  "Memory slope / holding the data |", "|---|---|---|---|---|---|---|"]
    for stage, st in figures["stages"].items():
        if not isinstance(st, dict) or "cost" not in st:
            continue
        fit, cpu = st.get("work", st["wall"]), st.get("work_cpu", st["cpu"])
        sizes = ", ".join(f"{p['clips']:,}" for p in st["points"] if "error" not in p)
        per = f"{st['cost']['a']:.1f} s + {st['cost']['b']:.3g} s/{st['unit']}"
        hold = st.get("memory_vs_holding", {})
        ratio = (f"{hold['fitted_mib_per_unit'] / hold['hold_mib_per_unit']:.3f}: {hold['verdict']}"
                 + (f" ({hold['bounded_by_design']})" if "bounded_by_design" in hold else "") if hold else "")
        lines.append(f"| {stage} | {sizes} | {per} | {fit['r2']:.3f} / {cpu['r2']:.3f} | {st['growth']} | "
                     f"{figures['memory'][stage]['peak_mib_at_largest']:,.0f} | {ratio} |")
    return "\n".join(lines)


def reproject(path: Path, args) -> None:
    """Recomputes the growth verdicts, the projection and the tables of a results file from its measurements,
    under this command's assumptions."""
    if not path.is_file():
        raise SystemExit(f"--reproject {path}: no such results file (run the rehearsal first)")
    record = json.loads(path.read_text())
    for name, st in record["stages"].items():
        if isinstance(st, dict) and "cost" in st:  # verdicts follow the rules of this version
            st["growth"] = growth_verdict(st.get("work_cpu", st["cpu"]), len([p for p in st["points"]
                                                                              if "error" not in p]))
            st.setdefault("name", name)
            st.setdefault("hold_mib_per_unit", st.get("memory_vs_holding", {}).get("hold_mib_per_unit"))
            memory_verdict(st)
    record["memory"] = memory_summary(record["stages"])
    record["projection"] = project(record["stages"], record["projection"]["units_at_paper_scale"], args,
                                   record["machine"]["cpu_count"])
    record["reprojected"] = time.strftime("%Y-%m-%d %H:%M:%S")
    record["markdown"] = markdown(record, record["date"][:10])
    path.write_text(json.dumps(record, indent=2))
    print(record["markdown"])
    print(f"\nprojection rewritten in {path} (measurements of {record['date']} kept)")


if __name__ == "__main__":
    main()
