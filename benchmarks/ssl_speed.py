"""Speed and peak memory of the Keras SSL encoders against Hugging Face's PyTorch models, on the same CPU.

Same base-size configuration on both sides (12 layers, 768 hidden, 7 convolutions of 512 channels: the shape of
wav2vec2-base, and of WavLM-base with its relative position bias), random weights, 10 s clips of noise, batches
of 1 and 8, inference only (Keras ``training=False``, PyTorch ``eval()`` under ``torch.no_grad()``), both asked
for all hidden states (the extraction needs them). Both frameworks get the same threads: 2 intra-op, 1 inter-op
(``tf.config.threading`` / ``torch.set_num_threads``, ``set_num_interop_threads``; OMP/MKL variables to match).

Keras runners:
- ``keras``: the encoder call inside ``tf.function`` (traced once per batch shape; the trace is the warm-up);
- ``keras-xla``: the same with ``jit_compile=True`` (XLA compiles per input shape; compile time is reported
  as the warm-up, apart from the timed runs);
- ``keras-eager``: the plain eager call, for reference (``--eager``).
The extraction (``exvo_keras.features.ssl``, through ``SSLEncoder.pooled_function``) uses the ``tf.function``
path without XLA: its batches have every length, and XLA would compile again for each.

Every (runner, family, batch) runs in a fresh subprocess, so each peak memory is its own: ``ru_maxrss`` after
imports and the model build (baseline), and after the timed runs (peak); the difference is what inference
adds. Warm-up runs are excluded from the speed, which is seconds of audio per wall-clock second (median of
the repeats). Without PyTorch/transformers the script reports the Keras side only and says so.

    python benchmarks/ssl_speed.py            # the full benchmark (minutes; run it on a quiet machine)
    python benchmarks/ssl_speed.py --quick    # 2 layers, 2 s clips, 1 repeat: checks that it all works
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLE_RATE = 16000
MARK = "SSL_SPEED_RESULT "


def base_config(family: str, layers: int) -> dict:
    """wav2vec2-base / WavLM-base shaped config (transformers' defaults, which are those models' shapes)."""
    config = {
        "model_type": family, "hidden_size": 768, "num_hidden_layers": layers, "num_attention_heads": 12,
        "intermediate_size": 3072, "hidden_act": "gelu", "layer_norm_eps": 1e-5, "feat_extract_norm": "group",
        "feat_extract_activation": "gelu", "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": False, "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": False,
    }
    if family == "wavlm":
        config.update(num_buckets=320, max_bucket_distance=800)
    return config


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def limit_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


# Workers: one framework, one family, one batch size per process ----------------------------------------------

def time_runs(run, repeats: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    run()
    warmup = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return warmup, times


def keras_worker(args) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, str(ROOT))
    from exvo_keras.models.ssl import SSLEncoder

    model = SSLEncoder.from_hf_config(base_config(args.family, args.layers), seed=0)

    def call(x, mask):
        out = model({"waveform": x, "padding_mask": mask}, training=False)
        return out["last_hidden_state"], out["hidden_states"]

    fn = {"keras-eager": call, "keras": tf.function(call),
          "keras-xla": tf.function(call, jit_compile=True)}[args.runner]
    x = tf.constant(0.1 * np.random.default_rng(0).standard_normal(
        (args.batch, int(args.seconds * SAMPLE_RATE))).astype("float32"))
    mask = tf.ones(tf.shape(x), tf.int32)  # equal lengths: the encoder's padding mask is all ones
    baseline = max_rss_mib()

    def run():
        last, hidden = fn(x, mask)
        last.numpy(), hidden.numpy()  # wait for the result, as the extraction does

    warmup, times = time_runs(run, args.repeats)
    return {"framework": f"keras {__import__('keras').__version__} / tensorflow {tf.__version__}",
            "warmup_s": warmup, "times_s": times, "rss_after_build_mib": baseline, "peak_rss_mib": max_rss_mib()}


def torch_worker(args) -> dict:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    config = base_config(args.family, args.layers)
    family = config.pop("model_type")
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.for_model(family, **config)).eval()
    x = torch.from_numpy(0.1 * np.random.default_rng(0).standard_normal(
        (args.batch, int(args.seconds * SAMPLE_RATE))).astype("float32"))
    baseline = max_rss_mib()

    def run():
        with torch.no_grad():
            model(x, output_hidden_states=True)

    warmup, times = time_runs(run, args.repeats)
    return {"framework": f"torch {torch.__version__} / transformers {transformers.__version__}",
            "attention": getattr(model.config, "_attn_implementation", None),
            "warmup_s": warmup, "times_s": times, "rss_after_build_mib": baseline, "peak_rss_mib": max_rss_mib()}


def worker(args) -> None:
    limit_threads(args.threads)
    result = torch_worker(args) if args.runner == "torch" else keras_worker(args)
    print(MARK + json.dumps(result), flush=True)


# Driver ----------------------------------------------------------------------------------------------------

def run_worker(runner: str, family: str, batch: int, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", runner, "--family", family,
           "--batch", str(batch), "--layers", str(args.layers), "--seconds", str(args.seconds),
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {"runner": runner, "family": family, "batch": batch, "error": f"exit {proc.returncode}: {tail}"}
    raw = json.loads(lines[-1][len(MARK):])
    median = statistics.median(raw["times_s"])
    row = {
        "runner": runner, "family": family, "batch": batch,
        "seconds_per_batch": round(median, 4),
        "audio_seconds_per_second": round(batch * args.seconds / median, 2),
        "warmup_s": round(raw["warmup_s"], 2),
        "rss_after_build_mib": round(raw["rss_after_build_mib"], 1),
        "peak_rss_mib": round(raw["peak_rss_mib"], 1),
        "inference_peak_mib": round(raw["peak_rss_mib"] - raw["rss_after_build_mib"], 1),
        "framework": raw["framework"],
    }
    if "attention" in raw:
        row["attention"] = raw["attention"]
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 layers, 2 s clips, 1 repeat (a smoke test)")
    parser.add_argument("--families", nargs="+", default=["wav2vec2", "wavlm"], choices=["wav2vec2", "wavlm"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-xla", action="store_true", help="skip the keras-xla runner")
    parser.add_argument("--eager", action="store_true", help="also time the eager Keras call")
    # internal: one measurement in this process
    parser.add_argument("--worker", choices=["keras", "keras-xla", "keras-eager", "torch"])
    parser.add_argument("--family", default="wav2vec2")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    if args.worker:
        args.runner = args.worker
        return worker(args)
    if args.quick:
        args.layers, args.seconds, args.repeats = 2, 2.0, 1

    have_torch = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    runners = ["keras"] + ([] if args.no_xla else ["keras-xla"]) + (["keras-eager"] if args.eager else [])
    runners += ["torch"] if have_torch else []
    rows = []
    for family in args.families:
        for batch in args.batches:
            for runner in runners:
                row = run_worker(runner, family, batch, args)
                print(json.dumps(row), flush=True)
                rows.append(row)

    speedups = {}
    for family in args.families:
        for batch in args.batches:
            by = {r["runner"]: r for r in rows if r["family"] == family and r["batch"] == batch and "error" not in r}
            if "torch" in by:
                for runner in (r for r in runners if r != "torch"):
                    if runner in by:
                        speedups[f"{family} batch {batch}: {runner} / torch"] = round(
                            by[runner]["audio_seconds_per_second"] / by["torch"]["audio_seconds_per_second"], 2)
    sys.path.insert(0, str(HERE))
    from common import report

    figures = {
        "setup": {"layers": args.layers, "hidden": 768, "clip_seconds": args.seconds, "batches": args.batches,
                  "repeats": args.repeats, "threads": f"{args.threads} intra-op, 1 inter-op, both frameworks",
                  "weights": "random", "mode": "inference (keras training=False; torch eval + no_grad)",
                  "quick": args.quick},
        "torch": "present" if have_torch else "absent: torch/transformers not installed, Keras side only",
        "results": rows,
        "keras_over_torch_speed": speedups,
    }
    report("ssl_speed_quick" if args.quick else "ssl_speed", figures)


if __name__ == "__main__":
    main()
