"""Small synthetic stand-ins for the out-of-domain corpora behind Raw(SER), Zff(SER) and Raw(ASR).

The paper pre-trains frame CNNs on IEMOCAP (4-class speech emotion) and AMI (phone classification). Both are
licensed, so the demo uses these synthetic sets; a user with the real corpora writes the same two lists instead.
``make_ood_demo`` writes::

    out_dir/
        ser/ser.csv          path,label,speaker          one row per utterance
        ser/wav/*.wav        16 kHz mono PCM16, 1.0-2.5 s
        phones/phones.csv    path,start,end,label,speaker one row per labelled segment (seconds in the wav)
        phones/wav/*.wav     16 kHz mono PCM16, 1.5-3.0 s
        README.txt           says the sets are synthetic, with the seed and generator version

Paths are relative to the folder holding the CSV. File names carry no label: utterances are numbered in a
shuffled order per speaker.

Generative model
----------------
Both sets use the source-filter model of ``exvo_keras.data.demo``: an impulse train following an f0 contour,
shaped by a two-pole glottal low-pass, and aspiration noise are given lip radiation and each pass a cascade of
four formant resonators (``demo._resonate``); they are mixed at a breathiness ratio (a share of power), and a
speaker's room noise is added at a fixed floor, so quiet speech has a lower SNR. Formants are piecewise
constant: every syllable or phone is filtered with its own formants, and neighbours are cross-faded, which is
cheap and gives the spectral transitions a frame model sees.
Vowel targets are the adult-male averages of Peterson & Barney (1952) (``VOWEL_FORMANTS_HZ``), scaled by the
speaker's vocal-tract factor (about 1.0 for men, 1.16 for women, jittered).

Speakers. Half are "male" (f0 near 115 Hz), half "female" (near 205 Hz); each has its own tract factor, per-vowel
formant offsets (an accent), breathiness, speaking rate, recording level and room noise (floor and colour).
So f0 and loudness alone do not give away a class across speakers.

SER (``SER_CLASSES``). An utterance is a run of CV-like syllables: a voiced vowel (random from ``VOWELS``)
under a rise-sustain-fall envelope, then a short consonant gap of silence or frication noise. Class prosody
(``SER_PROSODY``) sets pitch level and range, syllable rate, recording level, breathiness and vocal effort
(glottal brightness and F1): anger is loud, high, bright and fast; happy is high with a wide, lively pitch range;
sad is quiet, low, flat, slow and breathy; neutral sits in between. Each speaker has an expressiveness factor
scaling how far its emotions depart from its neutral, and every utterance jitters every control, so the classes
are learnable from 250 ms windows but overlap across speakers (a quiet speaker's anger can be as loud as a loud
speaker's neutral).

Phones (``PHONE_CLASSES``). An utterance is a sequence of steady vowels (80-300 ms each, cycling through a
shuffled vowel order so the classes stay balanced), joined either by a 30-60 ms formant cross-fade or by a pause
(fade out, 80-200 ms of room noise, fade in). Only the steady parts are labelled, plus the pauses and the
leading and trailing silence as ``sil``; transitions and fades are left unlabelled, as a forced aligner's
boundaries would fall inside them.

Every utterance has its own generator derived from ``(seed, set, speaker, utterance)``, so output is
byte-identical for a seed and independent of generation order.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from exvo_keras.data.audio import write_wav
from exvo_keras.data.demo import _resonate, _rng
from exvo_keras.data.labels import SAMPLE_RATE
from exvo_keras.progress import progress_bar

GENERATOR_VERSION = "1.0"

SER_CLASSES = ("anger", "happy", "sad", "neutral")
SILENCE = "sil"
# ARPAbet names, as in AMI-style alignments: /i/, /ɛ/, /æ/, /ɑ/, /ɔ/, /u/, /ə/.
VOWELS = ("iy", "eh", "ae", "aa", "ao", "uw", "ax")
PHONE_CLASSES = (*VOWELS, SILENCE)

# Adult-male F1-F3 averages of Peterson & Barney (1952); schwa is the uniform 17.5 cm tube. F4 is not
# vowel-specific enough to matter, so it is fixed.
VOWEL_FORMANTS_HZ = {
    "iy": (270.0, 2290.0, 3010.0),
    "eh": (530.0, 1840.0, 2480.0),
    "ae": (660.0, 1720.0, 2410.0),
    "aa": (730.0, 1090.0, 2440.0),
    "ao": (570.0, 840.0, 2410.0),
    "uw": (300.0, 870.0, 2240.0),
    "ax": (500.0, 1500.0, 2500.0),
}
F4_HZ = 3500.0
BANDWIDTHS_HZ = (80.0, 100.0, 150.0, 250.0)

SER_COLUMNS = ("path", "label", "speaker")
PHONE_COLUMNS = ("path", "start", "end", "label", "speaker")
SER_DIR, PHONE_DIR, WAV_DIR = "ser", "phones", "wav"
SER_CSV, PHONE_CSV = "ser.csv", "phones.csv"

DEFAULT_SEED = 0
DEFAULT_SER_SPEAKERS = 16
# Two clips per class and speaker: about 4 minutes of SER audio, so the demo SER networks train in seconds per epoch.
DEFAULT_SER_CLIPS_PER_CLASS = 2
DEFAULT_PHONE_SPEAKERS = 12
DEFAULT_PHONE_UTTERANCES = 6

SER_DURATION_S = (1.0, 2.5)
PHONE_DURATION_S = (1.5, 3.0)
# Silence before and after the speech of an SER utterance.
SER_MARGIN_S = (0.05, 0.15)
PHONE_STEADY_S = (0.08, 0.30)
PHONE_TRANSITION_S = (0.03, 0.06)
PHONE_PAUSE_S = (0.08, 0.20)
PHONE_EDGE_SILENCE_S = (0.10, 0.25)
PHONE_PAUSE_PROB = 0.25
# A pause's fades are short so that its middle is true silence, like a stop closure or breath gap.
PHONE_FADE_S = 0.015

MALE_F0_HZ, FEMALE_F0_HZ = 115.0, 205.0
FEMALE_TRACT_FACTOR = 1.16
# Neutral speech RMS in dBFS; class levels are relative to it. Anger at +8 dB still leaves headroom for PCM16.
NEUTRAL_LEVEL_DBFS = -30.0
# Phone utterances' f0 wanders in steps this many samples apart (25 ms).
F0_DRIFT_STEP = SAMPLE_RATE // 40
# Starting a formant filter this early lets its ringing settle before the segment's weight rises.
PREROLL_S = 0.01


@dataclass(frozen=True)
class _Prosody:
    pitch_st: float      # f0 level relative to the speaker's neutral
    range_st: float      # peak-to-peak span of the f0 contour
    rate_hz: float       # syllables per second
    level_db: float      # recording level relative to the speaker's neutral
    breathiness: float   # share of radiated power that is aspiration noise
    effort: float        # brightens the glottal source and raises F1


SER_PROSODY = {
    "anger": _Prosody(pitch_st=3.0, range_st=5.0, rate_hz=5.5, level_db=8.0, breathiness=0.04, effort=1.0),
    "happy": _Prosody(pitch_st=4.0, range_st=10.0, rate_hz=4.8, level_db=4.0, breathiness=0.08, effort=0.4),
    "sad": _Prosody(pitch_st=-2.0, range_st=1.5, rate_hz=2.8, level_db=-8.0, breathiness=0.35, effort=-0.8),
    "neutral": _Prosody(pitch_st=0.0, range_st=4.0, rate_hz=4.0, level_db=0.0, breathiness=0.10, effort=0.0),
}


@dataclass(frozen=True)
class _Speaker:
    speaker_id: str
    f0_hz: float
    tract: float
    # Per-vowel multiplicative offsets of F1-F3: the speaker's accent.
    vowel_offsets: dict[str, np.ndarray]
    breath_offset: float
    rate_factor: float
    level_db: float
    expressiveness: float
    noise_db: float
    noise_colour: float


@dataclass(frozen=True)
class _Segment:
    """One stretch filtered with fixed formants: samples [start, stop) weighted by ``weight``."""
    start: int
    weight: np.ndarray
    formants_hz: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + self.weight.size


def make_ood_demo(
    out_dir,
    *,
    seed: int = DEFAULT_SEED,
    ser_speakers: int = DEFAULT_SER_SPEAKERS,
    ser_clips_per_class: int = DEFAULT_SER_CLIPS_PER_CLASS,
    phone_speakers: int = DEFAULT_PHONE_SPEAKERS,
    phone_utterances: int = DEFAULT_PHONE_UTTERANCES,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Write the synthetic SER and phone sets to ``out_dir``; return ``{"ser": csv, "phones": csv}``.

    Every SER speaker records ``ser_clips_per_class`` utterances of each class; every phone speaker records
    ``phone_utterances`` utterances. The sets are built in ``<out_dir>.partial`` and renamed into place at the
    end, so ``out_dir`` is either absent or complete. An existing set is only replaced with ``overwrite=True``;
    a non-empty folder that is not one is never replaced.
    """
    out_dir = Path(out_dir)
    # Two speakers is the least that allows a speaker-independent split.
    for name, value, least in (("ser_speakers", ser_speakers, 2), ("ser_clips_per_class", ser_clips_per_class, 1),
                               ("phone_speakers", phone_speakers, 2), ("phone_utterances", phone_utterances, 1)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    if _is_ood_demo(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds an out-of-domain demo; pass overwrite=True to regenerate it")
    if out_dir.exists() and not _is_ood_demo(out_dir) and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is a non-empty folder without {SER_DIR}/{SER_CSV}; refusing to replace it")

    partial = out_dir.parent / (out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    (partial / SER_DIR / WAV_DIR).mkdir(parents=True)
    (partial / PHONE_DIR / WAV_DIR).mkdir(parents=True)

    n_ser = ser_speakers * len(SER_CLASSES) * ser_clips_per_class
    ser_rows, phone_rows = [], []
    with progress_bar(total=n_ser + phone_speakers * phone_utterances, desc="out-of-domain demo", unit="utt",
                      enabled=progress) as bar:
        for s in range(ser_speakers):
            speaker = _make_speaker(_rng(seed, 10, s), f"ser{s:02d}", female=s % 2 == 1)
            labels = [c for c in SER_CLASSES for _ in range(ser_clips_per_class)]
            # Shuffled numbering keeps the label out of the file name and file order.
            order = _rng(seed, 11, s).permutation(len(labels))
            for k, label in enumerate(labels):
                audio = _synthesise_ser(_rng(seed, 12, s, k), speaker, label)
                rel = f"{WAV_DIR}/{speaker.speaker_id}_{order[k]:03d}.wav"
                write_wav(partial / SER_DIR / rel, audio, SAMPLE_RATE)
                ser_rows.append((rel, label, speaker.speaker_id))
                bar.update()
        for s in range(phone_speakers):
            speaker = _make_speaker(_rng(seed, 20, s), f"phn{s:02d}", female=s % 2 == 1)
            for u in range(phone_utterances):
                audio, segments = _synthesise_phones(_rng(seed, 21, s, u), speaker)
                rel = f"{WAV_DIR}/{speaker.speaker_id}_{u:03d}.wav"
                write_wav(partial / PHONE_DIR / rel, audio, SAMPLE_RATE)
                phone_rows.extend((rel, f"{start:.4f}", f"{end:.4f}", label, speaker.speaker_id)
                                  for start, end, label in segments)
                bar.update()

    _write_csv(partial / SER_DIR / SER_CSV, SER_COLUMNS, sorted(ser_rows))
    # Within a file, segments stay in time order (start strings share a width only below 10 s, hence the key).
    _write_csv(partial / PHONE_DIR / PHONE_CSV, PHONE_COLUMNS, sorted(phone_rows, key=lambda r: (r[0], float(r[1]))))
    (partial / "README.txt").write_text(
        "Synthetic stand-ins for the out-of-domain corpora (IEMOCAP 4-class SER, AMI phones); not real speech.\n"
        f"Generated by exvo_keras.data.ood_demo version {GENERATOR_VERSION} with seed {seed}: "
        f"{ser_speakers} SER speakers x {len(SER_CLASSES)} classes x {ser_clips_per_class} utterances, "
        f"{phone_speakers} phone speakers x {phone_utterances} utterances.\n"
        f"{SER_DIR}/{SER_CSV}: {','.join(SER_COLUMNS)}; labels {', '.join(SER_CLASSES)}.\n"
        f"{PHONE_DIR}/{PHONE_CSV}: {','.join(PHONE_COLUMNS)} (seconds); labels {', '.join(PHONE_CLASSES)}.\n"
        "Paths are relative to the CSV's folder.\n")

    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return {"ser": out_dir / SER_DIR / SER_CSV, "phones": out_dir / PHONE_DIR / PHONE_CSV}


def _is_ood_demo(path: Path) -> bool:
    return (path / SER_DIR / SER_CSV).is_file() or (path / PHONE_DIR / PHONE_CSV).is_file()


def _make_speaker(rng: np.random.Generator, speaker_id: str, female: bool) -> _Speaker:
    return _Speaker(
        speaker_id=speaker_id,
        f0_hz=(FEMALE_F0_HZ if female else MALE_F0_HZ) * np.exp(rng.normal(0.0, 0.10)),
        tract=(FEMALE_TRACT_FACTOR if female else 1.0) * np.exp(rng.normal(0.0, 0.04)),
        vowel_offsets={v: np.exp(rng.normal(0.0, 0.04, 3)) for v in VOWELS},
        breath_offset=rng.normal(0.0, 0.04),
        rate_factor=np.exp(rng.normal(0.0, 0.10)),
        level_db=rng.normal(0.0, 3.0),
        expressiveness=rng.uniform(0.6, 1.2),
        noise_db=rng.uniform(-45.0, -30.0),
        noise_colour=rng.uniform(0.0, 0.95),
    )


def _vowel_formants(rng: np.random.Generator, spk: _Speaker, vowel: str, f1_factor: float = 1.0) -> np.ndarray:
    f123 = np.array(VOWEL_FORMANTS_HZ[vowel]) * spk.vowel_offsets[vowel] * np.exp(rng.normal(0.0, 0.03, 3))
    f123[0] *= f1_factor
    return np.append(f123, F4_HZ) * spk.tract


def _synthesise_ser(rng: np.random.Generator, spk: _Speaker, label: str) -> np.ndarray:
    sr = SAMPLE_RATE
    base, neutral = SER_PROSODY[label], SER_PROSODY["neutral"]

    def control(name: str) -> float:
        # The speaker's expressiveness scales how far the emotion departs from its neutral voice.
        ref = getattr(neutral, name)
        return ref + spk.expressiveness * (getattr(base, name) - ref)

    pitch_st = control("pitch_st") + rng.normal(0.0, 1.0)
    range_st = max(0.5, control("range_st") * np.exp(rng.normal(0.0, 0.2)))
    rate = control("rate_hz") * spk.rate_factor * np.exp(rng.normal(0.0, 0.1))
    level_db = control("level_db") + spk.level_db + rng.normal(0.0, 1.5)
    breathiness = float(np.clip(control("breathiness") + spk.breath_offset + rng.normal(0.0, 0.03), 0.01, 0.7))
    effort = control("effort") + rng.normal(0.0, 0.15)

    total_s = rng.uniform(*SER_DURATION_S)
    margins = np.round(rng.uniform(*SER_MARGIN_S, 2) * sr).astype(int)
    n_speech = int(round(total_s * sr)) - margins.sum()

    segments, accents, starts = [], [], []
    pos = 0
    while pos < n_speech:
        period = int(round(sr * np.exp(rng.normal(0.0, 0.15)) / rate))
        voiced_n = min(int(0.7 * period), n_speech - pos)
        if voiced_n < int(0.04 * sr):
            break
        env = _syllable_envelope(voiced_n, rng)
        # Per-syllable stress: a few dB of loudness.
        env *= 10.0 ** (rng.normal(0.0, 2.0) / 20.0)
        vowel = VOWELS[rng.integers(len(VOWELS))]
        segments.append(_Segment(pos, env, _vowel_formants(rng, spk, vowel, np.exp(0.1 * effort))))
        accents.append(rng.uniform(-1.0, 1.0))
        starts.append(pos)
        pos += period

    t = np.arange(n_speech) / sr
    u = t / max(t[-1], 1e-9)
    # f0 contour in about -1..1: declination plus a pitch accent per syllable, smoothed into glides.
    accent = np.asarray(accents)[np.searchsorted(starts, np.arange(n_speech), side="right") - 1]
    smooth = np.exp(-1.0 / (0.03 * sr))
    accent = lfilter([1.0 - smooth], [1.0, -smooth], accent - accent[0]) + accent[0]
    contour = 0.4 * (1.0 - 2.0 * u) + 0.6 * accent
    f0 = np.clip(spk.f0_hz * 2.0 ** ((pitch_st + range_st * contour / 2.0) / 12.0), 60.0, 600.0)

    sources = _sources(rng, f0, effort)
    speech = _mix(_tract(sources, segments, breathiness), breathiness)
    # Consonant gaps: some syllables open with a burst of frication so the gaps are not all silent.
    frication = np.zeros(n_speech)
    for seg in segments:
        n_fric = int(rng.uniform(0.02, 0.05) * sr)
        if rng.random() < 0.5 and seg.start >= n_fric:
            hiss = lfilter([1.0, -0.9], [1.0], rng.standard_normal(n_fric))
            frication[seg.start - n_fric:seg.start] = 0.15 * hiss * np.hanning(n_fric)
    speech = speech + frication

    clip = np.concatenate([np.zeros(margins[0]), _at_level(speech, level_db), np.zeros(margins[1])])
    return _finish(rng, spk, clip)


def _syllable_envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    """Raised-cosine rise, sustain and fall over ``n`` samples."""
    rise = max(1, int(n * rng.uniform(0.15, 0.3)))
    fall = max(1, int(n * rng.uniform(0.2, 0.4)))
    env = np.ones(n)
    env[:rise] = 0.5 - 0.5 * np.cos(np.pi * np.arange(rise) / rise)
    env[n - fall:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(fall) / fall)
    return env


def _synthesise_phones(rng: np.random.Generator,
                       spk: _Speaker) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    sr = SAMPLE_RATE
    total_n = int(round(rng.uniform(*PHONE_DURATION_S) * sr))
    lead, tail = (int(round(rng.uniform(*PHONE_EDGE_SILENCE_S) * sr)) for _ in range(2))
    fade = int(round(PHONE_FADE_S * sr))

    # Layout in samples: each vowel's steady part is [a, b); it ramps in over `ramp_in` before a and out over
    # `ramp_out` after b. A cross-fade shares one ramp between neighbours; a pause uses two short fades.
    vowels = _vowel_sequence(rng)
    plan: list[list] = []          # [vowel, a, b, ramp_in, ramp_out]
    labels: list[tuple[int, int, str]] = []
    pos, ramp = lead + fade, fade
    silence_start = 0
    while True:
        steady = int(round(rng.uniform(*PHONE_STEADY_S) * sr))
        if pos + steady + fade + tail > total_n:
            break
        plan.append([next(vowels), pos, pos + steady, ramp, fade])
        if silence_start is not None:
            labels.append((silence_start, pos - ramp, SILENCE))
            silence_start = None
        labels.append((pos, pos + steady, plan[-1][0]))
        pos += steady
        if rng.random() < PHONE_PAUSE_PROB:
            silence_start = pos + fade
            pos += 2 * fade + int(round(rng.uniform(*PHONE_PAUSE_S) * sr))
            ramp = fade
        else:
            ramp = int(round(rng.uniform(*PHONE_TRANSITION_S) * sr))
            plan[-1][4] = ramp
            pos += ramp
    # The last vowel fades out; what follows to the end of the file is silence.
    end_of_speech = plan[-1][2] + fade
    plan[-1][4] = fade
    labels.append((end_of_speech, total_n, SILENCE))

    segments = []
    for vowel, a, b, ramp_in, ramp_out in plan:
        weight = np.concatenate([0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_in) / ramp_in), np.ones(b - a),
                                 0.5 + 0.5 * np.cos(np.pi * np.arange(ramp_out) / ramp_out)])
        weight *= 10.0 ** (rng.normal(0.0, 1.0) / 20.0)
        segments.append(_Segment(a - ramp_in, weight, _vowel_formants(rng, spk, vowel)))

    u = np.arange(total_n) / total_n
    # Intonation: declination plus a slow random walk, so f0 is no cue to the phone.
    drift = np.cumsum(rng.normal(0.0, 1.0, total_n // F0_DRIFT_STEP + 2))
    drift = np.interp(np.arange(total_n), np.arange(drift.size) * F0_DRIFT_STEP, drift - drift.mean())
    f0 = spk.f0_hz * 2.0 ** ((1.5 * (1.0 - 2.0 * u) + 0.25 * drift) / 12.0)
    breathiness = float(np.clip(0.1 + spk.breath_offset, 0.01, 0.5))
    speech = _mix(_tract(_sources(rng, f0, 0.0), segments, breathiness), breathiness)
    audio = _finish(rng, spk, _at_level(speech, spk.level_db))
    return audio, [(a / sr, b / sr, label) for a, b, label in labels if b > a]


def _vowel_sequence(rng: np.random.Generator):
    """Endless shuffled passes over ``VOWELS``, never the same vowel twice in a row (it would hide a boundary)."""
    last = None
    while True:
        order = list(rng.permutation(len(VOWELS)))
        if VOWELS[order[0]] == last:
            order.append(order.pop(0))
        for i in order:
            last = VOWELS[i]
            yield last


def _sources(rng: np.random.Generator, f0: np.ndarray, effort: float) -> np.ndarray:
    """Glottal pulse train along ``f0`` and aspiration noise, as rows of a [2, samples] array."""
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)
    # A tenser voice closes faster: a lower glottal pole keeps more high-frequency energy.
    pole = float(np.clip(0.93 - 0.08 * effort, 0.75, 0.97))
    voiced = lfilter([(1.0 - pole) ** 2], [1.0, -2.0 * pole, pole * pole], pulses)
    # Radiate before the tract (the filters commute): the low-passed pulse train is mostly DC, which would
    # otherwise dominate the power balance of breathiness.
    return _radiate(np.stack([voiced, rng.standard_normal(f0.size)]))


def _tract(sources: np.ndarray, segments: list[_Segment], breathiness: float) -> np.ndarray:
    """Filter each segment's stretch of the sources with its formants and sum the weighted results."""
    out = np.zeros_like(sources)
    preroll = int(PREROLL_S * SAMPLE_RATE)
    bandwidths = np.array(BANDWIDTHS_HZ) * (1.0 + 0.5 * breathiness)
    for seg in segments:
        lo = max(0, seg.start - preroll)
        x = sources[:, lo:seg.stop]
        for freq, bw in zip(seg.formants_hz, bandwidths):
            x = _resonate(x, freq, bw)
        out[:, seg.start:seg.stop] += seg.weight * x[:, seg.start - lo:]
    return out


def _mix(tract_out: np.ndarray, breathiness: float) -> np.ndarray:
    # Breathiness is the share of radiated power, so balance the sources after the tract.
    # Mean power over the samples with speech, so pauses do not dilute it.
    n_active = max(1, np.count_nonzero(tract_out[0]))
    rms = np.sqrt(np.sum(tract_out ** 2, axis=1, keepdims=True) / n_active) + 1e-12
    voiced, noise = tract_out / rms
    return np.sqrt(1.0 - breathiness) * voiced + np.sqrt(breathiness) * noise


def _at_level(speech: np.ndarray, level_db: float) -> np.ndarray:
    """Scale to ``NEUTRAL_LEVEL_DBFS + level_db`` RMS, measured over the samples with sound, not the gaps."""
    active = speech[speech != 0.0]
    return speech * (10.0 ** ((NEUTRAL_LEVEL_DBFS + level_db) / 20.0) / np.sqrt(np.mean(active ** 2) + 1e-20))


def _radiate(x: np.ndarray) -> np.ndarray:
    # Lip radiation: +6 dB/octave.
    return lfilter([1.0, -0.95], [1.0], x, axis=-1)


def _finish(rng: np.random.Generator, spk: _Speaker, clip: np.ndarray) -> np.ndarray:
    """Add the speaker's room noise at a fixed floor, so quiet speech has a lower SNR, and keep PCM headroom."""
    room = lfilter([1.0], [1.0, -spk.noise_colour], rng.standard_normal(clip.size))
    room *= 10.0 ** ((NEUTRAL_LEVEL_DBFS + spk.noise_db) / 20.0) / np.sqrt(np.mean(room ** 2))
    clip = clip + room
    peak = np.max(np.abs(clip))
    return clip * (0.95 / peak) if peak > 0.95 else clip


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
