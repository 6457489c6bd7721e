"""The ExVo Multi-Task corpus as distributed: `data_info.csv` plus `wav/NNNNN.wav`.

Columns are matched by name (their order differs between releases). `File_ID` is bracketed (`[58712]`) and
names `wav/58712.wav`. Test rows carry no labels in the official release; a corpus may ship them separately
in `test_labels.csv` (the demo corpus does, so that Table 3 can be scored).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from exvo_keras.data.audio import AudioError, read_audio
from exvo_keras.data.labels import COUNTRIES, EMOTIONS, MAX_SSL_SECONDS, SAMPLE_RATE, SPLITS

INFO_FILE = "data_info.csv"
TEST_LABELS_FILE = "test_labels.csv"
LABEL_COLUMNS = ("Age", "Country", *EMOTIONS)
REQUIRED_COLUMNS = ("File_ID", "Split", "Subject_ID", *LABEL_COLUMNS)


class CorpusError(ValueError):
    """A corpus folder that cannot be used; the message lists every problem found."""

    def __init__(self, root, problems):
        self.root = Path(root)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"corpus {self.root}: {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Problem:
    """One finding of `check_corpus`. `severity` is "error" (unusable) or "warning" (handled, but unusual)."""

    severity: str
    where: str
    message: str

    def __str__(self):
        return f"{self.severity}: {self.where}: {self.message}"


def wav_name(file_id: str) -> str:
    """`[58712]` -> `58712.wav` (the release zero-pads to five digits)."""
    stem = str(file_id).strip().strip("[]").strip()
    return f"{int(stem):05d}.wav" if stem.isdigit() else f"{stem}.wav"


@dataclass
class Corpus:
    """An ExVo-format corpus.

    `table` has one row per clip, indexed by File_ID, with the columns of REQUIRED_COLUMNS (labels NaN where
    unknown, e.g. the hidden Test labels).
    """

    root: Path
    table: pd.DataFrame
    _fingerprint: str | None = field(default=None, repr=False)
    _digests: dict[str, str] = field(default_factory=dict, repr=False)

    def wav_path(self, file_id: str) -> Path:
        return self.root / "wav" / wav_name(file_id)

    def file_ids(self, split: str | None = None) -> list[str]:
        rows = self.table if split is None else self.table[self.table["Split"] == split]
        return list(rows.index)

    def rows(self, split: str) -> pd.DataFrame:
        _check_split(split)
        return self.table[self.table["Split"] == split]

    def has_labels(self, split: str) -> bool:
        rows = self.rows(split)
        return len(rows) > 0 and not rows[list(LABEL_COLUMNS)].isna().any().any()

    def labels(self, split: str) -> dict[str, np.ndarray]:
        """Labels of a split as arrays: emotion `[n, 10]` float32, age `[n]` float32, country `[n]` int32."""
        if not self.has_labels(split):
            raise CorpusError(self.root, [f"split {split} has no (complete) labels"])
        return self.labels_of(self.file_ids(split))

    def labels_of(self, file_ids) -> dict[str, np.ndarray]:
        """Labels of these clips, in their order, as `labels` returns them (unchecked: see `has_labels`)."""
        rows = self.table.loc[list(file_ids)]
        return {
            "emotion": rows[list(EMOTIONS)].to_numpy(np.float32),
            "age": rows["Age"].to_numpy(np.float32),
            "country": rows["Country"].to_numpy(np.int32),
        }

    @property
    def fingerprint(self) -> str:
        """Identifies the audio of this corpus: File_IDs, wav sizes and two 4 kB samples of each wav, hashed.

        Labels are left out on purpose: correcting a label must not invalidate stored embeddings, while a
        different corpus, or a demo corpus regenerated with other settings (same clip lengths, so same sizes),
        must. Two reads per file keep this to about a second for the full corpus.
        """
        if self._fingerprint is None:
            h = hashlib.sha1()
            for fid in sorted(self.table.index):
                h.update(f"{fid}:".encode())
                path = self.wav_path(fid)
                if not path.exists():
                    h.update(b"missing\n")
                    continue
                size = path.stat().st_size
                with open(path, "rb") as f:
                    head = f.read(4096)
                    f.seek(max(size // 2 - 2048, 0))
                    middle = f.read(4096)
                h.update(f"{size}:".encode() + head + middle)
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def file_digest(self, file_id: str) -> str:
        """sha1 of the bytes of this clip's wav ("" when it is missing): what a store row was computed from.

        The whole file rather than its size and mtime: a corpus copied without its times (plain cp, an unpacked
        download) keeps its digests, and an edit that keeps the size still shows. 70-250 µs per 43 kB demo clip
        with the file cached (quiet to busy 2-core machine), so some seconds for ExVo's 59,201 clips plus reading
        them from disk, once per Corpus: the files are taken not to change while it is in use.
        """
        if file_id not in self._digests:
            try:
                with open(self.wav_path(file_id), "rb") as f:
                    self._digests[file_id] = hashlib.file_digest(f, "sha1").hexdigest()
            except FileNotFoundError:
                self._digests[file_id] = ""
        return self._digests[file_id]


def load_corpus(root) -> Corpus:
    """Reads an ExVo-format folder.

    Args:
        root: folder holding `data_info.csv` and `wav/` (and optionally `test_labels.csv`).

    Returns:
        Corpus with the table validated: known splits, unique File_IDs, complete labels in Train and Val,
        emotions in [0, 1]. Audio files are not opened here (see `check_corpus`).

    Raises:
        CorpusError: listing every table problem at once.

    Example:
        >>> corpus = load_corpus("data/demo")        # doctest: +SKIP
        >>> corpus.labels("Train")["emotion"].shape  # doctest: +SKIP
        (200, 10)
    """
    root = Path(root)
    table, problems = _read_table(root)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise CorpusError(root, errors)
    return Corpus(root, table)


# -80 dBFS, about three steps of 16-bit audio: zeros or bare dither, never a recorded burst.
SILENT_PEAK = 1e-4


class CheckResult(list):
    """`check_corpus`'s problems, and how many clips it read in how many seconds."""

    clips: int = 0
    seconds: float = 0.0


def check_corpus(root, check_audio: bool = True, progress: bool = False) -> CheckResult:
    """Validates a corpus folder and returns every problem found, instead of stopping at the first.

    Table checks: required columns, split names, duplicate File_IDs, NaN or out-of-range labels in Train/Val.
    Audio checks (optional) decode every clip as the pipeline will (`read_audio`): missing, empty, unreadable,
    truncated, too short or non-finite audio (errors); other sample rates or several channels (resampled /
    reduced to the first channel when loaded), silence, or clips too long for SSL extraction (warnings).
    """
    import time

    root = Path(root)
    table, problems = _read_table(root)
    result = CheckResult(problems)
    if table is None or not check_audio:
        return result
    from exvo_keras.progress import progress_bar

    corpus = Corpus(root, table)
    durations = {}
    start = time.perf_counter()
    for fid in progress_bar(table.index, desc="checking audio", unit="clip", enabled=progress):
        path = corpus.wav_path(fid)
        try:
            x, info = read_audio(path)
        except AudioError as exc:
            result.append(Problem("error", str(path), exc.problem))
            continue
        if info.sample_rate != SAMPLE_RATE:
            result.append(
                Problem("warning", str(path), f"sample rate {info.sample_rate} Hz (resampled to {SAMPLE_RATE})")
            )
        if info.channels != 1:
            result.append(Problem("warning", str(path), f"{info.channels} channels (first channel used)"))
        peak = float(np.abs(x).max())
        if peak < SILENT_PEAK:
            result.append(Problem("warning", str(path),
                                  f"silent: peak {peak:.1e} of full scale (below {SILENT_PEAK:.0e})"))
        durations[path] = x.size / SAMPLE_RATE
    result.clips, result.seconds = len(table), time.perf_counter() - start
    if durations:
        # features.ssl starts TensorFlow: only worth it once there is a clip to compare with its limit.

        for path, seconds in durations.items():
            if seconds > MAX_SSL_SECONDS:
                result.append(Problem("warning", str(path),
                                      f"{seconds:.1f} s long, over the {MAX_SSL_SECONDS:g} s SSL extraction "
                                      "limit (extract-ssl refuses it unless max_seconds is raised)"))
    return result


def _read_table(root: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    info_path = root / INFO_FILE
    if not root.is_dir():
        return None, [Problem("error", str(root), "corpus folder not found (supply an ExVo-format folder)")]
    if not info_path.is_file():
        return None, [Problem("error", str(info_path), "missing (an ExVo corpus has data_info.csv and wav/)")]
    try:
        table = pd.read_csv(info_path, dtype={"File_ID": str, "Subject_ID": str, "Split": str})
    except Exception as exc:
        return None, [Problem("error", str(info_path), f"unreadable CSV ({exc})")]
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        return None, [Problem("error", str(info_path), f"missing column(s): {', '.join(missing)}")]

    table["File_ID"] = table["File_ID"].str.strip()
    table["Split"] = table["Split"].str.strip()
    test_labels = root / TEST_LABELS_FILE
    if test_labels.is_file():
        table = _merge_test_labels(table, test_labels)

    problems = []
    where = str(info_path)
    dup = table["File_ID"][table["File_ID"].duplicated()].unique()
    if len(dup):
        problems.append(Problem("error", where, f"duplicate File_ID(s): {_listing(dup)}"))
    bad_split = table.loc[~table["Split"].isin(SPLITS), "File_ID"]
    if len(bad_split):
        values = sorted(set(table.loc[bad_split.index, "Split"].astype(str)))
        problems.append(
            Problem("error", where, f"unknown Split value(s) {values} in rows {_listing(bad_split)}; "
                    f"expected one of {list(SPLITS)}")
        )
    for col in LABEL_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce")
    labelled = table["Split"].isin(("Train", "Val"))
    for col in LABEL_COLUMNS:
        nan_rows = table.loc[labelled & table[col].isna(), "File_ID"]
        if len(nan_rows):
            problems.append(Problem("error", where, f"missing or NaN {col} in Train/Val row(s) {_listing(nan_rows)}"))
    emo = table[list(EMOTIONS)]
    out_of_range = table.loc[((emo < 0) | (emo > 1)).any(axis=1), "File_ID"]
    if len(out_of_range):
        problems.append(Problem("error", where, f"emotion intensity outside [0, 1] in row(s) {_listing(out_of_range)}"))
    bad_country = table.loc[table["Country"].notna() & ~table["Country"].isin(range(len(COUNTRIES))), "File_ID"]
    if len(bad_country):
        problems.append(Problem("error", where, f"Country not in 0..{len(COUNTRIES) - 1} in row(s) {_listing(bad_country)}"))
    table = table.drop_duplicates("File_ID").set_index("File_ID", drop=False)
    table.index.name = None
    return table, problems


def _merge_test_labels(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    hidden = pd.read_csv(path, dtype={"File_ID": str}).set_index("File_ID")
    cols = [c for c in LABEL_COLUMNS if c in hidden.columns]
    is_test = table["Split"] == "Test"
    ids = table.loc[is_test, "File_ID"]
    known = ids[ids.isin(hidden.index)]
    table.loc[known.index, cols] = hidden.loc[known.to_numpy(), cols].to_numpy()
    return table


def _listing(values, limit: int = 10) -> str:
    values = [str(v) for v in values]
    more = f" … (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def split_by_speaker(speakers: Sequence[str], fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Boolean mask of the items held out: about `fraction` of the speakers, whole, chosen by a seeded permutation."""
    speakers = np.asarray([str(s) for s in speakers])
    unique = np.array(sorted(set(speakers)))
    unique = unique[np.random.default_rng(seed).permutation(len(unique))]
    n_held = max(1, int(round(fraction * len(unique))))
    return np.isin(speakers, unique[:n_held])


def speaker_split(corpus: Corpus, fraction: float = 0.1, seed: int = 0, split: str = "Train"):
    """Speaker-independent split of `split` into (fit, held-out) File_ID lists, about `fraction` held out.

    Whole speakers are held out, so no voice is on both sides; this is the paper's 90:10 train /
    cross-validation split for the frame CNNs.
    """
    rows = corpus.rows(split)
    mask = split_by_speaker(rows["Subject_ID"].to_numpy(), fraction, seed)
    return list(rows.index[~mask]), list(rows.index[mask])


def hard_labels(corpus: Corpus, split: str, task: str) -> np.ndarray:
    """Class labels for the frame CNNs: `emotion` -> argmax of the ten intensities, `country` -> its code."""
    labels = corpus.labels(split)
    if task == "emotion":
        return labels["emotion"].argmax(axis=1).astype(np.int32)
    if task == "country":
        return labels["country"]
    raise ValueError(f"unknown task {task!r}; expected 'emotion' or 'country'")
