"""Frame-CNN throughput: the window pipeline alone against a training step, and a demo-profile epoch.

The pipeline must not be the bottleneck: its windows/s should be well above the training step's.

    python benchmarks/frame_cnn.py [--data data/demo] [--hop 1]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo", help="ExVo-format corpus (default: the demo corpus)")
    parser.add_argument("--hop", type=int, default=1, help="hop in 10 ms frames for the pipeline figure")
    parser.add_argument("--steps", type=int, default=5, help="training steps to time")
    args = parser.parse_args()

    import keras

    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.data.pipeline import training_windows
    from exvo_keras.experiments.networks import exvo_training_sets
    from exvo_keras.models.frame_cnn import FrameCNN
    from exvo_keras.registry import NETWORKS
    from exvo_keras.training.frame_cnn import FrameTraining
    from exvo_keras.workspace import Workspace

    corpus = load_corpus(args.data)
    with tempfile.TemporaryDirectory() as work:
        fit, _, names = exvo_training_sets(NETWORKS["raw_exvo_er"], corpus, Workspace(work), progress=False)
        ds = training_windows(fit.load, fit.labels, hop_frames=args.hop, batch_size=256, seed=0)
        t0 = time.perf_counter()
        windows = sum(int(x.shape[0]) for x, _ in ds)
        pipeline_s = time.perf_counter() - t0

        model = FrameCNN(architecture="subseg", num_classes=len(names), seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="sparse_categorical_crossentropy")
        x, y = next(iter(ds))
        model.train_on_batch(x, y)  # tracing
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        step_s = (time.perf_counter() - t0) / args.steps

        demo = FrameTraining.from_profile("demo")
        demo_ds = training_windows(fit.load, fit.labels, hop_frames=demo.hop_frames, batch_size=256, seed=0)
        t0 = time.perf_counter()
        model.fit(demo_ds, epochs=1, verbose=0)
        epoch_s = time.perf_counter() - t0
        demo_windows = sum(int(x.shape[0]) for x, _ in demo_ds)

    pipeline_rate = windows / pipeline_s
    train_rate = int(x.shape[0]) / step_s
    report("frame_cnn", {
        "pipeline_hop_frames": args.hop, "pipeline_windows": windows,
        "pipeline_windows_per_s": round(pipeline_rate, 1),
        "train_step_windows_per_s": round(train_rate, 1),
        "pipeline_to_training_ratio": round(pipeline_rate / train_rate, 1),
        "demo_profile_epoch_windows": demo_windows, "demo_profile_epoch_s": round(epoch_s, 1),
        "train_clips": len(fit.keys), "gpu": bool(np.any([d.device_type == "GPU" for d in __import__(
            "tensorflow").config.list_physical_devices()])),
    })


if __name__ == "__main__":
    main()
