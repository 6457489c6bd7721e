"""Synthetic demo corpus in the exact on-disk format of the ExVo 2022 Multi-Task data.

The real corpus (HUME-VB) is licensed, so tests, examples and smoke runs use this
stand-in. ``make_demo`` writes::

    out_dir/
        data_info.csv    File_ID, Subject_ID, Split, Age, Country, Country_string,
                         then the 10 emotions in ``EMOTIONS`` order; Test rows have
                         empty label cells, as in the real release
        test_labels.csv  the hidden Test labels (same columns, Test rows only), so the
                         demo can score Test, which the real challenge cannot
        wav/NNNNN.wav    16 kHz mono PCM16, 0.5-3.0 s, for File_ID "[NNNNN]"
        README.txt       says the corpus is synthetic, with its seed and generator version

Generative model (why the labels are learnable)
-----------------------------------------------
Speakers. Each speaker gets an age (18-40, skewed young), a country (balanced over
the four) and a split; splits are speaker-disjoint, about one third of the speakers
each, stratified by country. Age lowers the speaker's f0 (``AGE_F0_SEMITONES_PER_YEAR``)
and lengthens the vocal tract, lowering every formant (``AGE_FORMANT_SCALE_PER_YEAR``).
Country sets the timbre: a spectral tilt, an F2 shift and an extra resonance
(``COUNTRY_TIMBRE``), each jittered per speaker so country is learnable but not
trivial, and a pitch offset, so the excitation (what ZFF keeps) carries it too. On top, every speaker has an idiosyncratic f0, vocal-tract length,
breathiness, speaking rate, burst-type preference and "home microphone" (noise
level and colour), so models must generalise across speakers.

Clips. A latent burst type (laugh, gasp, cry) is drawn from the speaker's
preference; the 10-d emotion vector is a Dirichlet mixture of the three type
prototypes (``EMOTION_PROTOTYPES``: laughs carry Amusement/Awkwardness/Triumph,
gasps Awe/Excitement/Fear/Surprise, cries Distress/Horror/Sadness), with an
independent log-normal factor per emotion, normalised so its maximum is 1.0 as in
the real corpus. The *continuous* emotion vector, not just the type, then sets six
prosodic controls through ``ACOUSTIC_WEIGHTS``: pitch level, pitch range, vocal
effort (source brightness, F1 and SNR), breathiness (noise ratio), rhythm (laugh
syllable / cry tremolo rate, gasp attack) and duration. So two laughs with different
Amusement/Awkwardness balance sound different, and emotion regression can beat a
burst-type classifier.

Audio. A source-filter model: an impulse train following a type-specific f0
contour, shaped by a two-pole glottal low-pass, and aspiration noise each pass a
cascade of four formant resonators; they are mixed at the breathiness ratio, gated
by a type-specific envelope (syllable pulses, inhalation, wavering sustain), then
given the country resonance and tilt, lip radiation, silent margins and background
noise; each clip is peak-normalised to a random 0.3-0.9.

Every clip has its own generator derived from ``(seed, speaker, clip)``, so output
is byte-identical for a seed and independent of generation order.
"""

from __future__ import annotations

import csv
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import iirpeak, lfilter

from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE, SPLITS
from exvo_keras.progress import progress_bar

GENERATOR_VERSION = "1.1"

# Many speakers with few clips each: age and country are speaker traits, and with a few dozen Train speakers a
# head memorises voices instead of learning them (measured: 28 Train speakers gave Sys-1 an age MAE worse than
# predicting the mean; 80 Train speakers beat it). 960 clips keep run_all.sh's extraction stages short.
DEFAULT_N_SPEAKERS = 240
DEFAULT_CLIPS_PER_SPEAKER = 4
DEFAULT_SEED = 0

COLUMNS = ("File_ID", "Subject_ID", "Split", "Age", "Country", "Country_string", *EMOTIONS)
ID_COLUMNS, LABEL_COLUMNS = COLUMNS[:3], COLUMNS[3:]
DATA_INFO = "data_info.csv"
TEST_LABELS = "test_labels.csv"
WAV_DIR = "wav"

MIN_AGE, MAX_AGE = 18, 40
MIN_CLIP_S, MAX_CLIP_S = 0.5, 3.0
# Near-silent lead-in and tail around each burst, drawn per end.
MARGIN_S = (0.05, 0.15)
# File_IDs are five digits in the real corpus.
MAX_CLIPS = 100_000

BURST_TYPES = ("laugh", "gasp", "cry")
# Laughs dominate HUME-VB; each speaker's preference is a Dirichlet draw around this.
BURST_TYPE_PRIOR = (0.45, 0.30, 0.25)

EMOTION_PROTOTYPES = {
    "laugh": {"Amusement": 1.0, "Awkwardness": 0.45, "Triumph": 0.35, "Excitement": 0.35,
              "Surprise": 0.1},
    "gasp": {"Surprise": 0.9, "Fear": 0.7, "Awe": 0.6, "Excitement": 0.5, "Horror": 0.4},
    "cry": {"Sadness": 0.9, "Distress": 0.9, "Horror": 0.5, "Fear": 0.3, "Awkwardness": 0.1},
}
EMOTION_FLOOR = 0.05

# Emotion -> (pitch semitones, pitch range semitones, effort, breathiness logit,
# rhythm log-rate, duration log-factor). Chosen so emotions sharing a burst type still
# differ: within gasps Surprise is high and short, Fear breathy, Horror effortful.
ACOUSTIC_WEIGHTS = {
    "Awe": (-1.0, 1.0, -0.3, 1.0, 0.0, 0.3),
    "Excitement": (3.0, 3.0, 0.6, 0.0, 0.3, -0.1),
    "Amusement": (2.0, 2.0, 0.4, -0.3, 0.4, 0.1),
    "Awkwardness": (-1.5, -2.0, -0.6, 0.5, -0.4, -0.3),
    "Fear": (3.0, 1.0, 0.3, 0.8, 0.0, -0.2),
    "Horror": (1.0, 0.0, 0.6, 0.6, 0.0, 0.0),
    "Distress": (2.0, 3.0, 0.4, 0.2, 0.0, 0.3),
    "Triumph": (1.0, 2.0, 0.9, -0.6, 0.2, 0.2),
    "Sadness": (-3.0, -1.0, -0.7, 0.3, -0.3, 0.4),
    "Surprise": (4.0, 2.0, 0.2, 0.4, 0.1, -0.4),
}


@dataclass(frozen=True)
class _BurstBase:
    pitch_st: float
    range_st: float
    breath_logit: float
    rate_hz: float
    duration_s: float
    formants_hz: tuple[float, float, float, float]
    bandwidths_hz: tuple[float, float, float, float]


BURST_BASES = {
    "laugh": _BurstBase(2.0, 3.0, -1.5, 3.5, 1.1, (850, 1350, 2700, 3700), (90, 110, 160, 250)),
    "gasp": _BurstBase(3.0, 2.0, 1.0, 1.0, 0.75, (750, 1200, 2600, 3600), (120, 140, 200, 300)),
    "cry": _BurstBase(0.0, 2.0, -2.0, 5.0, 1.1, (600, 1100, 2600, 3600), (80, 100, 150, 250)),
}


@dataclass(frozen=True)
class _CountryTimbre:
    tilt: float
    f2_factor: float
    resonance_hz: float
    # A source cue as well as filter cues: the paper finds country in the zero-frequency-filtered signal (its
    # best country network is Zff(ExVo)-CR), and ZFF keeps the excitation (f0, epochs) while removing the vocal
    # tract. Measured: with timbre alone, the demo Zff(ExVo)-CR network stayed at chance (Val UAR 0.24).
    f0_semitones: float


COUNTRY_TIMBRE = (
    _CountryTimbre(tilt=0.25, f2_factor=1.06, resonance_hz=3900.0, f0_semitones=2.0),
    _CountryTimbre(tilt=-0.15, f2_factor=0.94, resonance_hz=2300.0, f0_semitones=-2.0),
    _CountryTimbre(tilt=0.0, f2_factor=1.00, resonance_hz=1000.0, f0_semitones=0.0),
    _CountryTimbre(tilt=-0.35, f2_factor=1.03, resonance_hz=3100.0, f0_semitones=-4.0),
)
COUNTRY_RESONANCE_GAIN = 0.6

SPEAKER_F0_HZ = 210.0
AGE_F0_SEMITONES_PER_YEAR = 0.3
AGE_FORMANT_SCALE_PER_YEAR = 0.007


@dataclass(frozen=True)
class _Speaker:
    subject_id: str
    age: int
    country: int
    split: str
    type_probs: np.ndarray
    f0_hz: float
    tract_scale: float
    f2_factor: float
    tilt: float
    resonance_hz: float
    breath_offset: float
    rate_factor: float
    snr_db: float
    noise_colour: float


def make_demo(
    out_dir,
    *,
    n_speakers: int = DEFAULT_N_SPEAKERS,
    clips_per_speaker: int = DEFAULT_CLIPS_PER_SPEAKER,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic ExVo-format corpus to ``out_dir`` and return its path.

    The corpus is built in ``<out_dir>.partial`` and renamed into place at the end, so
    ``out_dir`` is either absent or complete. An existing corpus is only replaced
    with ``overwrite=True``; a non-empty folder that is not a corpus is never replaced.
    """
    out_dir = Path(out_dir)
    if n_speakers < len(SPLITS):
        raise ValueError(f"n_speakers must be at least {len(SPLITS)} (one per split)")
    if clips_per_speaker < 1:
        raise ValueError("clips_per_speaker must be at least 1")
    n_clips = n_speakers * clips_per_speaker
    if n_clips > MAX_CLIPS:
        raise ValueError(f"at most {MAX_CLIPS} clips fit five-digit File_IDs, asked {n_clips}")
    if (out_dir / DATA_INFO).exists() and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a corpus; pass overwrite=True to regenerate it")
    if out_dir.exists() and not (out_dir / DATA_INFO).exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is a non-empty folder without {DATA_INFO}; "
                              "refusing to replace it")

    partial = out_dir.parent / (out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    (partial / WAV_DIR).mkdir(parents=True)

    speakers = _design_speakers(seed, n_speakers)
    file_ids = _rng(seed, 0, 1).permutation(n_clips)
    rows = []
    with progress_bar(total=n_clips, desc="demo corpus", unit="clip", enabled=progress) as bar:
        for s, speaker in enumerate(speakers):
            for c in range(clips_per_speaker):
                rng = _rng(seed, 2, s, c)
                btype = BURST_TYPES[rng.choice(len(BURST_TYPES), p=speaker.type_probs)]
                emotions = _emotion_vector(rng, btype)
                audio = _synthesise(rng, speaker, btype, emotions)
                file_id = int(file_ids[s * clips_per_speaker + c])
                _write_wav(partial / WAV_DIR / f"{file_id:05d}.wav", audio)
                rows.append(_row(file_id, speaker, emotions))
                bar.update()
    rows.sort(key=lambda row: row[0])

    is_test = [row[COLUMNS.index("Split")] == "Test" for row in rows]
    _write_csv(partial / DATA_INFO,
               [row[:len(ID_COLUMNS)] + [""] * len(LABEL_COLUMNS) if test else row
                for row, test in zip(rows, is_test)])
    _write_csv(partial / TEST_LABELS, [row for row, test in zip(rows, is_test) if test])
    (partial / "README.txt").write_text(
        "Synthetic demo corpus in the ExVo 2022 Multi-Task format; not real vocal bursts.\n"
        f"Generated by exvo_keras.data.demo version {GENERATOR_VERSION} with seed {seed}, "
        f"{n_speakers} speakers x {clips_per_speaker} clips.\n"
        f"{DATA_INFO} leaves Test labels empty as the real release does; "
        f"{TEST_LABELS} holds them.\n")

    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return out_dir


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _design_speakers(seed: int, n_speakers: int) -> list[_Speaker]:
    design = _rng(seed, 0, 0)
    countries = design.permutation(np.resize(np.arange(len(COUNTRIES)), n_speakers))
    # Stratify splits by country so each split sees every country.
    splits = np.empty(n_speakers, dtype=int)
    for country in range(len(COUNTRIES)):
        members = design.permutation(np.flatnonzero(countries == country))
        splits[members] = (np.arange(len(members)) + design.integers(len(SPLITS))) % len(SPLITS)
    return [_make_speaker(_rng(seed, 1, s), s, int(countries[s]), SPLITS[splits[s]])
            for s in range(n_speakers)]


def _make_speaker(rng: np.random.Generator, index: int, country: int, split: str) -> _Speaker:
    age = MIN_AGE + int(round((MAX_AGE - MIN_AGE) * rng.beta(1.5, 2.5)))
    years = age - MIN_AGE
    timbre = COUNTRY_TIMBRE[country]
    return _Speaker(
        subject_id=f"Speaker_{index:04d}",
        age=age,
        country=country,
        split=split,
        type_probs=rng.dirichlet(10.0 * np.asarray(BURST_TYPE_PRIOR)),
        f0_hz=SPEAKER_F0_HZ * np.exp(rng.normal(0.0, 0.10))
        * 2.0 ** ((timbre.f0_semitones - AGE_F0_SEMITONES_PER_YEAR * years) / 12.0),
        tract_scale=(1.0 + AGE_FORMANT_SCALE_PER_YEAR * years) * np.exp(rng.normal(0.0, 0.03)),
        f2_factor=timbre.f2_factor * np.exp(rng.normal(0.0, 0.03)),
        tilt=timbre.tilt + rng.normal(0.0, 0.12),
        resonance_hz=timbre.resonance_hz * np.exp(rng.normal(0.0, 0.05)),
        breath_offset=rng.normal(0.0, 0.4),
        rate_factor=np.exp(rng.normal(0.0, 0.12)),
        snr_db=rng.uniform(18.0, 40.0),
        noise_colour=rng.uniform(0.0, 0.97),
    )


_PROTOTYPES = np.array([[EMOTION_PROTOTYPES[t].get(e, EMOTION_FLOOR) for e in EMOTIONS]
                        for t in BURST_TYPES])
_WEIGHTS = np.array([ACOUSTIC_WEIGHTS[e] for e in EMOTIONS])


def _emotion_vector(rng: np.random.Generator, btype: str) -> np.ndarray:
    alpha = np.where(np.array(BURST_TYPES) == btype, 4.0, 0.4)
    mixture = rng.dirichlet(alpha) @ _PROTOTYPES
    emotions = mixture * np.exp(rng.normal(0.0, 0.45, len(EMOTIONS)))
    # x / x.max() leaves the maximum at exactly 1.0, which rounding preserves.
    return np.round(emotions / emotions.max(), 4)


def _synthesise(rng: np.random.Generator, spk: _Speaker, btype: str,
                emotions: np.ndarray) -> np.ndarray:
    base = BURST_BASES[btype]
    pitch_st, range_st, effort, breath, rhythm, dur = emotions @ _WEIGHTS
    sr = SAMPLE_RATE

    sound_s = np.clip(base.duration_s * np.exp(dur + rng.normal(0.0, 0.2)),
                      MIN_CLIP_S - 2 * MARGIN_S[0], MAX_CLIP_S - 2 * MARGIN_S[1])
    n = int(round(sound_s * sr))
    t = np.arange(n) / sr
    rate = base.rate_hz * spk.rate_factor * np.exp(rhythm)
    breathiness = 1.0 / (1.0 + np.exp(-(base.breath_logit + breath + spk.breath_offset
                                        + rng.normal(0.0, 0.3))))
    envelope, contour, aspiration = _burst_shape(rng, btype, t, sound_s, rate)
    breathiness = np.clip(breathiness + aspiration, 0.0, 1.0)

    span_st = max(0.5, base.range_st + range_st + rng.normal(0.0, 0.5))
    centre_hz = spk.f0_hz * 2.0 ** ((base.pitch_st + pitch_st + rng.normal(0.0, 1.0)) / 12.0)
    f0 = np.clip(centre_hz * 2.0 ** (span_st * contour / 24.0), 70.0, 1100.0)

    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)
    pole = np.clip(0.93 - 0.08 * effort, 0.75, 0.97)
    voiced = lfilter([(1.0 - pole) ** 2], [1.0, -2.0 * pole, pole * pole], pulses)
    sources = np.stack([voiced, rng.standard_normal(n)])

    formants = np.array(base.formants_hz) * np.exp(rng.normal(0.0, 0.04, 4))
    formants[0] *= np.exp(0.1 * effort)
    formants[1] *= spk.f2_factor
    formants /= spk.tract_scale
    bandwidths = np.array(base.bandwidths_hz) * (1.0 + 0.5 * np.mean(breathiness))
    for freq, bw in zip(formants, bandwidths):
        sources = _resonate(sources, freq, bw)
    # Breathiness is the share of radiated power, so balance the sources after the tract.
    sources /= np.sqrt(np.mean(sources ** 2, axis=1, keepdims=True)) + 1e-12
    signal = envelope * (np.sqrt(1.0 - breathiness) * sources[0]
                         + np.sqrt(breathiness) * sources[1])
    b, a = iirpeak(spk.resonance_hz, Q=4.0, fs=sr)
    signal = signal + COUNTRY_RESONANCE_GAIN * lfilter(b, a, signal)
    signal = lfilter([1.0, -spk.tilt], [1.0], signal)
    # Lip radiation: +6 dB/octave.
    signal = lfilter([1.0, -0.95], [1.0], signal)

    margins = np.round(rng.uniform(*MARGIN_S, 2) * sr).astype(int)
    clip = np.concatenate([np.zeros(margins[0]), signal, np.zeros(margins[1])])
    # Louder (more effortful) voices stand further above the same room noise.
    snr_db = spk.snr_db + 6.0 * effort
    room = lfilter([1.0], [1.0, -spk.noise_colour], rng.standard_normal(clip.size))
    room *= np.sqrt(np.mean(signal ** 2) / np.mean(room ** 2)) * 10.0 ** (-snr_db / 20.0)
    clip += room
    return clip * (rng.uniform(0.3, 0.9) / np.max(np.abs(clip)))


def _burst_shape(rng: np.random.Generator, btype: str, t: np.ndarray, sound_s: float,
                 rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
    """Amplitude envelope, f0 contour (about -1..1) and extra aspiration of a burst type."""
    u = t / sound_s
    aspiration = 0.0
    if btype == "laugh":
        cycles = t * rate + rng.uniform(0.0, 0.3)
        syllable = cycles % 1.0
        duty = 0.55
        pulse = np.where(syllable < duty, np.sin(np.pi * syllable / duty), 0.0)
        envelope = pulse ** 1.5 * np.exp(-0.15 * np.floor(cycles))
        contour = 0.6 * (1.0 - 2.0 * u) + 0.4 * pulse
        # The "h" of each "ha".
        aspiration = 0.5 * np.exp(-syllable / 0.08)
    elif btype == "gasp":
        attack_s = 0.06 / rate
        envelope = (1.0 - np.exp(-t / attack_s)) * np.exp(-t / (0.6 * sound_s))
        contour = 2.0 * u - 1.0
    else:
        wobble = np.sin(2.0 * np.pi * rate * t + rng.uniform(0.0, 2.0 * np.pi))
        envelope = 1.0 + 0.35 * wobble
        contour = 0.7 * wobble + 0.3 * (1.0 - 2.0 * u)
    # 20 ms fades avoid clicks at the burst edges.
    envelope = envelope * np.clip(np.minimum(t, sound_s - t) / 0.02, 0.0, 1.0)
    return envelope, contour, aspiration


def _resonate(x: np.ndarray, freq_hz: float, bandwidth_hz: float) -> np.ndarray:
    """Klatt-style second-order resonator with unity gain at DC."""
    r = np.exp(-np.pi * bandwidth_hz / SAMPLE_RATE)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freq_hz / SAMPLE_RATE)
    a2 = r * r
    return lfilter([1.0 + a1 + a2], [1.0, a1, a2], x, axis=-1)


def _row(file_id: int, spk: _Speaker, emotions: np.ndarray) -> list[str]:
    return [f"[{file_id:05d}]", spk.subject_id, spk.split, str(spk.age), str(spk.country),
            COUNTRIES[spk.country], *(f"{v:.4f}" for v in emotions)]


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
