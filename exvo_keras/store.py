"""The embedding store: one HDF5 file per feature set.

Layout (an interface other code and outside checks rely on):
- dataset `embeddings` `[n, dims]` float32, dataset `file_ids` (the corpus's File_ID strings);
- attributes `extractor` (name), `settings` (JSON of everything that changes the numbers), `corpus`
  (the corpus fingerprint), `corpus_root`, `dims`, `complete`.

A store is written to `<path>.partial` with a per-row `done` mask and renamed to `<path>` only when every row is
in, so a file at `<path>` is always complete and an interrupted extraction resumes from its `.partial`.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np

from exvo_keras.data.audio import AudioError
from exvo_keras.progress import progress_bar


class StoreError(ValueError):
    """A store that is missing, incomplete, or made from another corpus or other settings."""


def partial_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def remake_command(path, extractor: str | None = None, data=None) -> str:
    """The command that makes the store `path` again, for messages: from its extractor when known, else from its
    name (``WORK/features/<name>.h5``; SSL shards ``<name>.shardIofN.h5``)."""
    path = Path(path)
    name = path.name.split(".")[0]
    kind, _, network = (extractor or name).partition(":")
    args = {"compare": ["extract-compare"], "deepspectrum": ["extract-deepspectrum --imagenet-weights FILE"],
            "ssl": [f"extract-ssl {name}"], "frame_cnn": [f"extract-network {network}"]}.get(kind)
    if args is None and extractor is None and path.parent.name == "features":
        args = [f"extract-ssl {name}", f"extract-network {name}"]  # an unreadable store does not say which
    if args is None:
        return "the extraction that wrote it"
    work = f" --work {path.parent.parent}" if path.parent.name == "features" else ""
    return " or ".join(f"`python -m exvo_keras {a} --data {data or 'DATA'}{work}`" for a in args) + \
        " (with the options that made it)"


@contextmanager
def _reading(path):
    """The store opened read-only; an unreadable one (a file cut short by a full disk or an interrupted copy, or
    not a store at all) is a StoreError naming it and the fix, not an h5py traceback."""
    try:
        with h5py.File(path, "r") as f:
            yield f
    except (OSError, KeyError) as exc:
        what = f"no dataset {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StoreError(f"{path}: not a readable store ({what}); it was probably cut short (a full disk or an "
                         f"interrupted copy): delete it and rerun {remake_command(path)}") from None


class StoreWriter:
    """Writes rows of a store in any order and in chunks, resuming from a previous `.partial`.

    Args:
        path: final store path (`*.h5`).
        file_ids: the rows, in order.
        extractor: extractor name, e.g. "compare".
        settings: JSON-able dict of everything that changes the numbers.
        corpus_fingerprint: `Corpus.fingerprint` of the corpus the rows come from.
        corpus_root: recorded for people, not compared.
    """

    def __init__(self, path, file_ids: Sequence[str], extractor: str, settings: dict, corpus_fingerprint: str,
                 corpus_root: str = ""):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.file_ids = [str(f) for f in file_ids]
        self.attrs = {"extractor": extractor, "settings": _canonical(settings), "corpus": corpus_fingerprint,
                      "corpus_root": str(corpus_root)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resumed = self._open()

    def _open(self) -> int:
        """Opens the partial file; returns how many rows an earlier run already wrote."""
        if self.partial.exists():
            try:
                f = h5py.File(self.partial, "a")
                same = all(f.attrs.get(k) == v for k, v in self.attrs.items())
                ids = [s.decode() for s in f["file_ids"][()]] if "file_ids" in f else None
                if same and ids == self.file_ids:
                    self.h5 = f
                    return int(f["done"][()].sum())
                f.close()
            except (OSError, KeyError):
                pass  # a partial file broken by a hard kill: start it again
            self.partial.unlink()
        self.h5 = h5py.File(self.partial, "w")
        for k, v in self.attrs.items():
            self.h5.attrs[k] = v
        self.h5.attrs["complete"] = False
        self.h5.create_dataset("file_ids", data=np.array(self.file_ids, dtype=object),
                               dtype=h5py.string_dtype())
        self.h5.create_dataset("done", data=np.zeros(len(self.file_ids), dtype=bool))
        self.h5.flush()
        return 0

    def pending(self) -> np.ndarray:
        """Indices of rows not written yet."""
        return np.flatnonzero(~self.h5["done"][()])

    def write(self, indices: Sequence[int], rows: np.ndarray) -> None:
        indices = np.asarray(indices)
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(indices):
            raise ValueError(f"expected [{len(indices)}, dims] rows, got {rows.shape}")
        if "embeddings" not in self.h5:
            n = len(self.file_ids)
            self.h5.create_dataset("embeddings", shape=(n, rows.shape[1]), dtype="float32",
                                   chunks=(min(n, 256), rows.shape[1]))
            self.h5.attrs["dims"] = rows.shape[1]
        emb = self.h5["embeddings"]
        if rows.shape[1] != emb.shape[1]:
            raise ValueError(f"rows have {rows.shape[1]} dims, store has {emb.shape[1]}")
        order = np.argsort(indices)  # h5py fancy indexing needs increasing indices
        emb[indices[order]] = rows[order]
        done = self.h5["done"]
        done[indices[order]] = True
        self.h5.flush()

    def finish(self) -> Path:
        """Marks the store complete and moves it into place; fails if any row is missing."""
        missing = self.pending()
        if len(missing):
            raise StoreError(f"{self.partial}: {len(missing)} row(s) not written yet")
        self.h5.attrs["complete"] = True
        self.h5.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.close()


def build_store(path, file_ids: Sequence[str], embed: Callable[[list[str]], np.ndarray], *, extractor: str,
                settings: dict, corpus_fingerprint: str, corpus_root: str = "", batch_size: int = 16,
                progress: bool = True, desc: str | None = None) -> Path:
    """Runs `embed` over `file_ids` in batches into a store, resuming an interrupted run.

    `embed(ids) -> [len(ids), dims]` may raise AudioError for a bad file: the batch is then retried one file at a
    time, every other row is still written, and the bad files are listed together at the end (the store stays
    `.partial`, so a rerun after fixing them computes only those).

    Returns:
        the path of the complete store. If it already exists (complete) and matches, nothing is recomputed.
    """
    path = Path(path)
    if path.exists():
        check_store(path, extractor=extractor, settings=settings, corpus_fingerprint=corpus_fingerprint)
        return path
    writer = StoreWriter(path, file_ids, extractor, settings, corpus_fingerprint, corpus_root)
    failures: list[str] = []
    try:
        todo = writer.pending()
        bar = progress_bar(total=len(file_ids), initial=len(file_ids) - len(todo), desc=desc or extractor,
                           unit="clip", enabled=progress)
        with bar:
            for start in range(0, len(todo), batch_size):
                idx = todo[start:start + batch_size]
                ids = [writer.file_ids[i] for i in idx]
                try:
                    writer.write(idx, embed(ids))
                except AudioError:
                    for i, fid in zip(idx, ids):
                        try:
                            writer.write([i], embed([fid]))
                        except AudioError as exc:
                            failures.append(str(exc))
                bar.update(len(idx))
        if failures:
            raise StoreError(
                f"{len(failures)} file(s) could not be read; every other row is saved in {writer.partial} and a "
                "rerun computes only the missing ones:\n" + "\n".join(f"  - {f}" for f in failures))
        return writer.finish()
    finally:
        writer.close()


def store_attrs(path) -> dict:
    with _reading(path) as f:
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    attrs["settings"] = json.loads(attrs.get("settings", "{}"))
    return attrs


def store_identity(path) -> str:
    """`name@digest`: the store's file name and a digest of what made it (extractor, settings, corpus).

    What a trained head records of its inputs: it survives moving the work folder or calling from another
    directory, and changes when a store is rebuilt differently (e.g. a real checkpoint replacing a demo encoder).
    """
    import hashlib

    attrs = store_attrs(path)
    made = {k: attrs.get(k) for k in ("extractor", "settings", "corpus")}
    return f"{Path(path).name}@{hashlib.sha1(_canonical(made).encode()).hexdigest()[:12]}"


def check_store(path, *, extractor: str | None = None, settings: dict | None = None,
                corpus_fingerprint: str | None = None) -> dict:
    """Refuses a store that is missing, incomplete, or made from another corpus, extractor or settings.

    Returns its attributes. The error says which of these differs and how.
    """
    path = Path(path)
    if not path.exists():
        hint = f" (an interrupted run left {partial_path(path)}; rerun to resume)" if partial_path(path).exists() else ""
        raise StoreError(f"{path}: no such store{hint}")
    attrs = store_attrs(path)
    if not attrs.get("complete", False):
        raise StoreError(f"{path}: store is incomplete")
    if corpus_fingerprint is not None and attrs.get("corpus") != corpus_fingerprint:
        raise StoreError(f"{path}: made from another corpus ({attrs.get('corpus_root')}, fingerprint "
                         f"{attrs.get('corpus')}) than this one (fingerprint {corpus_fingerprint}); delete it to rebuild")
    if extractor is not None and attrs.get("extractor") != extractor:
        raise StoreError(f"{path}: made by extractor {attrs.get('extractor')!r}, not {extractor!r}")
    if settings is not None:
        ours = json.loads(_canonical(settings))
        diff = sorted(k for k in set(ours) | set(attrs["settings"]) if ours.get(k) != attrs["settings"].get(k))
        if diff:
            detail = ", ".join(f"{k}: store has {attrs['settings'].get(k)!r}, wanted {ours.get(k)!r}" for k in diff)
            raise StoreError(f"{path}: made with other extractor settings ({detail}); delete it to rebuild")
    return attrs


def read_store(path, file_ids: Sequence[str], *, corpus_fingerprint: str | None = None,
               extractor: str | None = None, settings: dict | None = None) -> np.ndarray:
    """Rows of a complete store aligned to `file_ids` (e.g. one corpus split), as float32 `[len(file_ids), dims]`."""
    check_store(path, extractor=extractor, settings=settings, corpus_fingerprint=corpus_fingerprint)
    with _reading(path) as f:
        stored = [s.decode() for s in f["file_ids"][()]]
        emb = f["embeddings"][()]
    row_of = {fid: i for i, fid in enumerate(stored)}
    missing = [fid for fid in file_ids if fid not in row_of]
    if missing:
        raise StoreError(f"{path}: {len(missing)} requested File_ID(s) not in the store, e.g. {missing[:5]}")
    return emb[[row_of[fid] for fid in file_ids]]


def read_fused(paths: Sequence, file_ids: Sequence[str], *, corpus_fingerprint: str | None = None) -> np.ndarray:
    """Early fusion: the stores' rows for `file_ids`, concatenated in the order of `paths`."""
    return np.concatenate([read_store(p, file_ids, corpus_fingerprint=corpus_fingerprint) for p in paths], axis=1)
