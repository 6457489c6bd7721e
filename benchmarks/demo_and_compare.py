"""Demo corpus generation time and ComParE extraction speed (clips/s, real-time factor).

    python benchmarks/demo_and_compare.py [--speakers 240 --clips 4 --jobs 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report  # noqa: E402

from exvo_keras.data.audio import audio_info  # noqa: E402
from exvo_keras.data.corpus import load_corpus  # noqa: E402
from exvo_keras.data.demo import DEFAULT_CLIPS_PER_SPEAKER, DEFAULT_N_SPEAKERS, make_demo  # noqa: E402
from exvo_keras.features.compare import extract_compare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", type=int, default=DEFAULT_N_SPEAKERS)
    parser.add_argument("--clips", type=int, default=DEFAULT_CLIPS_PER_SPEAKER)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_demo(tmp / "demo", n_speakers=args.speakers, clips_per_speaker=args.clips, seed=0)
        gen_s = time.perf_counter() - t0
        corpus = load_corpus(tmp / "demo")
        audio_s = sum(audio_info(corpus.wav_path(f)).duration for f in corpus.file_ids())
        n = len(corpus.file_ids())
        figures = {"demo_clips": n, "demo_audio_minutes": round(audio_s / 60, 2),
                   "demo_generation_s": round(gen_s, 2), "demo_clips_per_s": round(n / gen_s, 1)}
        for jobs in args.jobs:
            t0 = time.perf_counter()
            extract_compare(corpus, tmp / f"compare_{jobs}.h5", jobs=jobs, progress=False)
            sec = time.perf_counter() - t0
            figures[f"compare_jobs{jobs}_s"] = round(sec, 2)
            figures[f"compare_jobs{jobs}_clips_per_s"] = round(n / sec, 1)
            figures[f"compare_jobs{jobs}_real_time_factor"] = round(sec / audio_s, 4)
    report("demo_and_compare", figures)


if __name__ == "__main__":
    main()
