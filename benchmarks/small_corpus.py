"""Heads on small corpora: the challenge's fixed recipe, the default recipe and the linear reference.

Builds two corpora from the demo synthesiser with one-hot emotion targets (as real corpora of sound classes
have): `small` (90 speakers x 4 clips: 120 Train clips from 30 speakers) and `mid` (450 speakers x 2 clips:
300 Train clips from 150 speakers, the size of the real corpus the issue was found on). ComParE on each, then
Sys-1 and Sys-2 under both recipes and the linear reference, 3 seeds, scored on Val, with the seconds each took.

    python benchmarks/small_corpus.py [--work /tmp/small_corpus] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report  # noqa: E402

from exvo_keras.data.corpus import load_corpus  # noqa: E402
from exvo_keras.data.demo import make_demo  # noqa: E402
from exvo_keras.data.labels import EMOTIONS  # noqa: E402
from exvo_keras.features.compare import extract_compare  # noqa: E402
from exvo_keras.training.mtl import reference_scores, run_head  # noqa: E402
from exvo_keras.training.recipes import HeadTraining  # noqa: E402

CORPORA = {"small": (90, 4), "mid": (450, 2)}
SYSTEMS = (("sys1", "baseline"), ("sys2", "baseline"), ("sys1", "default"), ("sys2", "default"),
           ("linear", "default"))
METRICS = ("emo_ccc", "cou_uar", "age_mae", "s_mtl")


def one_hot_emotions(root: Path) -> None:
    """Each labelled clip's emotion vector becomes the one-hot of its strongest emotion."""
    for name in ("data_info.csv", "test_labels.csv"):
        path = root / name
        if not path.exists():
            continue
        table = pd.read_csv(path)
        values = table[list(EMOTIONS)].to_numpy()
        known = ~np.isnan(values).any(axis=1)
        table.loc[known, list(EMOTIONS)] = np.eye(len(EMOTIONS))[np.nan_to_num(values).argmax(axis=1)][known]
        table.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/small_corpus")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    figures = {"seeds": args.seeds}
    for name, (speakers, clips) in CORPORA.items():
        root = Path(args.work) / name
        if not (root / "data_info.csv").exists():
            make_demo(root, n_speakers=speakers, clips_per_speaker=clips, progress=False)
            one_hot_emotions(root)
        corpus = load_corpus(root)
        store = extract_compare(corpus, Path(args.work) / f"{name}_work" / "compare.h5", jobs=2, progress=False)
        ref = reference_scores(corpus, "Val")
        figures[f"{name}_train_clips"] = len(corpus.file_ids("Train"))
        figures[f"{name}_train_speakers"] = int(corpus.rows("Train")["Subject_ID"].nunique())
        figures[f"{name}_reference"] = {m: round(ref[m], 3) for m in METRICS}
        for head, recipe in SYSTEMS:
            cfg = HeadTraining.from_recipe([store], head, recipe, corpus=corpus, eval_splits=["Val"])
            run = Path(args.work) / f"{name}_work" / "runs" / f"{head}-{recipe}"
            t0 = time.perf_counter()
            summary = run_head(run, corpus, cfg, list(range(args.seeds)), progress=False)["Val"]
            figures[f"{name}_{head}_{recipe}"] = {
                **{m: round(summary[m]["mean"], 3) for m in METRICS},
                "s_mtl_std": round(summary["s_mtl"]["std"], 3), "seconds": round(time.perf_counter() - t0, 1)}
    report("small_corpus", figures)


if __name__ == "__main__":
    main()
