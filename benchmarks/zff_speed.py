"""CPU cost of zero-frequency filtering (exvo_keras.signal.zff), per hour of 16 kHz audio, on one core.

Times ZFF on synthetic voiced audio (pulse trains with a gliding f0 through four formant resonators, with
pauses and noise), once as one long recording and once as ExVo-sized clips, and extrapolates to an hour.
Also reports the real-time factor (audio seconds per CPU second) and the share of the pitch estimate
that sets the trend window.

    python benchmarks/zff_speed.py [--minutes 3 --clip-seconds 3 --repeats 3]
"""

from __future__ import annotations

import os

# One core: keep any threaded maths library to a single thread before numpy and TensorFlow (which runs the filter)
# load. TF_NUM_INTRAOP_THREADS=0 TF_NUM_INTEROP_THREADS=0 measures TensorFlow's default thread pools instead.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report  # noqa: E402

from exvo_keras.signal import average_pitch_period, epochs, zff  # noqa: E402

SAMPLE_RATE = 16000


def synthetic_voice(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced stretches of 1-3 s (f0 gliding within 90-250 Hz) separated by 0.2-0.6 s of noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    excitation = np.zeros(n)
    t = 0.0
    while t < seconds:
        length = rng.uniform(1.0, 3.0)
        f0_a, f0_b = rng.uniform(90, 250, size=2)
        end = min(t + length, seconds)
        s = t
        while s < end:
            excitation[int(s * SAMPLE_RATE)] -= 1.0
            s += (1.0 + 0.01 * rng.standard_normal()) / (f0_a + (f0_b - f0_a) * (s - t) / length)
        t = end + rng.uniform(0.2, 0.6)
    a = np.array([1.0])
    for freq, bandwidth in ((500, 80), (1500, 120), (2500, 160), (3500, 200)):
        r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        a = np.convolve(a, [1.0, -2.0 * r * np.cos(2 * np.pi * freq / SAMPLE_RATE), r * r])
    x = lfilter([1.0], a, excitation)
    x /= np.max(np.abs(x))
    return x + 0.003 * rng.standard_normal(n)


def cpu_seconds(fn, repeats: int) -> float:
    """Smallest CPU time of `repeats` calls (the least disturbed by other jobs on the machine)."""
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="synthetic audio to time")
    parser.add_argument("--clip-seconds", type=float, default=3.0, help="clip length for the many-clips case")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    audio_seconds = 60.0 * args.minutes
    x = synthetic_voice(audio_seconds)
    clip = int(args.clip_seconds * SAMPLE_RATE)
    clips = [x[i:i + clip] for i in range(0, x.size - clip + 1, clip)]
    clip_audio = len(clips) * args.clip_seconds
    per_hour = 3600.0 / audio_seconds

    long_cpu = cpu_seconds(lambda: zff(x, SAMPLE_RATE), args.repeats)
    pitch_cpu = cpu_seconds(lambda: average_pitch_period(x, SAMPLE_RATE), args.repeats)
    clips_cpu = cpu_seconds(lambda: [zff(c, SAMPLE_RATE) for c in clips], args.repeats)
    z = zff(x, SAMPLE_RATE)
    epochs_cpu = cpu_seconds(lambda: epochs(z), args.repeats)

    report("zff_speed", {
        "sample_rate": SAMPLE_RATE,
        "audio_seconds": audio_seconds,
        "long_recording_cpu_s_per_hour": round(long_cpu * per_hour, 2),
        "long_recording_real_time_factor": round(audio_seconds / long_cpu, 1),
        "pitch_estimate_cpu_s_per_hour": round(pitch_cpu * per_hour, 2),
        "clips": len(clips),
        "clip_seconds": args.clip_seconds,
        "clips_cpu_s_per_hour": round(clips_cpu * 3600.0 / clip_audio, 2),
        "clips_real_time_factor": round(clip_audio / clips_cpu, 1),
        "epochs_cpu_s_per_hour": round(epochs_cpu * per_hour, 3),
    })


if __name__ == "__main__":
    main()
