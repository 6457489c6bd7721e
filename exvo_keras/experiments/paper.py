"""Numbers reported by Purohit et al. (ICML ExVo 2022), packaged as CSVs.

Tables (files in ``paper_tables/``, copied verbatim from the paper):

* Table 1 (validation, single-task classifiers): ``system, classifier,
  uar_percent, war_percent``. :func:`table1` adds ``uar`` and ``war`` as
  fractions in [0, 1] so they compare directly with
  :func:`exvo_keras.metrics.uar` / :func:`~exvo_keras.metrics.war`.
* Table 2 (validation, multi-task): ``group, system, dims, config, emo_ccc,
  cou_uar, age_mae, s_mtl, s_mtl_std``. ``s_mtl_std`` is empty for the
  hybrid rows.
* Table 3 (test, multi-task): ``system, dims, config, emo_ccc, cou_uar,
  age_mae, s_mtl``. The DeepSpectrum row only has ``s_mtl``.

Missing numbers are NaN in the DataFrames and ``None`` in :func:`paper_row`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = ["TABLE_DIR", "table1", "table2", "table3", "paper_row"]

# Read from inside the package so installed copies need no checkout files.
TABLE_DIR = Path(__file__).resolve().parent / "paper_tables"

_FILES = {
    1: "table1_validation.csv",
    2: "table2_validation.csv",
    3: "table3_test.csv",
}


@lru_cache(maxsize=None)
def _load(table: int) -> pd.DataFrame:
    """Read one packaged table (cached; callers receive copies)."""
    df = pd.read_csv(TABLE_DIR / _FILES[table])
    if table == 1:
        df["uar"] = df["uar_percent"] / 100.0
        df["war"] = df["war_percent"] / 100.0
    return df


def table1() -> pd.DataFrame:
    """Table 1: validation UAR/WAR of the ExVo-trained single-task models.

    Returns:
        DataFrame with the original ``uar_percent``/``war_percent`` columns
        plus ``uar``/``war`` as fractions.
    """
    return _load(1).copy()


def table2() -> pd.DataFrame:
    """Table 2: validation results of all multi-task systems (28 rows).

    Returns:
        DataFrame with one row per (system, config).
    """
    return _load(2).copy()


def table3() -> pd.DataFrame:
    """Table 3: test-set results of the submitted systems.

    Returns:
        DataFrame with one row per submitted system.
    """
    return _load(3).copy()


def paper_row(table: int, system: str, config: str | None = None) -> dict | None:
    """Look up one row of a paper table.

    Args:
        table: 1, 2 or 3.
        system: Exact ``system`` string as printed in the table, e.g.
            ``"WavLM"`` or ``"Raw(ExVo)-ER + WavLM"``.
        config: ``"Sys-1"`` or ``"Sys-2"``. May be omitted when the system
            has a single row; must be omitted for Table 1, which has no
            config column.

    Returns:
        The row as a dict of plain Python values (missing numbers as
        ``None``), or ``None`` if no row matches.

    Raises:
        ValueError: For an unknown table number, a config given for
            Table 1, or an omitted config that leaves several rows.
    """
    if table not in _FILES:
        raise ValueError(
            f"paper_row: table must be one of {sorted(_FILES)}, got {table}"
        )
    df = _load(table)
    mask = df["system"] == system
    if config is not None:
        if "config" not in df.columns:
            raise ValueError(f"paper_row: Table {table} has no config column")
        mask &= df["config"] == config
    rows = df[mask]
    if rows.empty:
        return None
    if len(rows) > 1:
        raise ValueError(
            f"paper_row: {system!r} has {len(rows)} rows in Table {table} "
            f"(configs {rows['config'].tolist()}); pass config="
        )
    record = rows.iloc[0].to_dict()
    return {
        k: None if isinstance(v, float) and math.isnan(v) else _py(v)
        for k, v in record.items()
    }


def _py(value):
    """Turn numpy scalars into built-in Python numbers."""
    return value.item() if hasattr(value, "item") else value
