"""End-to-end SavedModel export: 16 kHz waveform (or wav bytes) -> ten emotions, age, country.

`export_system(key, workspace, out_dir)` writes one SavedModel holding a registered system's whole path: the
encoder(s) of its feature sets (frame CNNs on the raw or ZFF signal, SSL encoders), mean+std pooling, the Train
standardisation and the multi-task head(s) (the standardisation is the head's own `Normalization` layer), and
for hybrids every source in the same graph (e.g. emotion and age from one head, country from a frame CNN's own
decision). Each head source is exported at its best seed on Val. Beside the model, `exvo_metadata.json`
records the system, its sources and seeds, the corpus and frame-CNN profile it was trained with, its Val
scores, label names, sample rate and package versions.

Loading needs TensorFlow only: the graph uses core TF ops (no Keras, no exvo_keras, no tensorflow-io).

    import tensorflow as tf
    model = tf.saved_model.load("saved_models/raw_exvo_er-sys1")
    out = model.serve_waveform(waveform, lengths)          # [batch, samples] float32 at 16 kHz, [batch] int32
    out = model.serve_wav_bytes(tf.constant([open("58712.wav", "rb").read()]))
    out["country_label"], out["age"], out["Awe"], out["emotion"]

Signatures (also under `model.signatures[...]`; `serving_default` is `serve_waveform`):

- `serve_waveform(waveform [batch, samples] float32, lengths [batch] int32)`: mono audio at 16 kHz, zero-padded
  to the longest clip; each clip uses only its first `lengths[i]` samples (padding values never matter).
- `serve_wav_bytes(wav [batch] string)`: whole wav files, decoded with `tf.audio.decode_wav` (16-bit PCM only),
  first channel, resampled to 16 kHz in the graph when the file's rate differs.

Outputs (both): `emotion` `[batch, 10]` (ExVo's order, `exvo_keras.data.labels.EMOTIONS`), one `[batch]` output
per emotion by name (`Awe`, ... `Surprise`), `age` `[batch]` in years, `country_probabilities` `[batch, 4]`,
`country_index` `[batch]` int32 and `country_label` `[batch]` string (`COUNTRIES`).

Hybrids. A source "network:<name>" (a country CNN's own decision) gives the network's mean window posteriors as
`country_probabilities` and their argmax as the country, the decision Table 1 scores (the hybrid's run folders
store that decision one-hot).

ZFF. The zero-frequency filter is in the graph, in float64: `exvo_keras.signal.zff`'s graph functions, the
ones the package's signal cache runs (pitch estimate for the trend window, blocks with margins, reflection
padding), so ZFF systems export with the same predictions as the package.

Resampling. The graph resamples other rates with `exvo_keras.signal.resample`, the package loader's own
resampler: scipy's `resample_poly` filter (Kaiser, beta 5, same taps, alignment and length) in float64, equal
to scipy in float64 to round-off (about 1e-15).

Not exportable: ComParE systems (openSMILE is not a TensorFlow graph) and DeepSpectrum systems (its spectrogram
image and VGG16 are not rebuilt in the graph yet); `export_system` refuses them and says why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from exvo_keras.data.labels import COUNTRIES, EMOTIONS, SAMPLE_RATE
from exvo_keras.export.system import (NOT_EXPORTABLE, ExportError, best_exportable_system, check_exportable,
                                      exported_val_scores, feature_kind, inputs_digest, resolve)
from exvo_keras.workspace import Workspace

METADATA_FILE = "exvo_metadata.json"
DEFAULT_OUT = "saved_models"

ZFF_NOTE = ("zero-frequency filtering inside the graph, float64, as exvo_keras.signal.zff: trend window 1.5 x the "
            "average pitch period (LP-residual autocorrelation at 8 kHz, median over voiced frames; 10 ms "
            "fallback), reflection padding by 0.3 s, blocks of at most 10 s with 0.3 s margins, peak "
            "normalisation; the package's own implementation (exvo_keras.signal.zff)")
RESAMPLER_NOTE = ("serve_wav_bytes resamples other rates to 16 kHz in the graph with scipy's resample_poly filter "
                  "(Kaiser beta 5, 20 * max(up, down) + 1 taps) in float64, the package loader's own resampler "
                  "(exvo_keras.signal.resample)")
SIGNATURES = {
    "serve_waveform": {"inputs": {"waveform": "[batch, samples] float32, 16 kHz mono, zero-padded",
                                  "lengths": "[batch] int32, samples of each clip"}},
    "serve_wav_bytes": {"inputs": {"wav": "[batch] string, 16-bit PCM wav files (any rate, first channel)"}},
    "outputs": {"emotion": "[batch, 10] float32, labels.emotions order", "<Emotion>": "[batch] float32 each",
                "age": "[batch] float32, years", "country_probabilities": "[batch, 4] float32",
                "country_index": "[batch] int32", "country_label": "[batch] string"},
}

__all__ = ["ExportError", "NOT_EXPORTABLE", "METADATA_FILE", "best_exportable_system", "check_exportable",
           "export_system", "feature_kind"]


def export_system(key: str, ws: Workspace, out_dir=None, *, data=None, ssl_dir=None, overwrite: bool = False) -> Path:
    """Exports registered system `key` (trained in `ws`) as a SavedModel plus `exvo_metadata.json`.

    Args:
        key: a registered system (`exvo_keras.registry.systems()`), hybrids included.
        ws: the workspace holding its stores, networks and run folders.
        out_dir: where to write (default `saved_models/<key>`).
        data: the corpus folder, optional: checked against the stores' corpus, and used to score the exported
            combination of seeds on Val (recorded in the metadata).
        ssl_dir: checkpoint folder for SSL features extracted from checkpoints (as for `extract-ssl`).
        overwrite: replace an existing export made from other inputs (one made from the same inputs is kept).

    Returns:
        `out_dir`.

    Raises:
        ExportError: ComParE / DeepSpectrum systems (not TensorFlow graphs), or inputs that are not those the
            heads were trained on (a re-extracted store, another encoder).
        FileNotFoundError: a missing run, store or network, naming the command that makes it.
    """
    from exvo_keras.export.module import replace_dir, write_saved_model
    from exvo_keras.runs import atomic_write_json

    out_dir = Path(out_dir) if out_dir is not None else Path(DEFAULT_OUT) / key
    resolved = resolve(key, ws, ssl_dir=ssl_dir)
    metadata = resolved.metadata
    if data is not None:
        from exvo_keras.data.corpus import load_corpus

        corpus = load_corpus(data)
        stored = metadata["corpus"]["fingerprint"]
        if stored is not None and stored != corpus.fingerprint:
            raise ExportError(f"{data} (fingerprint {corpus.fingerprint}) is not the corpus {key} was trained on "
                              f"({metadata['corpus']['root']}, fingerprint {stored})")
        metadata["corpus"]["root"] = str(corpus.root)
        metadata["val_scores"]["exported"] = exported_val_scores(resolved, corpus)
    metadata["inputs_sha1"] = inputs_digest(metadata)
    existing = out_dir / METADATA_FILE
    if existing.exists():
        old = json.loads(existing.read_text())
        if old.get("inputs_sha1") == metadata["inputs_sha1"] and (out_dir / "saved_model.pb").exists():
            return out_dir
        if not overwrite:
            raise FileExistsError(f"{out_dir} holds an export of {old.get('system')} made from other inputs; pass "
                                  "--overwrite to replace it")
    elif out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not an exvo_keras export; choose another folder or pass "
                              "--overwrite")
    tmp = write_saved_model(resolved.plan, out_dir)
    atomic_write_json(tmp / METADATA_FILE, describe(metadata))
    return replace_dir(tmp, out_dir)


def _versions() -> dict:
    import platform

    import keras
    import numpy as np
    import tensorflow as tf

    import exvo_keras

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "exvo_keras": exvo_keras.__version__, "python": platform.python_version()}


def describe(metadata: dict) -> dict:
    """Adds what does not depend on the work folder: labels, signatures, signal notes and versions."""
    from exvo_keras.export.module import WAVEFORM_ENDPOINT

    uses_zff = any(f.get("signal") == "zff" for f in metadata["features"].values()) or any(
        c.get("network", {}).get("signal") == "zff" for c in metadata["components"].values())
    return {
        **metadata,
        "labels": {"emotions": list(EMOTIONS), "countries": list(COUNTRIES)},
        "sample_rate": SAMPLE_RATE,
        "signatures": SIGNATURES, "default_signature": WAVEFORM_ENDPOINT,
        "zff": ZFF_NOTE if uses_zff else None,
        "resampling": RESAMPLER_NOTE,
        "versions": _versions(),
        "exported_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
