"""Speed and size of exported SavedModels, loaded the way a deployment would: `tf.saved_model.load` in a process
that imports TensorFlow alone (Keras, exvo_keras and tensorflow-io made unimportable).

Systems (random weights: speed does not depend on them), built as `exvo_keras.export` builds trained ones:
- ``raw_paper``: Raw(ExVo)-ER + Sys-1 head, a 250 ms window every 10 ms (the paper profile);
- ``raw_demo``: the same with a window every 200 ms (the demo profile);
- ``zff_paper``: Zff(ExVo)-ER + Sys-1 head, ZFF in the graph (float64), a window every 10 ms;
- ``ssl_demo``: WavLM demo encoder (random-init, 4 layers, 64 hidden) + Sys-1 head;
- ``hybrid``: Table 3's hybrid layout: WavLM demo encoder + Sys-2 head for emotion and country, Raw(ExVo)-ER
  (window every 10 ms) + Sys-2 head for age: two encoders in one graph.

Figures per system: latency of one call (`serve_waveform`) at batch 1 for a 1 s and a 3 s clip (median of
`--repeats` calls after a warm-up call), throughput at batch 32 (clips of 1-3 s, mean 2 s; clips/s and seconds
of audio per second), export time and size on disk. Synthetic voiced clips (pulse trains through formant
resonators), so ZFF's pitch estimate takes its usual path.

    python benchmarks/export_speed.py [--repeats 10] [--systems raw_paper ssl_demo ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SAMPLE_RATE = 16000
SYSTEMS = ("raw_paper", "raw_demo", "zff_paper", "ssl_demo", "hybrid")
MARK = "EXPORT_SPEED "

WORKER = r"""
import json, statistics, sys, time
for name in ("keras", "tf_keras", "exvo_keras", "tensorflow_io"):
    sys.modules[name] = None
import numpy as np
import tensorflow as tf

folder, inputs, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
model = tf.saved_model.load(folder)
load_s = time.perf_counter() - start
data = np.load(inputs)
serve = model.serve_waveform

def timed(waveform, lengths, n):
    serve(tf.constant(waveform), tf.constant(lengths))  # warm-up: first call sets up the kernels
    times = []
    for _ in range(n):
        start = time.perf_counter()
        serve(tf.constant(waveform), tf.constant(lengths))["age"].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

out = {"load_s": round(load_s, 2)}
for name in ("1s", "3s"):
    out[f"latency_{name}_batch1_ms"] = round(1000 * timed(data[f"w{name}"], data[f"l{name}"], repeats), 1)
seconds = timed(data["w32"], data["l32"], max(2, repeats // 4))
audio = float(data["l32"].sum()) / 16000
out["throughput_batch32_clips_per_s"] = round(32 / seconds, 1)
out["throughput_batch32_audio_s_per_s"] = round(audio / seconds, 1)
out["batch32_call_s"] = round(seconds, 3)
print("EXPORT_SPEED " + json.dumps(out))
"""


def voiced(seconds: float, seed: int) -> np.ndarray:
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    excitation = np.zeros(n)
    f0 = rng.uniform(110, 300)
    t = 0.0
    while t < seconds:
        excitation[int(t * SAMPLE_RATE)] -= 1.0
        t += 1.0 / (f0 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t)))
    a = np.array([1.0])
    for freq, bandwidth in ((700, 90), (1200, 120), (2600, 160)):
        r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        a = np.convolve(a, [1.0, -2.0 * r * np.cos(2 * np.pi * freq / SAMPLE_RATE), r * r])
    x = lfilter([1.0], a, excitation)
    return (0.5 * x / np.abs(x).max() + 0.005 * rng.standard_normal(n)).astype(np.float32)


def batch(clips):
    waveform = np.zeros((len(clips), max(c.size for c in clips)), np.float32)
    for i, c in enumerate(clips):
        waveform[i, :c.size] = c
    return waveform, np.array([c.size for c in clips], np.int32)


def plan_for(system: str):
    from exvo_keras.export.module import ExportPlan, FrameNetwork, HeadSource, SSLFeature
    from exvo_keras.models.ssl import demo_encoder
    from exvo_keras.models.frame_cnn import FrameCNN
    from exvo_keras.models.mtl import MultiTaskHead

    def head(preset, dims, seed):
        return MultiTaskHead.from_preset(preset, input_dim=dims, feature_mean=np.zeros(dims),
                                         feature_std=np.ones(dims), age_mean=30.0, age_std=8.0, seed=seed)

    def cnn(name, signal, hop):
        return FrameNetwork(name, FrameCNN("subseg", 10, seed=0), signal, hop)

    def one(source, network=None, ssl=None, preset="sys1"):
        dims = 20 if network else 128
        return ExportPlan(networks={network.name: network} if network else {},
                          ssl={ssl.name: ssl} if ssl else {},
                          heads={source: HeadSource(source, head(preset, dims, 0),
                                                    ((network or ssl).name,))},
                          tasks={t: source for t in ("emotion", "age", "country")})

    wavlm = SSLFeature("wavlm", demo_encoder("wavlm", 0), "last")
    if system == "raw_paper":
        return one("raw_exvo_er-sys1", network=cnn("raw_exvo_er", "raw", 1))
    if system == "raw_demo":
        return one("raw_exvo_er-sys1", network=cnn("raw_exvo_er", "raw", 20))
    if system == "zff_paper":
        return one("zff_exvo_er-sys1", network=cnn("zff_exvo_er", "zff", 1))
    if system == "ssl_demo":
        return one("wavlm-sys1", ssl=wavlm)
    if system == "hybrid":
        return ExportPlan(networks={"raw_exvo_er": cnn("raw_exvo_er", "raw", 1)}, ssl={"wavlm": wavlm},
                          heads={"wavlm-sys2": HeadSource("wavlm-sys2", head("sys2", 128, 0), ("wavlm",)),
                                 "raw_exvo_er-sys2": HeadSource("raw_exvo_er-sys2", head("sys2", 20, 1),
                                                                ("raw_exvo_er",))},
                          tasks={"emotion": "wavlm-sys2", "age": "raw_exvo_er-sys2", "country": "wavlm-sys2"})
    raise ValueError(f"unknown system {system!r}; choose from {SYSTEMS}")


def size_mib(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per latency figure (default 10)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from common import report

    from exvo_keras.export.module import write_saved_model

    rng = np.random.default_rng(0)
    w1, l1 = batch([voiced(1.0, 1)])
    w3, l3 = batch([voiced(3.0, 3)])
    w32, l32 = batch([voiced(float(s), 100 + i) for i, s in enumerate(rng.uniform(1.0, 3.0, 32))])
    figures = {"threads": "TensorFlow defaults (all cores)", "repeats": args.repeats,
               "batch32_audio_s": round(float(l32.sum()) / SAMPLE_RATE, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = tmp / "inputs.npz"
        np.savez(inputs, w1s=w1, l1s=l1, w3s=w3, l3s=l3, w32=w32, l32=l32)
        (tmp / "worker.py").write_text(WORKER)
        for system in args.systems:
            start = time.perf_counter()
            folder = write_saved_model(plan_for(system), tmp / system)
            export_s = time.perf_counter() - start
            done = subprocess.run([sys.executable, str(tmp / "worker.py"), str(folder), str(inputs),
                                   str(args.repeats)], capture_output=True, text=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if done.returncode != 0:
                raise RuntimeError(f"{system}: worker failed:\n{done.stderr[-3000:]}")
            line = next(l for l in done.stdout.splitlines() if l.startswith(MARK))
            result = json.loads(line[len(MARK):])
            figures[system] = {"export_s": round(export_s, 1), "size_mib": size_mib(folder), **result}
            print(system, figures[system], flush=True)
    report("export_speed", figures)


if __name__ == "__main__":
    main()
