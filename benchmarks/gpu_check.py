"""GPU readiness in a few minutes: parity of the GPU against the CPU, and throughput, for every model size.

Without a GPU it prints "no GPU available" and exits 0 (``--smoke`` runs the same code on the CPU at tiny sizes,
to know that it runs). With one:

- parity: random encoders of each size the project extracts with (wavlm-large-like, hubert-large-like,
  wav2vec2-base-like, built from their published shapes: no checkpoint needed) and the subseg frame CNN, the
  same weights run on the GPU in float32 and in mixed_float16 against the CPU in float32, on one padded batch
  of clips of different lengths; measured as `exvo_keras.devices.parity` (worst row of pooled embeddings or
  posteriors, largest difference over the row's largest magnitude);
- encoder throughput: seconds of audio per second through the extraction's graph
  (`SSLEncoder.pooled_function`), 10 s clips, a few batch sizes, both precisions, with the GPU's peak memory;
- frame-CNN training throughput: windows per second of `fit` at the recipe's batch of 256 windows, for each
  architecture (subseg, seg, asr), both precisions (input from memory: the window pipeline is measured by
  benchmarks/input_pipeline.py).

    bash benchmarks/gpu_check.sh            # results in benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --smoke  # tiny sizes, CPU or GPU (benchmarks/results/gpu_check_smoke.json)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import report  # noqa: E402

from exvo_keras.data.labels import SAMPLE_RATE  # noqa: E402
from exvo_keras.devices import enable_memory_growth, parity, precision  # noqa: E402

# The published shapes (the checkpoints' config.json); everything else at transformers' defaults, which are the
# base models' shapes.
LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
         "feat_extract_norm": "layer", "conv_bias": True, "do_stable_layer_norm": True}
ENCODERS = {
    "wavlm-large": {"model_type": "wavlm", **LARGE},
    "hubert-large-ll60k": {"model_type": "hubert", **LARGE},
    "wav2vec2-base": {"model_type": "wav2vec2"},
}
FRAME_ARCHITECTURES = ("subseg", "seg", "asr")
# mixed_float16 is the GPU's policy; a CPU has no float16 arithmetic (emulated: a subseg training step ran at
# 3 windows/s), so a smoke run on the CPU takes mixed_bfloat16 instead.
GPU_PRECISIONS = ("float32", "mixed_float16")
CPU_PRECISIONS = ("float32", "mixed_bfloat16")


def smoke_config(config: dict) -> dict:
    """The same family and layout at the demo encoders' sizes."""
    from exvo_keras.models.ssl.encoder import small_config
    from exvo_keras.models.ssl.presets import DEMO_SIZES, DEMO_WAVLM

    extra = DEMO_WAVLM if config["model_type"] == "wavlm" else {}
    return small_config(config["model_type"], large=config.get("do_stable_layer_norm", False), **DEMO_SIZES,
                        **extra)


def parity_clips(seconds: tuple[float, ...]):
    """A padded batch of tone-plus-noise clips of the given lengths (waveform, padding mask)."""
    from exvo_keras.batching import pad_clips

    rng = np.random.default_rng(0)
    clips = []
    for s in seconds:
        t = np.arange(int(s * SAMPLE_RATE)) / SAMPLE_RATE
        clips.append((0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return pad_clips(clips)


def timed(run, repeats: int) -> float:
    """Median seconds of `run()` after one untimed call (the trace); `run` must wait for its result."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mib(device: str) -> float | None:
    import tensorflow as tf

    if not device.upper().startswith("/GPU"):
        return None
    return round(tf.config.experimental.get_memory_info(device.strip("/").upper())["peak"] / 2**20, 1)


def reset_peak(device: str) -> None:
    import tensorflow as tf

    if device.upper().startswith("/GPU"):
        tf.config.experimental.reset_memory_stats(device.strip("/").upper())


def build_encoder(config: dict, policy: str, device: str, weights=None):
    """The encoder of `config` under `policy`, its variables on `device`; `weights` (a float32 copy's) instead of
    a random draw, so every copy computes with the same numbers."""
    import tensorflow as tf

    from exvo_keras.models.ssl import SSLEncoder

    with precision(policy), tf.device(device):
        encoder = SSLEncoder.from_hf_config(config, seed=0, do_normalize=True, initialize_weights=weights is None)
        if weights is not None:
            encoder.set_weights(weights)
    return encoder


def check_encoder(name: str, config: dict, device: str, args) -> tuple[dict, list[dict]]:
    import tensorflow as tf

    waveform, mask = parity_clips(args.parity_seconds)
    reference_model = build_encoder(config, "float32", "/CPU:0")
    with tf.device("/CPU:0"):
        reference = reference_model.pooled_function("last")(waveform, mask).numpy()
    weights = reference_model.get_weights()
    del reference_model
    parities, rows = {}, []
    for policy in args.precisions:
        encoder = build_encoder(config, policy, device, weights)
        pooled = encoder.pooled_function("last")
        with tf.device(device):
            parities[policy] = parity(reference, pooled(waveform, mask).numpy())
            for batch in args.batches:
                x = 0.1 * np.random.default_rng(1).standard_normal(
                    (batch, int(args.seconds * SAMPLE_RATE))).astype(np.float32)
                x, m = tf.constant(x), tf.ones(x.shape, tf.int32)
                reset_peak(device)
                seconds = timed(lambda: pooled(x, m).numpy(), args.repeats)
                rows.append({"encoder": name, "precision": policy, "batch": batch, "clip_seconds": args.seconds,
                             "seconds_per_batch": round(seconds, 4),
                             "audio_seconds_per_second": round(batch * args.seconds / seconds, 1),
                             "peak_gpu_mib": peak_mib(device)})
                print(rows[-1], flush=True)
        del encoder, pooled
    return parities, rows


def check_frame_cnn(architecture: str, device: str, args) -> tuple[dict, list[dict]]:
    import keras
    import tensorflow as tf

    from exvo_keras.models.frame_cnn import FrameCNN

    rng = np.random.default_rng(2)
    x = rng.standard_normal((args.frame_batch, 4000)).astype(np.float32)
    y = rng.integers(0, 10, args.frame_batch)
    with tf.device("/CPU:0"):
        reference_model = FrameCNN(architecture, 10, seed=0)
        reference = reference_model(x).numpy()
    weights = reference_model.get_weights()
    parities, rows = {}, []
    for policy in args.precisions:
        with precision(policy), tf.device(device):
            model = FrameCNN(architecture, 10, seed=0)
            model.set_weights(weights)
            parities[policy] = parity(reference, model(x).numpy())
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="sparse_categorical_crossentropy")
            # The training loop of train_frame_cnn (Keras's fit, one step per call), on batches from memory.
            data = tf.data.Dataset.from_tensors((x, y)).repeat()
            model.fit(data, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)  # trace
            reset_peak(device)
            seconds = timed(lambda: model.fit(data, steps_per_epoch=args.steps, epochs=1, shuffle=False, verbose=0), 1)
        rows.append({"architecture": architecture, "precision": policy, "batch": args.frame_batch,
                     "windows_per_second": round(args.steps * args.frame_batch / seconds, 1),
                     "peak_gpu_mib": peak_mib(device)})
        print(rows[-1], flush=True)
    return parities, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, on the CPU when there is no GPU: checks that the script runs")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16], help="encoder batch sizes")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length for encoder throughput")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="frame-CNN training steps timed")
    parser.add_argument("--frame-batch", type=int, default=256, help="windows per frame-CNN batch")
    args = parser.parse_args(argv)
    args.parity_seconds = (8.0, 5.5, 3.25, 2.0)

    import tensorflow as tf

    gpus = enable_memory_growth()  # before anything initialises the GPU
    if not gpus and not args.smoke:
        print("no GPU available")
        return 0
    if args.smoke:
        args.batches, args.seconds, args.repeats, args.steps, args.frame_batch = [1, 2], 1.0, 1, 2, 16
        args.parity_seconds = (1.5, 0.75)
    device = "/GPU:0" if gpus else "/CPU:0"
    args.precisions = GPU_PRECISIONS if gpus else CPU_PRECISIONS
    details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
    started = time.perf_counter()
    figures = {"device": device, "gpu": details.get("device_name"),
               "compute_capability": details.get("compute_capability"), "smoke": args.smoke,
               "parity_measure": "worst row of max|device - CPU float32| / max|CPU float32|",
               "parity_clips_seconds": list(args.parity_seconds), "parity": {}, "encoders": [], "frame_cnn": []}
    for name, config in ENCODERS.items():
        config = smoke_config(config) if args.smoke else config
        figures["parity"][name], rows = check_encoder(name, config, device, args)
        figures["encoders"] += rows
        print(name, "parity", figures["parity"][name], flush=True)
    for architecture in FRAME_ARCHITECTURES:
        figures["parity"][f"frame_cnn_{architecture}"], rows = check_frame_cnn(architecture, device, args)
        figures["frame_cnn"] += rows
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    report("gpu_check_smoke" if args.smoke else "gpu_check", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
