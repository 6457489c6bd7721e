"""The work folder's layout: every path under WORK, and inside a network's or a system's run folder, is named here.

    WORK/signals/<source>/<raw|zff>/       cached waveforms (source: "exvo", or "list-<sha1>" of a labelled list)
    WORK/features/<name>.h5                a feature store (SSL shards: <name>.shard<I>of<N>.h5 beside it)
    WORK/networks/<name>/                  a frame CNN's training run (`NetworkFolder`)
    WORK/runs/<key>/                       a registered system's seeds, or a hybrid (`RunFolder`)

Reports (`ReportFolder`) go to their own folder (results/ by default), not under WORK.

Stdlib only, and no other package module: anything may import it. The folder classes take any path, so a run made
outside a work folder (`train-mtl --out DIR`, a test's tmp_path) has the same files; they are `os.PathLike`, so a
function that takes a folder path takes them too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_SHARD = re.compile(r"\.shard(\d+)of(\d+)$")


def shard_store(store: Path, index: int, count: int) -> Path:
    """Shard `index` of `count` of a store: ``features/wavlm.h5`` -> ``features/wavlm.shard1of4.h5``."""
    store = Path(store)
    return store.with_name(f"{store.stem}.shard{index}of{count}{store.suffix}")


def shard_stores(store: Path) -> list[Path]:
    """The shard stores lying beside `store` (any count), sorted by name."""
    store = Path(store)
    return sorted(p for p in store.parent.glob(f"{store.stem}.shard*of*{store.suffix}")
                  if _SHARD.search(p.name[: -len(store.suffix)]))


@dataclass(frozen=True)
class _Place(os.PathLike):
    """A folder as a value: built from any path, and a path again wherever one is taken."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:  # messages name the folder, not the object
        return str(self.path)


@dataclass(frozen=True)
class _Folder(_Place):
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        """What the run was made with (`exvo_keras.runs.claim_run_dir`)."""
        return self.path / "config.json"


@dataclass(frozen=True)
class SeedFolder(_Folder):
    """`seed_<k>/` of a system's run folder."""

    @property
    def seed(self) -> int:
        return int(self.path.name.split("_", 1)[1])

    @property
    def model(self) -> Path:
        return self.path / "model.keras"

    @property
    def history(self) -> Path:
        return self.path / "history.json"

    @property
    def metrics(self) -> Path:
        """Written last: its presence marks the seed as finished."""
        return self.path / "metrics.json"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard logs of the seed's training (`train/`, `validation/`): `tensorboard --logdir RUN_DIR`."""
        return self.path / "tensorboard"

    def predictions(self, split: str) -> Path:
        return self.path / f"predictions_{split}.csv"


@dataclass(frozen=True)
class RunFolder(_Folder):
    """A system's run folder: one `SeedFolder` per seed, the summary over seeds and, for a hybrid, its sources."""

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def sources(self) -> Path:
        """A hybrid's resolved {task: source}."""
        return self.path / "sources.json"

    @property
    def auto_choice(self) -> Path:
        """What an auto hybrid chose, with the Val scores that decided."""
        return self.path / "auto_choice.json"

    def seed(self, seed: int) -> SeedFolder:
        return SeedFolder(self.path / f"seed_{seed}")

    def seeds(self) -> list[SeedFolder]:
        """Every seed folder present, finished or not, by seed."""
        found = [SeedFolder(p) for p in self.path.glob("seed_*") if p.is_dir()]
        return sorted(found, key=lambda s: s.seed)


@dataclass(frozen=True)
class NetworkFolder(_Folder):
    """A frame CNN's training run (`exvo_keras.training.frame_cnn`) and what the stages write beside it."""

    @property
    def best(self) -> Path:
        """The checkpoint with the lowest cross-validation loss: the trained network."""
        return self.path / "best.keras"

    @property
    def last(self) -> Path:
        """The last finished epoch, with the optimiser state, to resume from."""
        return self.path / "last.keras"

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def metrics(self) -> Path:
        """Written once the network is scored: its profile, hop and (ExVo networks) Table 1's Val scores."""
        return self.path / "metrics.json"

    def decisions(self, split: str) -> Path:
        return self.path / f"decisions_{split}.csv"


@dataclass(frozen=True)
class ReportFolder(_Folder):
    """What `report` writes: tables beside the paper, submission CSVs and the S_MTL comparison plot."""

    def table_markdown(self, table: int) -> Path:
        return self.path / f"table{table}.md"

    def table_csv(self, table: int) -> Path:
        return self.path / f"table{table}.csv"

    @property
    def submissions(self) -> Path:
        return self.path / "submissions"

    def submission(self, key: str) -> Path:
        return self.submissions / f"{key}.csv"

    @property
    def comparison_plot(self) -> Path:
        return self.path / "s_mtl_comparison.png"

    @property
    def plots(self) -> Path:
        """Per-system plots (`exvo_keras.experiments.plots`), linked from each `tableN.md`."""
        return self.path / "plots"

    def plot(self, prefix: str, name: str, kind: str) -> Path:
        """`plots/<prefix>_<name>_<kind>.png`, e.g. ``plots/table2_wavlm-sys2_training.png``; characters other
        than letters, digits and ``._+-`` in `name` become ``_`` (``wavlm@weighted-sys1`` ->
        ``wavlm_weighted-sys1``)."""
        import re

        safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "_"
        return self.plots / f"{prefix}_{safe}_{kind}.png"

    def layer_sweep_csv(self, name: str) -> Path:
        """One row per layer of SSL feature set `name` (`layer-sweep`)."""
        return self.path / f"layer_sweep_{name}.csv"

    def layer_sweep_plot(self, name: str) -> Path:
        return self.path / f"layer_sweep_{name}.png"


@dataclass(frozen=True)
class Workspace(_Place):
    """The work folder: signal caches, feature stores, trained networks and system runs.

    `os.PathLike` only so that `Workspace(ws)` is `ws` again: a function handed a work path or a workspace
    builds one the same way. The paths inside come from the methods below, never from joining onto it.

    Example:
        >>> ws = Workspace(Path("work"))
        >>> ws.store("wavlm")
        PosixPath('work/features/wavlm.h5')
        >>> ws.run("wavlm-sys2").seed(0).predictions("Val")
        PosixPath('work/runs/wavlm-sys2/seed_0/predictions_Val.csv')
    """

    @property
    def root(self) -> Path:
        """The work folder itself."""
        return self.path

    def signals(self, source: str, kind: str) -> Path:
        """The cache folder of `kind` ("raw" or "zff") signals of one source of clips."""
        return self.path / "signals" / source / kind

    @property
    def features(self) -> Path:
        return self.path / "features"

    def store(self, name: str) -> Path:
        """The feature store of feature set `name`."""
        return self.features / f"{name}.h5"

    def stores(self, names) -> list[Path]:
        """The stores of several feature sets, in order (a row's early fusion)."""
        return [self.store(name) for name in names]

    @property
    def networks(self) -> Path:
        return self.path / "networks"

    def network(self, name: str) -> NetworkFolder:
        return NetworkFolder(self.networks / name)

    def scored_networks(self) -> list[NetworkFolder]:
        """The networks whose folder holds a metrics.json (trained and scored), by name."""
        return [NetworkFolder(p.parent) for p in sorted(self.networks.glob("*/metrics.json"))]

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    def run(self, key: str) -> RunFolder:
        """The run folder of registered system `key` (a system in two tables has one)."""
        return RunFolder(self.runs / key)
