"""Shared fixtures: a tiny hand-made ExVo-format corpus, independent of the demo generator."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from exvo_keras.data.labels import COUNTRIES, EMOTIONS  # noqa: E402


def write_corpus(root: Path, n_per_split=(6, 4, 4), seed=0, duration=0.4) -> Path:
    """ExVo's layout: data_info.csv (columns deliberately not in the release's order) + wav/NNNNN.wav."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True)
    rows = []
    fid = 100
    for split, n in zip(("Train", "Val", "Test"), n_per_split):
        for i in range(n):
            fid += 1
            emo = rng.random(len(EMOTIONS))
            emo /= emo.max()
            country = int(rng.integers(0, len(COUNTRIES)))
            row = {"Split": split, "File_ID": f"[{fid:05d}]", "Subject_ID": f"Speaker_{split}{i % 2}",
                   "Country": country, "Country_string": COUNTRIES[country], "Age": int(rng.integers(18, 40))}
            row.update({e: round(float(v), 4) for e, v in zip(EMOTIONS, emo)})
            if split == "Test":
                for k in ("Country", "Country_string", "Age", *EMOTIONS):
                    row[k] = None
            rows.append(row)
            t = np.arange(int(duration * 16000)) / 16000
            x = 0.3 * np.sin(2 * np.pi * (150 + 10 * i) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(root / "wav" / f"{fid:05d}.wav", x, 16000, subtype="PCM_16")
    cols = ["Subject_ID", "File_ID", "Split", *EMOTIONS, "Age", "Country", "Country_string"]
    pd.DataFrame(rows)[cols].to_csv(root / "data_info.csv", index=False)
    return root


def learnable_corpus(root: Path):
    """A corpus of 120/40/8 short clips and `labels_of(ids)`: each clip's labels as features (ten emotions, age /
    10, one-hot country), from which a working head must learn."""
    from exvo_keras.data.corpus import load_corpus

    corpus = load_corpus(write_corpus(root, n_per_split=(120, 40, 8), duration=0.1))
    table = corpus.table

    def labels_of(ids):
        rows = table.loc[ids]
        return np.concatenate([rows[list(EMOTIONS)].fillna(0.5).to_numpy(), rows[["Age"]].fillna(30).to_numpy() / 10,
                               np.eye(len(COUNTRIES))[rows["Country"].fillna(0).astype(int)]], axis=1)

    return corpus, labels_of


def layered_rows(labels_of, layers: int, informative: int, seed: int = 0):
    """`embed(ids)` for an all-layer store of `layers` layers that are noise except `informative`, which holds
    `labels_of(ids)` plus noise; `embeddings` is the last layer (noise)."""
    rng = np.random.default_rng(seed)

    def embed(ids):
        clean = labels_of(ids)
        every = rng.standard_normal((len(ids), layers, clean.shape[1]))
        every[:, informative] = clean + 0.1 * rng.standard_normal(clean.shape)
        return {"embeddings": every[:, -1], "layers": every}

    return embed


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV's header and rows as strings, exactly as written (no type inference)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def read_wav(path: Path) -> np.ndarray:
    """A PCM16 wav through the standard library, independent of the project's own audio loader."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0


@pytest.fixture
def tiny_corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


REPO = Path(__file__).resolve().parents[1]


def run_all(*args, timeout=900):
    """`bash run_all.sh ARGS` with this interpreter's environment (the suite's venv), output captured."""
    import subprocess
    import sys

    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "PATH": f"{Path(sys.prefix) / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(REPO / "run_all.sh"), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """run_all.sh once on a tiny real-format corpus with one seed: (data, work, results, completed process).

    Shared by the run_all and notebook tests, which only reload what it trained.
    """
    base = tmp_path_factory.mktemp("reproduced")
    data = write_corpus(base / "corpus", n_per_split=(16, 8, 4), duration=0.3)
    work, results = base / "work", base / "results"
    args = ["--data", str(data), "--work", str(work), "--results", str(results), "--seeds", "1", "--profile", "demo",
            "--saved-models", str(base / "saved_models")]
    return data, work, results, args, run_all(*args)
