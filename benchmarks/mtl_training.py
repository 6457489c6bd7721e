"""Training time of a multi-task head (first seed and a later seed) on ComParE-sized inputs, per head preset.

Uses random features of the demo corpus's Train/Val sizes (or --train/--val), so it needs no store.

    python benchmarks/mtl_training.py [--dims 6373 --train 320 --val 320 --epochs 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report  # noqa: E402

from exvo_keras.training.mtl import HeadTrainer  # noqa: E402
from exvo_keras.training.recipes import HeadTraining  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, default=6373)
    parser.add_argument("--train", type=int, default=320)
    parser.add_argument("--val", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    def data(n):
        return (rng.standard_normal((n, args.dims)).astype(np.float32),
                {"emotion": rng.random((n, 10)).astype(np.float32),
                 "age": rng.uniform(18, 40, n).astype(np.float32), "country": rng.integers(0, 4, n)})

    (xt, yt), (xv, yv) = data(args.train), data(args.val)
    figures = {"dims": args.dims, "train_rows": args.train, "epochs": args.epochs}
    for head, recipe in (("sys1", "baseline"), ("sys2", "baseline"), ("baseline", "baseline"), ("sys1", "default"),
                         ("sys2", "default"), ("linear", "default")):
        # patience above the epoch count: every run trains the full schedule, so times compare
        cfg = HeadTraining.from_recipe([], head, recipe, epochs=args.epochs, patience=args.epochs + 1)
        t0 = time.perf_counter()
        trainer = HeadTrainer(xt, yt, xv, yv, cfg)
        trainer.fit(seed=0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.fit(seed=1)
        later = time.perf_counter() - t0
        # the first seed pays for tracing the graphs; later seeds of the same row reuse them
        name = f"{head}_{recipe}"
        figures[f"{name}_first_seed_s"] = round(first, 2)
        figures[f"{name}_later_seed_s"] = round(later, 2)
        figures[f"{name}_seconds_per_epoch"] = round(later / args.epochs, 3)
    report("mtl_training", figures)


if __name__ == "__main__":
    main()
