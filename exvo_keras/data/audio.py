"""Reading audio files into 16 kHz mono float32, with errors that name the file.

Every stage that touches audio (corpus checks, ComParE, the encoders) goes through `load_audio` (or
`read_audio`, which also returns the file's own rate and channels), so a corrupt, truncated, empty, stereo or
off-rate file is handled the same way everywhere.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from exvo_keras.data.labels import SAMPLE_RATE

# openSMILE's 60 ms analysis windows and the frame CNNs' 250 ms windows both need some signal; below this a
# clip carries no usable burst and its functionals would be NaN.
MIN_DURATION_S = 0.05


# soundfile names formats, not file extensions: the usual extensions that differ from a format's name. RAW is
# left out: without a header, soundfile needs the rate and channels given.
_EXTRA_SUFFIXES = {"AIFF": (".aif", ".aifc"), "OGG": (".oga", ".opus"), "MAT4": (".mat",), "MAT5": (".mat",),
                   "IRCAM": (".sf",), "NIST": (".sph",), "SVX": (".8svx", ".iff")}
# File extensions (lower case) of every format this libsndfile decodes: wav, flac, ogg, mp3, aiff, ...
AUDIO_SUFFIXES = tuple(sorted({suffix for name in sf.available_formats() if name != "RAW"
                               for suffix in (f".{name.lower()}", *_EXTRA_SUFFIXES.get(name, ()))}))


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


@dataclass(frozen=True)
class AudioHeader(AudioInfo):
    """A file's header: `AudioInfo`, libsndfile's format and subtype names, and the frames it promises (more
    than `frames` when the file is truncated)."""

    format: str
    subtype: str
    declared_frames: int


def audio_header(path) -> AudioHeader:
    """Reads a file's header only. Raises AudioError if it is missing or not decodable."""
    path = Path(path)
    with _open(path) as f:
        return AudioHeader(int(f.samplerate), int(f.channels), int(f.frames), str(f.format), str(f.subtype),
                           _declared_frames(path, f))


def audio_info(path) -> AudioInfo:
    """Reads a file's header only. Raises AudioError if it is missing or not decodable."""
    with _open(Path(path)) as f:
        return AudioInfo(int(f.samplerate), int(f.channels), int(f.frames))


def load_audio(path, sample_rate: int = SAMPLE_RATE, min_duration: float = MIN_DURATION_S) -> np.ndarray:
    """Decodes an audio file to mono float32 at `sample_rate`.

    Multi-channel files keep their first channel, as the paper did ("we used single channel"); other sample
    rates are resampled with scipy's polyphase filter (`exvo_keras.signal.resample`, the exported graphs' too).

    Args:
        path: any format soundfile decodes (wav in any PCM or float subtype, flac, ogg, mp3, ...).
        sample_rate: rate of the returned signal.
        min_duration: shortest clip accepted, in seconds (after decoding).

    Returns:
        float32 array `[samples]` in [-1, 1].

    Raises:
        AudioError: missing, empty, corrupt, truncated, non-finite or too short file; the message names it.
    """
    return read_audio(path, sample_rate, min_duration)[0]


def read_audio(path, sample_rate: int = SAMPLE_RATE,
               min_duration: float = MIN_DURATION_S) -> tuple[np.ndarray, AudioInfo]:
    """`load_audio`, and the file's own rate, channels and frames from the same read (corpus checks want both)."""
    path = Path(path)
    with _open(path) as f:
        info = AudioInfo(int(f.samplerate), int(f.channels), int(f.frames))
        declared = _declared_frames(path, f)
        try:
            x = f.read(dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(path, f"cannot decode audio data ({_short(exc)})") from None
    if x.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty clip)")
    if x.shape[0] < declared:
        raise AudioError(path, f"truncated: header declares {declared} frames, {x.shape[0]} present")
    x = x[:, 0]
    if not np.isfinite(x).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    if info.sample_rate != sample_rate:
        # imported here: TensorFlow, which reading 16 kHz files (store checks, openSMILE workers) does without
        from exvo_keras.signal.resample import resample

        x = resample(x, info.sample_rate, sample_rate)
    if x.shape[0] < min_duration * sample_rate:
        raise AudioError(path, f"clip too short ({x.shape[0] / sample_rate:.3f} s < {min_duration} s)")
    return np.ascontiguousarray(x, dtype=np.float32), info


def write_wav(path, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Writes mono or `[samples, channels]` float audio as 16-bit PCM (the corpus's format)."""
    sf.write(str(path), np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _open(path: Path) -> sf.SoundFile:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "a folder, not an audio file")
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile raises several types for malformed headers
        raise AudioError(path, f"not a readable audio file ({_short(exc)})") from None


# Subtypes whose frames all take `block_align` bytes, so the data chunk's size gives the frame count.
_LINEAR_SUBTYPES = ("PCM_", "FLOAT", "DOUBLE", "ULAW", "ALAW")
# RIFF data sizes that mean "unknown" (streaming writers), not "this many bytes".
_UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)


def _declared_frames(path: Path, f: sf.SoundFile) -> int:
    """Frames the header promises. libsndfile shortens a WAV whose data chunk is cut to the bytes present (and
    reports that as its length), so for PCM/float WAV the data chunk's own size is read; for other formats
    libsndfile's count is the header's."""
    if f.format not in ("WAV", "WAVEX") or not f.subtype.startswith(_LINEAR_SUBTYPES):
        return int(f.frames)
    with open(path, "rb") as raw:
        if raw.read(12)[8:12] != b"WAVE":
            return int(f.frames)
        block_align = None
        while True:
            head = raw.read(8)
            if len(head) < 8:
                return int(f.frames)
            chunk, size = head[:4], int.from_bytes(head[4:], "little")
            body = raw.read(size) if chunk == b"fmt " else b""
            if chunk == b"fmt ":
                block_align = int.from_bytes(body[12:14], "little")
            elif chunk == b"data":
                if size in _UNKNOWN_DATA_SIZES or not block_align:
                    return int(f.frames)
                return size // block_align
            raw.seek(size - len(body) + (size & 1), 1)  # chunks are padded to even sizes
