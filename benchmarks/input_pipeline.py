"""Input-pipeline throughput at 1 and 2 threads: decoding (tensorflow-io in tf.data), the signal-cache build,
and the frame CNNs' window pipeline, against what a subseg training step consumes.

The pipeline must not be the bottleneck: its windows/s should be well above a training step's (on a GPU the
step is an order of magnitude faster than here, so the margin on CPU is the margin that matters). Clips are
synthetic with ExVo-like durations (log-normal, median 2 s, 0.5-8 s) at 16 kHz, and a quarter at 44.1 kHz so
that decoding includes resampling. "before" is the path these stages had: `load_audio` (and `zff()`) one clip
at a time in Python, and the window pipeline as a Python generator of clips with `flat_map`;
"python_loader" is today's parallel pipeline fed from signals in memory through a Python loader.

    python benchmarks/input_pipeline.py [--clips 400] [--hop 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report  # noqa: E402

THREADS = (1, 2)


def synthetic_wavs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(2.0), 0.5, count), 0.5, 8.0)
    paths = []
    for k, s in enumerate(seconds):
        rate = 44100 if k % 4 == 3 else 16000
        t = np.arange(int(s * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"{k:05d}.wav"
        sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def generator_windows(load, labels, hop_frames: int, batch_size: int, seed: int) -> "tf.data.Dataset":
    """The window pipeline as it was before tf.data read the clips itself (the baseline): a Python generator
    hands over one clip at a time and `flat_map` frames it."""
    import tensorflow as tf

    from exvo_keras.signal.framing import clip_windows

    def generate():
        for i in np.random.default_rng([seed, 0]).permutation(len(labels)):
            yield load(int(i)), np.int32(labels[i])

    ds = tf.data.Dataset.from_generator(generate, output_signature=(tf.TensorSpec([None], tf.float32),
                                                                    tf.TensorSpec([], tf.int32)))
    ds = ds.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices(
        (w := clip_windows(x, hop_frames), tf.fill([tf.shape(w)[0]], y))))
    return ds.shuffle(20000, seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400, help="synthetic clips (default %(default)s)")
    parser.add_argument("--hop", type=int, default=1, help="hop in 10 ms frames of the window pipeline (paper: 1)")
    parser.add_argument("--steps", type=int, default=5, help="training steps to time")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from exvo_keras.data.audio import load_audio
    from exvo_keras.data.pipeline import training_windows
    from exvo_keras.data.signals import ClipFiles, SignalCache
    from exvo_keras.data.tf_audio import decoded_clips
    from exvo_keras.models.frame_cnn import FrameCNN
    from exvo_keras.signal import zff

    figures: dict = {"clips": args.clips, "hop_frames": args.hop}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "wav").mkdir()
        wavs = synthetic_wavs(tmp / "wav", args.clips)
        audio_s = sum(load_audio(p).size for p in wavs) / 16000
        figures["audio_seconds"] = round(audio_s, 1)

        # Decoding: tensorflow-io + polyphase resampling in tf.data, against load_audio clip by clip.
        sum(1 for _ in decoded_clips(wavs[:8]))  # traces the decoding graph once
        seconds, _ = timed(lambda: [load_audio(p) for p in wavs])
        figures["decode_before_clips_per_s"] = round(args.clips / seconds, 1)
        for threads in THREADS:
            seconds, _ = timed(lambda: sum(1 for _ in decoded_clips(wavs, threads=threads)))
            figures[f"decode_clips_per_s_{threads}_threads"] = round(args.clips / seconds, 1)

        # The ZFF cache build: decode + ZFF in the pipeline (the costly stage), against load_audio + zff().
        part = wavs[:max(args.clips // 4, 8)]
        seconds, _ = timed(lambda: [zff(load_audio(p), 16000) for p in part])
        figures["zff_cache_before_clips_per_s"] = round(len(part) / seconds, 1)
        for threads in THREADS:
            cache = SignalCache(tmp / f"zff{threads}", "zff", "bench")
            seconds, _ = timed(lambda: cache.build({p.stem: p for p in part}, progress=False, threads=threads))
            figures[f"zff_cache_clips_per_s_{threads}_threads"] = round(len(part) / seconds, 1)

        # The window pipeline over a raw cache, one epoch, no model.
        raw = SignalCache(tmp / "raw", "raw", "bench")
        raw.build({p.stem: p for p in wavs}, progress=False)
        files = ClipFiles(tuple(str(raw.path(p.stem)) for p in wavs))
        labels = np.arange(args.clips) % 4
        signals_in_memory = [np.load(f) for f in files.files]

        def epoch(clips, threads=None):
            ds = training_windows(clips, labels, hop_frames=args.hop, batch_size=256, seed=0, threads=threads)
            return sum(int(x.shape[0]) for x, _ in ds)

        epoch(files)  # traces
        before = generator_windows(lambda i: np.load(files.files[i]), labels, args.hop, 256, 0)
        seconds, windows = timed(lambda: sum(int(x.shape[0]) for x, _ in before))
        figures["windows_per_epoch"] = windows
        figures["windows_before_per_s"] = round(windows / seconds, 1)
        seconds, _ = timed(lambda: epoch(lambda i: signals_in_memory[i]))
        figures["windows_per_s_python_loader"] = round(windows / seconds, 1)
        for threads in THREADS:
            seconds, _ = timed(lambda: epoch(files, threads))
            figures[f"windows_per_s_{threads}_threads"] = round(windows / seconds, 1)

        # What a subseg training step consumes.
        x, y = next(iter(training_windows(files, labels, hop_frames=args.hop, batch_size=256, seed=0)))
        model = FrameCNN(architecture="subseg", num_classes=4, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)  # tracing
        seconds, _ = timed(lambda: [model.train_on_batch(x, y) for _ in range(args.steps)])
        step_rate = int(x.shape[0]) * args.steps / seconds

    figures["train_step_windows_per_s"] = round(step_rate, 1)
    best = max(figures[f"windows_per_s_{t}_threads"] for t in THREADS)
    figures["pipeline_to_training_ratio"] = round(best / step_rate, 1)
    figures["gpu"] = bool(tf.config.list_physical_devices("GPU"))
    report("input_pipeline", figures)


if __name__ == "__main__":
    main()
