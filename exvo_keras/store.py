"""The embedding store: one HDF5 file per feature set.

Layout (an interface other code and outside checks rely on):
- dataset `embeddings` `[n, dims]` float32, dataset `file_ids` (the corpus's File_ID strings), dataset
  `file_digests` beside it (`Corpus.file_digest` of each row's wav when the row was computed);
- SSL stores also hold dataset `layers` `[n, hidden layers + 1, dims]` float32: every hidden state's utterance
  embedding from the same pass (`exvo_keras.features.ssl`); `read_store(..., layer=k)` reads one of them and
  `layer=ALL_LAYERS` all;
- attributes `extractor` (name), `settings` (JSON of everything that changes the numbers), `corpus`
  (the corpus fingerprint), `corpus_root`, `dims`, `complete`.

A store is written to `<path>.partial` with a per-row `done` mask and renamed to `<path>` only when every row is
in, so a file at `<path>` is always complete and an interrupted extraction resumes from its `.partial`.

A row stands for one File_ID *and the audio it was computed from*: an extraction with the same extractor and
settings takes every row whose (File_ID, digest) is unchanged from the `.partial` or the complete store and
computes only new and changed clips (fixing one file of ExVo's 59,201 costs one clip, not an hour), and reading
checks the digests of the rows it reads, so the other rows of a store made before a file was fixed stay usable.
Stores written before digests were kept (no `file_digests`) are vouched for by the whole-corpus fingerprint
alone, as they were then.

Shards: a long extraction may run as N independent jobs, shard I (a `Shard`) taking the corpus's clips I, I + N,
I + 2N, ... into its own store whose settings add `"shard": "I/N"` (`exvo_keras.workspace.shard_store` names the
file); `merge_shards` joins the complete shards into the normal store over the whole corpus.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import h5py
import numpy as np

from exvo_keras.data.audio import AudioError
from exvo_keras.progress import progress_bar


class StoreError(ValueError):
    """A store that is missing, incomplete, or made from another corpus or other settings."""


EMBEDDINGS = "embeddings"
LAYERS = "layers"
ROW_DATASETS = (EMBEDDINGS, LAYERS)  # the datasets that hold one entry per row, in the order written
ALL_LAYERS = "all"  # `read_store(..., layer=ALL_LAYERS)`: every layer, `[rows, layers, dims]`


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


def _strings(dataset) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in dataset[()]]


def _vouched(f, file_ids: Sequence[str], digests: Sequence[str] | None, fingerprint: str | None) -> dict[int, int]:
    """Rows of the open store `f` that hold what `file_ids` would give now, as {wanted row: row of `f`}.

    A written row counts when its File_ID is wanted and its audio is unchanged: by per-file digest where both the
    store and the caller have them, else by the whole-corpus fingerprint (stores from before digests were kept,
    callers that know only the fingerprint).
    """
    if "embeddings" not in f:
        return {}
    ids = _strings(f["file_ids"])
    done = f["done"][()] if "done" in f else np.full(len(ids), bool(f.attrs.get("complete", False)))
    if digests is not None and "file_digests" in f:
        position = {key: i for i, key in enumerate(zip(file_ids, digests))}
        keys = list(zip(ids, _strings(f["file_digests"])))
    elif fingerprint and f.attrs.get("corpus") == fingerprint:
        position = {fid: i for i, fid in enumerate(file_ids)}
        keys = ids
    else:
        return {}
    return {position[k]: j for j, k in enumerate(keys) if done[j] and k in position}


class StoreWriter:
    """Writes rows of a store in any order and in chunks, starting from every row an earlier run left that still
    holds: its `.partial` (an interrupted run) or the complete store (made before clips were fixed, added or
    removed), as long as the extractor and settings are the same.

    Args:
        path: final store path (`*.h5`).
        file_ids: the rows, in order.
        extractor: extractor name, e.g. "compare".
        settings: JSON-able dict of everything that changes the numbers.
        corpus_fingerprint: `Corpus.fingerprint` of the corpus the rows come from.
        corpus_root: recorded for people, not compared.
        file_digests: `Corpus.file_digest` of each row's wav, aligned with `file_ids`; without them rows are
            reused only from a store of the same corpus fingerprint.
    """

    COPY_ROWS = 4096  # rows read at a time when taking rows over from an earlier file

    def __init__(self, path, file_ids: Sequence[str], extractor: str, settings: dict,
                 corpus_fingerprint: str | None = None, corpus_root: str = "",
                 file_digests: Sequence[str] | None = None):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.file_ids = [str(f) for f in file_ids]
        self.file_digests = None if file_digests is None else [str(d) for d in file_digests]
        if self.file_digests is not None and len(self.file_digests) != len(self.file_ids):
            raise ValueError(f"{len(self.file_digests)} file digests for {len(self.file_ids)} File_IDs")
        self.attrs = {"extractor": extractor, "settings": _canonical(settings), "corpus": corpus_fingerprint or "",
                      "corpus_root": str(corpus_root)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resumed = self._open()

    def _same_recipe(self, f) -> bool:
        return all(f.attrs.get(k) == self.attrs[k] for k in ("extractor", "settings"))

    def _vouched(self, f) -> dict[int, int]:
        return _vouched(f, self.file_ids, self.file_digests, self.attrs["corpus"]) if self._same_recipe(f) else {}

    def _open(self) -> int:
        """Opens the partial file, filled with every reusable row; returns how many rows that is."""
        if self.partial.exists() and self._continue_partial():
            self._take_rows_from([self.path])
        else:
            # Built beside and moved into place, so the old partial can be read from until the new one is whole.
            fresh = self.partial.with_name(self.partial.name + ".new")
            self.h5 = h5py.File(fresh, "w")
            self.h5.attrs["complete"] = False
            self.h5.create_dataset("file_ids", data=np.array(self.file_ids, dtype=object), dtype=h5py.string_dtype())
            self.h5.create_dataset("done", data=np.zeros(len(self.file_ids), dtype=bool))
            self._write_identity()
            self._take_rows_from([self.partial, self.path])
            self.h5.close()
            os.replace(fresh, self.partial)
            self.h5 = h5py.File(self.partial, "a")
        return int(self.h5["done"][()].sum())

    def _continue_partial(self) -> bool:
        """Resumes the partial file in place when it has the same rows in the same order (an interrupted run)."""
        try:
            f = h5py.File(self.partial, "a")
        except OSError:
            return False  # a partial file broken by a hard kill: start it again
        try:
            if not self._same_recipe(f) or _strings(f["file_ids"]) != self.file_ids:
                f.close()
                return False
            keep = np.zeros(len(self.file_ids), dtype=bool)
            keep[list(self._vouched(f))] = True
            # Clear the rows whose audio changed before recording the new digests: a row marked done must never
            # carry a digest it was not computed from, even if this is interrupted.
            f["done"][...] = f["done"][()] & keep
            f.flush()
        except (OSError, KeyError):
            f.close()
            return False
        self.h5 = f
        self._write_identity()
        return True

    def _write_identity(self) -> None:
        for k, v in self.attrs.items():
            self.h5.attrs[k] = v
        digests = None if self.file_digests is None else np.array(self.file_digests, dtype=object)
        if "file_digests" in self.h5 and digests is not None:
            self.h5["file_digests"][...] = digests
        elif "file_digests" in self.h5:
            del self.h5["file_digests"]  # rows written now would carry digests they were not computed from
        elif digests is not None:
            self.h5.create_dataset("file_digests", data=digests, dtype=h5py.string_dtype())
        self.h5.flush()

    def _take_rows_from(self, paths) -> None:
        """Copies every row still missing here that one of these files (same extractor and settings) holds."""
        for path in paths:
            if not path.exists():
                continue
            try:
                with h5py.File(path, "r") as f:
                    done = self.h5["done"][()]
                    pairs = sorted((j, i) for i, j in self._vouched(f).items() if not done[i])
                    if not pairs:
                        continue
                    source = np.array([j for j, _ in pairs])
                    target = np.array([i for _, i in pairs])
                    datasets = [f[name] for name in ROW_DATASETS if name in f]
                    # contiguous blocks: h5py's reads of scattered rows are slow
                    for start in range(0, datasets[0].shape[0], self.COPY_ROWS):
                        inside = (source >= start) & (source < start + self.COPY_ROWS)
                        if inside.any():
                            self.write(target[inside], {d.name.lstrip("/"): d[start:start + self.COPY_ROWS][
                                source[inside] - start] for d in datasets})
            except (OSError, KeyError):
                pass  # a file broken by a hard kill: whatever it gave is kept, the rest is computed

    def pending(self) -> np.ndarray:
        """Indices of rows not written yet."""
        return np.flatnonzero(~self.h5["done"][()])

    def write(self, indices: Sequence[int], rows) -> None:
        """Writes `rows` (`[len(indices), dims]`, or {dataset: rows} with `embeddings` and optionally `layers`
        `[len(indices), layers, dims]`) at `indices` and marks them done."""
        indices = np.asarray(indices)
        rows = {EMBEDDINGS: rows} if not isinstance(rows, dict) else rows
        if set(rows) - set(ROW_DATASETS) or EMBEDDINGS not in rows:
            raise ValueError(f"rows for datasets {sorted(rows)}: expected {EMBEDDINGS!r} and optionally {LAYERS!r}")
        rows = {name: np.asarray(value, dtype=np.float32) for name, value in rows.items()}
        order = np.argsort(indices)  # h5py fancy indexing needs increasing indices
        indices = indices[order]
        if len(indices) and indices[-1] - indices[0] + 1 == len(indices):
            where = slice(int(indices[0]), int(indices[-1]) + 1)  # a run of rows: a slice is far faster
        else:
            where = indices
        for name in ROW_DATASETS:
            if name in rows:
                self._dataset(name, rows[name], len(indices))[where] = rows[name][order]
            elif name in self.h5:
                raise ValueError(f"{self.partial}: holds {name!r}, but these rows have none")
        self.h5["done"][where] = True
        self.h5.flush()

    def _dataset(self, name: str, rows: np.ndarray, count: int):
        want = 2 if name == EMBEDDINGS else 3
        if rows.ndim != want or rows.shape[0] != count:
            raise ValueError(f"{name}: expected [{count}, {'layers, ' if want == 3 else ''}dims] rows, got "
                             f"{rows.shape}")
        if name not in self.h5:
            n = len(self.file_ids)
            # One layer of a few rows per chunk: a head reads one layer of every row, and chunks stay small
            # enough for h5py's 1 MB chunk cache when a 64-clip write touches every layer.
            chunks = (min(n, 256), rows.shape[1]) if want == 2 else (min(n, 16), 1, rows.shape[2])
            self.h5.create_dataset(name, shape=(n, *rows.shape[1:]), dtype="float32", chunks=chunks)
            if name == EMBEDDINGS:
                self.h5.attrs["dims"] = rows.shape[1]
        dataset = self.h5[name]
        if rows.shape[1:] != dataset.shape[1:]:
            raise ValueError(f"{name}: rows have shape {rows.shape[1:]} each, store has {dataset.shape[1:]}")
        return dataset

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


def _rows_of(corpus, file_ids: Sequence[str], corpus_fingerprint: str | None, corpus_root: str):
    """(fingerprint, per-row digests or None, root) of the rows `file_ids`, from `corpus` when given."""
    if corpus is None:
        return corpus_fingerprint, None, corpus_root
    return corpus.fingerprint, [corpus.file_digest(fid) for fid in file_ids], corpus_root or str(corpus.root)


def _another_corpus(path, attrs: dict, root, fingerprint, digests_compared: bool) -> StoreError:
    if digests_compared:
        return StoreError(f"{path}: made from another corpus: none of its rows matches a clip of {root} now "
                          f"(File_ID and audio); delete it and rerun {remake_command(path, attrs.get('extractor'), root)}")
    return StoreError(f"{path}: made from another corpus ({attrs.get('corpus_root')}, fingerprint "
                      f"{attrs.get('corpus')}) than this one (fingerprint {fingerprint}); delete it to rebuild")


def _before_digests(path, attrs: dict, root, fingerprint) -> StoreError:
    return StoreError(f"{path}: made before stores kept per-file digests, from other audio than {root} holds now "
                      f"(corpus fingerprint {attrs.get('corpus')}, now {fingerprint}: files changed since, or another "
                      "corpus), so which of its rows still hold cannot be told; delete it and rerun "
                      f"{remake_command(path, attrs.get('extractor'), root)}")


def build_store(path, file_ids: Sequence[str], embed: Callable[[list[str]], np.ndarray], *, extractor: str,
                settings: dict, corpus=None, corpus_fingerprint: str | None = None, corpus_root: str = "",
                batch_size: int = 16, progress: bool = True, desc: str | None = None,
                plan: Callable[[list[str]], None] | None = None) -> Path:
    """Runs `embed` over `file_ids` in batches into a store, computing only the rows no earlier run left.

    `embed(ids) -> [len(ids), dims]` (or {dataset: rows}, see `StoreWriter.write`) may raise AudioError for a bad
    file: the batch is then retried one file at a time, every other row is still written, and the bad files are
    listed together at the end (the store stays `.partial`, so a rerun after fixing them computes only those).

    Args:
        corpus: the `Corpus` the rows come from (its fingerprint, root and per-file digests). Without it,
            `corpus_fingerprint` and `corpus_root`, and rows are reused only from a store of the same fingerprint.
        plan: called once, before the first `embed`, with every id to compute in the order `embed` gets them
            (so that their audio can be decoded ahead).

    Returns:
        the path of the complete store. If it already exists with these rows from the same audio, nothing is
        recomputed; if it has the same extractor and settings, only the clips added or changed since are.

    Raises:
        StoreError: a complete store at `path` made by another extractor or settings, or none of whose rows
            belongs to this corpus (delete it to rebuild), or files that could not be read.
    """
    path = Path(path)
    file_ids = [str(f) for f in file_ids]
    fingerprint, digests, root = _rows_of(corpus, file_ids, corpus_fingerprint, corpus_root)
    if path.exists():
        attrs = check_store(path, extractor=extractor, settings=settings)
        with _reading(path) as f:
            vouched = _vouched(f, file_ids, digests, fingerprint)
            same_rows = _strings(f["file_ids"]) == file_ids
            has_digests = "file_digests" in f
        if same_rows and len(vouched) == len(file_ids) and (digests is None or has_digests):
            return path
        if file_ids and not vouched:
            if digests is not None and not has_digests:
                raise _before_digests(path, attrs, root, fingerprint)
            raise _another_corpus(path, attrs, root, fingerprint, digests_compared=digests is not None)
    writer = StoreWriter(path, file_ids, extractor, settings, fingerprint, root, digests)
    failures: list[str] = []
    try:
        todo = writer.pending()
        if plan is not None:
            plan([writer.file_ids[i] for i in todo])
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
    # Keeping every layer beside the embeddings does not change them: a store re-extracted with its layers is
    # the same input to the heads trained on the one made before.
    settings = {k: v for k, v in attrs["settings"].items() if k != "layers"}
    made = {"extractor": attrs.get("extractor"), "settings": settings, "corpus": attrs.get("corpus")}
    return f"{Path(path).name}@{hashlib.sha1(_canonical(made).encode()).hexdigest()[:12]}"


def check_store(path, *, extractor: str | None = None, settings: dict | None = None,
                corpus_fingerprint: str | None = None, corpus=None, file_ids: Sequence[str] | None = None) -> dict:
    """Refuses a store that is missing, incomplete, or made from another corpus, extractor or settings.

    `corpus` (a `Corpus`) checks the rows `file_ids` (default: every row of the store that is a clip of the corpus)
    against the audio the corpus holds now, by per-file digest: rows of other clips may have changed. The
    stricter `corpus_fingerprint` refuses a store unless it was made from exactly this corpus state.

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
        raise _another_corpus(path, attrs, None, corpus_fingerprint, digests_compared=False)
    if extractor is not None and attrs.get("extractor") != extractor:
        raise StoreError(f"{path}: made by extractor {attrs.get('extractor')!r}, not {extractor!r}")
    if settings is not None:
        ours = json.loads(_canonical(settings))
        diff = sorted(k for k in set(ours) | set(attrs["settings"]) if ours.get(k) != attrs["settings"].get(k))
        if diff:
            detail = ", ".join(f"{k}: store has {attrs['settings'].get(k)!r}, wanted {ours.get(k)!r}" for k in diff)
            raise StoreError(f"{path}: made with other extractor settings ({detail}); delete it to rebuild")
    if corpus is not None:
        _check_audio(path, attrs, corpus, file_ids)
    return attrs


def _check_audio(path, attrs: dict, corpus, file_ids: Sequence[str] | None) -> None:
    with _reading(path) as f:
        stored = _strings(f["file_ids"])
        digests = _strings(f["file_digests"]) if "file_digests" in f else None
    if digests is None:
        if attrs.get("corpus") != corpus.fingerprint:
            raise _before_digests(path, attrs, corpus.root, corpus.fingerprint)
        return
    stored_digest = dict(zip(stored, digests))
    in_corpus = set(corpus.file_ids())
    checked = [fid for fid in (corpus.file_ids() if file_ids is None else file_ids) if fid in stored_digest]
    changed = [fid for fid in checked if stored_digest[fid] != corpus.file_digest(fid)]
    if not changed:
        return
    if all(stored_digest[fid] != corpus.file_digest(fid) for fid in stored if fid in in_corpus):
        raise _another_corpus(path, attrs, corpus.root, corpus.fingerprint, digests_compared=True)
    examples = ", ".join(f"{fid} ({corpus.wav_path(fid)})" for fid in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    raise StoreError(f"{path}: {len(changed)} of {len(checked)} row(s) were computed from audio that has changed "
                     f"since: {examples}{more}; rerun {remake_command(path, attrs.get('extractor'), corpus.root)} "
                     "to recompute just those rows")


def store_layers(path) -> int:
    """How many layers the store's `layers` dataset holds (0: none, e.g. a store made before SSL stores kept
    every layer, or a store of another extractor)."""
    with _reading(path) as f:
        return int(f[LAYERS].shape[1]) if LAYERS in f else 0


def _no_layers(path, extractor: str | None, data=None) -> StoreError:
    """What a layer choice on a store without `layers` is told, naming why and the command that fixes it."""
    if extractor == "ssl":
        hint = (f"it was made before SSL stores kept every layer, or with --default-layer-only; delete it and "
                f"rerun {remake_command(path, extractor, data)} to keep every layer from one pass")
    else:
        hint = f"only SSL stores hold layers ({extractor!r} made this one); drop the layer choice"
    return StoreError(f"{path}: keeps no layers beside its embeddings, no layers to choose from ({hint})")


def layer_count(path, data=None) -> int:
    """How many layers the store keeps (its `layers`); a StoreError naming the fix when it keeps none. `data`
    (the corpus folder) goes into the command the message names."""
    count = store_layers(path)
    if not count:
        raise _no_layers(path, store_attrs(path).get("extractor"), data)
    return count


def _layer_index(path, layer, count: int, attrs: dict) -> int | slice:
    """Where `layer` (an index, negative from the end, or ALL_LAYERS) lies in the store's `layers`."""
    if count == 0:
        raise _no_layers(path, attrs.get("extractor"))
    if layer == ALL_LAYERS:
        return slice(None)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -count <= layer < count:
        raise StoreError(f"{path}: layer {layer!r}: the store holds layers 0..{count - 1} (hidden_states) or "
                         f"{ALL_LAYERS!r}")
    return int(layer) % count


def read_store(path, file_ids: Sequence[str], *, corpus=None, corpus_fingerprint: str | None = None,
               extractor: str | None = None, settings: dict | None = None, layer=None) -> np.ndarray:
    """Rows of a complete store aligned to `file_ids` (e.g. one corpus split), as float32 `[len(file_ids), dims]`.

    With `corpus`, each row read must come from the audio its clip has now (see `check_store`). `layer` (SSL
    stores): None reads `embeddings` (the layer the store was extracted for), an int `k` reads
    ``hidden_states[k]``'s embedding from `layers`, and ALL_LAYERS every layer, `[len(file_ids), layers, dims]`.
    """
    attrs = check_store(path, extractor=extractor, settings=settings, corpus_fingerprint=corpus_fingerprint,
                        corpus=corpus, file_ids=file_ids)
    with _reading(path) as f:
        stored = _strings(f["file_ids"])
        row_of = {fid: i for i, fid in enumerate(stored)}
        missing = [fid for fid in file_ids if fid not in row_of]
        if missing:
            raise StoreError(f"{path}: {len(missing)} requested File_ID(s) not in the store, e.g. {missing[:5]}")
        if layer is None:
            dataset, index = f[EMBEDDINGS], ()
        else:
            dataset = f[LAYERS] if LAYERS in f else None
            index = (_layer_index(path, layer, 0 if dataset is None else int(dataset.shape[1]), attrs),)
        return _rows(dataset, [row_of[fid] for fid in file_ids], index)


def _rows(dataset, rows: Sequence[int], index: tuple, block_bytes: int = 64 << 20) -> np.ndarray:
    """`dataset[rows][:, *index]`, reading the dataset a block of contiguous rows at a time (blocks holding no row
    asked for are skipped): memory holds the rows asked for (one split) and one block, not the dataset (every
    layer of ExVo's 59,201 clips is 12 GB for WavLM-large); h5py reads blocks far faster than scattered rows."""
    rows = np.asarray(rows, np.int64)
    row_shape = dataset[(slice(0, 1), *index)].shape[1:]
    out = np.empty((len(rows), *row_shape), np.float32)
    step = max(1, block_bytes // max(1, 4 * int(np.prod(row_shape))))
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    for start in range(0, int(dataset.shape[0]), step):
        lo, hi = np.searchsorted(sorted_rows, [start, start + step])
        if lo < hi:
            block = dataset[(slice(start, start + step), *index)]
            out[order[lo:hi]] = block[sorted_rows[lo:hi] - start]
    return out


def read_fused(paths: Sequence, file_ids: Sequence[str], *, corpus=None,
               corpus_fingerprint: str | None = None, layer=None) -> np.ndarray:
    """Early fusion: the stores' rows for `file_ids`, concatenated in the order of `paths`.

    `layer` (see `read_store`) applies to the stores that hold layers; the others are read whole. ALL_LAYERS
    gives `[rows, layers, dims]` and so takes exactly one store.
    """
    if layer is None:
        return np.concatenate([read_store(p, file_ids, corpus=corpus, corpus_fingerprint=corpus_fingerprint)
                               for p in paths], axis=1)
    layered = [p for p in paths if store_layers(p) or store_attrs(p).get("extractor") == "ssl"]
    if not layered:
        raise StoreError(f"layer {layer!r} chosen, but none of {', '.join(str(p) for p in paths)} holds layers "
                         "(only SSL stores do)")
    if layer == ALL_LAYERS and len(paths) != 1:
        raise StoreError(f"a weighted sum of layers reads one store, not the fusion of {len(paths)}: "
                         + ", ".join(str(p) for p in paths))
    return np.concatenate([read_store(p, file_ids, corpus=corpus, corpus_fingerprint=corpus_fingerprint,
                                      layer=layer if p in layered else None) for p in paths], axis=-1)


# Shards -------------------------------------------------------------------------------------------------------

class Shard(NamedTuple):
    """Shard `index` of `count` of an extraction: the clips at positions index, index + count, ... of the corpus
    (interleaved, so every shard gets a similar mix of lengths and splits)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def ids(self, file_ids: Sequence[str]) -> list[str]:
        return list(file_ids)[self.index::self.count]


def parse_shard(shard) -> Shard | None:
    """``"I/N"`` or ``(I, N)`` -> `Shard` with 0 <= I < N; None stays None.

    Example:
        >>> parse_shard("1/4"), str(parse_shard((1, 4)))
        (Shard(index=1, count=4), '1/4')
    """
    if shard is None:
        return None
    try:
        i, n = (shard.split("/") if isinstance(shard, str) else shard)
        i, n = int(i), int(n)
    except (ValueError, TypeError):
        raise ValueError(f"shard {shard!r}: expected 'I/N' with 0 <= I < N, e.g. '0/4'") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {shard!r}: expected 'I/N' with 0 <= I < N, e.g. '0/4'")
    return Shard(i, n)


def merge_shards(paths: Sequence, out_path, corpus, *, progress: bool = False) -> Path:
    """Joins complete shard stores of one extraction into the normal store over the whole corpus.

    Refuses (StoreError, naming the files) shards that are missing or incomplete, made from another corpus, by
    another extractor or with other settings, that are not shard stores, and a set of shards that misses or
    duplicates File_IDs of the corpus. The merged store has the settings of an unsharded extraction, so reading
    it with the extraction's settings (e.g. ``exvo_keras.features.ssl.ssl_settings``) accepts it. If `out_path`
    is already complete with those settings it is returned as is.

    Example:
        >>> merge_shards(shard_stores(ws.store("wavlm")), ws.store("wavlm"), corpus)  # doctest: +SKIP
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise StoreError("merge_shards: no shard stores given")
    attrs = [check_store(p, corpus=corpus) for p in paths]
    for path, a in zip(paths, attrs):
        if "shard" not in a["settings"]:
            raise StoreError(f"{path}: not a shard store (its settings have no 'shard')")
    base = {k: v for k, v in attrs[0]["settings"].items() if k != "shard"}
    for path, a in zip(paths[1:], attrs[1:]):
        if a["extractor"] != attrs[0]["extractor"]:
            raise StoreError(f"{path}: made by extractor {a['extractor']!r}, {paths[0]} by "
                             f"{attrs[0]['extractor']!r}")
        other = {k: v for k, v in a["settings"].items() if k != "shard"}
        diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
        if diff:
            detail = ", ".join(f"{k}: {base.get(k)!r} vs {other.get(k)!r}" for k in diff)
            raise StoreError(f"shards {paths[0]} and {path} were made with different settings ({detail})")

    where: dict[str, tuple[int, int]] = {}
    duplicates = []
    for s, path in enumerate(paths):
        with _reading(path) as f:
            ids = _strings(f["file_ids"])
        for row, fid in enumerate(ids):
            if fid in where:
                duplicates.append(f"{fid} ({paths[where[fid][0]].name} and {path.name})")
            else:
                where[fid] = (s, row)
    if duplicates:
        raise StoreError(f"shards overlap: {len(duplicates)} File_ID(s) in more than one shard, e.g. "
                         + "; ".join(duplicates[:5]))
    file_ids = corpus.file_ids()
    missing = [fid for fid in file_ids if fid not in where]
    extra = sorted(set(where) - set(file_ids))
    if missing:
        labels = sorted({a["settings"]["shard"] for a in attrs})
        raise StoreError(f"shards {', '.join(labels)} miss {len(missing)} of the corpus's {len(file_ids)} clips, "
                         f"e.g. {missing[:5]}; extract the missing shard(s) first")
    if extra:
        raise StoreError(f"shards hold {len(extra)} File_ID(s) not in the corpus, e.g. {extra[:5]}")

    handles = [h5py.File(p, "r") for p in paths]
    try:
        names = [name for name in ROW_DATASETS if name in handles[0]]

        def rows(ids):
            out = {name: np.zeros((len(ids), *handles[0][name].shape[1:]), np.float32) for name in names}
            for s, handle in enumerate(handles):
                picks = [(k, where[fid][1]) for k, fid in enumerate(ids) if where[fid][0] == s]
                if picks:
                    picks.sort(key=lambda p: p[1])  # h5py reads increasing indices
                    for name in names:
                        out[name][[k for k, _ in picks]] = handle[name][[r for _, r in picks]]
            return out

        return build_store(out_path, file_ids, rows, extractor=attrs[0]["extractor"], settings=base,
                           corpus=corpus, batch_size=4096, progress=progress, desc="merging shards")
    finally:
        for handle in handles:
            handle.close()
