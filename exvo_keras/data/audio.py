"""Reading audio files into 16 kHz mono float32, with errors that name the file.

Every stage that touches audio (corpus checks, ComParE, the encoders) goes through `load_audio`, so a
corrupt, empty, stereo or off-rate file is handled the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from exvo_keras.data.labels import SAMPLE_RATE

# openSMILE's 60 ms analysis windows and the frame CNNs' 250 ms windows both need some signal; below this a
# clip carries no usable burst and its functionals would be NaN.
MIN_DURATION_S = 0.05


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Worker processes send it back to the parent; the default (`self.args`, the message alone) does not
        # unpickle, and an exception that does not unpickle kills a multiprocessing Pool's result thread.
        return type(self), (self.path, self.problem)


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path) -> AudioInfo:
    """Reads a file's header only. Raises AudioError if it is missing or not decodable."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for malformed headers
        raise AudioError(path, f"not a readable audio file ({_short(exc)})") from None
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def load_audio(path, sample_rate: int = SAMPLE_RATE, min_duration: float = MIN_DURATION_S) -> np.ndarray:
    """Decodes an audio file to mono float32 at `sample_rate`.

    Multi-channel files keep their first channel, as the paper did ("we used single channel"); other sample
    rates are resampled with a polyphase filter.

    Args:
        path: wav (any PCM or float subtype), flac or ogg file.
        sample_rate: rate of the returned signal.
        min_duration: shortest clip accepted, in seconds (after decoding).

    Returns:
        float32 array `[samples]` in [-1, 1].

    Raises:
        AudioError: missing, empty, corrupt, truncated or too short file; the message names it.
    """
    path = Path(path)
    info = audio_info(path)
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, f"cannot decode audio data ({_short(exc)})") from None
    if x.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty clip)")
    if x.shape[0] < info.frames:
        raise AudioError(path, f"truncated: header says {info.frames} frames, file holds {x.shape[0]}")
    x = x[:, 0]
    if sr != sample_rate:
        x = resample(x, sr, sample_rate)
    if not np.all(np.isfinite(x)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    if x.shape[0] < min_duration * sample_rate:
        raise AudioError(path, f"clip too short ({x.shape[0] / sample_rate:.3f} s < {min_duration} s)")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling between integer rates (44.1 kHz -> 16 kHz is 160/441)."""
    g = gcd(int(from_rate), int(to_rate))
    return resample_poly(x, to_rate // g, from_rate // g).astype(np.float32)


def write_wav(path, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Writes mono or `[samples, channels]` float audio as 16-bit PCM (the corpus's format)."""
    sf.write(str(path), np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
