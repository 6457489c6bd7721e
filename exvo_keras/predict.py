"""Predictions of an exported SavedModel for audio files, in the ExVo challenge's submission columns.

The model is loaded with plain `tf.saved_model.load` (no Keras or exvo_keras code runs in it): any folder
written by `exvo_keras.export.export_system` works, also one copied to a machine without this package's
training code. Files are decoded in parallel by `exvo_keras.data.tf_audio` (any format soundfile decodes: wav,
flac, ogg, mp3, ...; first channel, other rates resampled to 16 kHz as the graph does) and fed to the `serve_waveform`
signature in batches of similar length, so little compute goes to padding.

Bad inputs do not stop the run: a missing, empty, corrupt, truncated or too short (< 50 ms) file, or a batch the
model fails on (then retried clip by clip), is skipped and listed at the end with its reason, as is whatever a
folder holds besides audio files (subfolders, other extensions); every other file is predicted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from exvo_keras.batching import length_batches, pad_clips
from exvo_keras.data.audio import AUDIO_SUFFIXES, AudioError, audio_info
from exvo_keras.data.labels import EMOTIONS, SAMPLE_RATE

COLUMNS = ("File_ID", "Country", "Age", *EMOTIONS)
ENDPOINT = "serve_waveform"


@dataclass
class Prediction:
    """Rows in the submission columns, and the files that could not be predicted with the reason."""

    frame: pd.DataFrame
    failures: list[tuple[str, str]] = field(default_factory=list)
    reused: bool = False  # True when an up-to-date predictions file was reused


def file_id(path) -> str:
    """ExVo's File_ID for a wav: `58712.wav` -> `[58712]` (five digits, the corpus's names), else the stem."""
    stem = Path(path).stem
    return f"[{stem}]" if len(stem) == 5 and stem.isdigit() else stem


def collect_inputs(inputs: Sequence) -> tuple[list[Path], list[tuple[str, str]]]:
    """Audio files named directly or found in folders (not recursive, sorted by name), and every path left out
    with the reason: missing, or in a folder but not audio (a subfolder, another extension). A file named
    directly is tried whatever its extension (soundfile goes by the content)."""
    files, failures = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = []
            for p in sorted(path.iterdir()):
                if p.is_dir():
                    failures.append((str(p), "skipped: a folder (folders inside folders are not searched)"))
                elif p.suffix.lower() in AUDIO_SUFFIXES:
                    found.append(p)
                else:
                    failures.append((str(p), f"skipped: {p.suffix or 'no extension'} is not an audio file "
                                             "extension soundfile decodes"))
            if not found:
                failures.append((str(path), "folder holds no audio files (none of the extensions soundfile "
                                            "decodes: .wav, .flac, .ogg, .mp3, ...)"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            failures.append((str(path), "file not found"))
    return files, failures


def load_model(model_dir):
    """`tf.saved_model.load` of an exported model, with errors that say what the folder lacks."""
    import tensorflow as tf

    model_dir = Path(model_dir)
    if not (model_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{model_dir}: no SavedModel here (saved_model.pb missing); export one with "
                                "python -m exvo_keras export SYSTEM")
    model = tf.saved_model.load(str(model_dir))
    if not hasattr(model, ENDPOINT):
        raise ValueError(f"{model_dir}: not an exvo_keras export (no {ENDPOINT} function)")
    return model


def predict_files(model, files: Sequence, *, batch_size: int = 16, progress: bool = True) -> Prediction:
    """Predicts every readable file; returns the rows in input order and the failures.

    Args:
        model: a loaded export (`load_model`) or its folder.
        files: audio file paths.
        batch_size: clips per model call.
        progress: show a progress bar.
    """
    import tensorflow as tf

    from exvo_keras.data.tf_audio import decoded_clips
    from exvo_keras.progress import progress_bar

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if isinstance(model, (str, Path)):
        model = load_model(model)
    serve = getattr(model, ENDPOINT)
    files = [Path(f) for f in files]
    failures: dict[int, str] = {}
    lengths = {}
    for i, path in enumerate(files):
        try:
            info = audio_info(path)
            lengths[i] = int(info.frames * SAMPLE_RATE / info.sample_rate)
        except AudioError as exc:
            failures[i] = exc.problem
    outputs: dict[int, dict] = {}

    def run(indices, clips):
        waveform, _ = pad_clips(clips)
        out = serve(tf.constant(waveform), tf.constant([c.size for c in clips], tf.int32))
        out = {k: v.numpy() for k, v in out.items() if k in ("emotion", "age", "country_index")}
        for row, i in enumerate(indices):
            values = {k: v[row] for k, v in out.items()}
            if all(np.all(np.isfinite(v)) for k, v in values.items() if k != "country_index"):
                outputs[i] = values
            else:
                failures[i] = "the model gave NaN or infinite outputs (clip too short for the encoder?)"

    with progress_bar(total=len(lengths), desc="predict", unit="clip", enabled=progress) as bar:
        readable = list(lengths)
        batches = [[readable[p] for p in positions]
                   for positions in length_batches([lengths[i] for i in readable], max_items=batch_size)]
        # One parallel decoding pipeline over every file, in the order the batches take them.
        decoded = decoded_clips([files[i] for batch in batches for i in batch])
        for batch in batches:
            indices, clips = [], []
            for i, clip in zip(batch, decoded):
                if clip.error is not None:
                    failures[i] = clip.error.problem
                else:
                    clips.append(clip.signal)
                    indices.append(i)
            if clips:
                try:
                    run(indices, clips)
                except tf.errors.OpError:
                    for i, clip in zip(indices, clips):  # find the clip the batch failed on; keep the others
                        try:
                            run([i], [clip])
                        except tf.errors.OpError as exc:
                            failures[i] = f"the model failed on it ({exc.message.splitlines()[0]})"
            bar.update(len(batch))

    rows = []
    for i, path in enumerate(files):
        if i in outputs:
            o = outputs[i]
            rows.append({"File_ID": file_id(path), "Country": int(o["country_index"]), "Age": float(o["age"]),
                         **{name: float(o["emotion"][k]) for k, name in enumerate(EMOTIONS)}})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return Prediction(frame, [(str(files[i]), failures[i]) for i in sorted(failures)])


def _stamp(model_dir, files: Sequence[Path], missing) -> dict:
    """What a predictions file was made from: the model's graph and weights index, and every input's size and
    modification time."""
    import hashlib

    model_digest = hashlib.sha1()
    for part in ("saved_model.pb", "variables/variables.index"):
        path = Path(model_dir) / part
        if path.exists():
            model_digest.update(path.read_bytes())
    inputs = hashlib.sha1()
    for f in files:
        stat = f.stat()
        inputs.update(f"{f}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    inputs.update(repr(missing).encode())
    return {"model": model_digest.hexdigest()[:16], "inputs": inputs.hexdigest()[:16]}


def predict_paths(model_dir, inputs: Sequence, out_csv, *, batch_size: int = 16, progress: bool = True,
                  resume: bool = True) -> Prediction:
    """Files and folders -> `out_csv` (written atomically, when at least one file was predicted). See the module doc.

    `out_csv.done.json` records the model and the inputs (sizes, modification times) the file was made from;
    with `resume`, the same model on the same inputs reuses the file instead of predicting again.
    """
    import json

    from exvo_keras.runs import atomic_write_json, atomic_write_text

    out_csv = Path(out_csv)
    stamp_path = out_csv.with_name(out_csv.name + ".done.json")
    files, missing = collect_inputs(inputs)
    stamp = _stamp(model_dir, files, missing)
    if resume and out_csv.exists() and stamp_path.exists():
        done = json.loads(stamp_path.read_text())
        if {k: done.get(k) for k in stamp} == stamp:
            frame = pd.read_csv(out_csv, dtype={"File_ID": str})
            return Prediction(frame, [tuple(f) for f in done["failures"]], reused=True)
    model = load_model(model_dir)
    result = predict_files(model, files, batch_size=batch_size, progress=progress)
    result.failures = missing + result.failures
    stamp_path.unlink(missing_ok=True)
    if len(result.frame):
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_csv, result.frame.to_csv(index=False))
        atomic_write_json(stamp_path, {**stamp, "failures": result.failures})
    return result


def report_failures(failures, stream=None) -> None:
    stream = stream or sys.stderr
    if failures:
        print(f"{len(failures)} input(s) could not be predicted:", file=stream)
        for path, reason in failures:
            print(f"  - {path}: {reason}", file=stream)
