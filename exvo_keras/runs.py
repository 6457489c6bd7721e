"""Run folders: atomic writes and the rule that a folder belongs to one configuration.

Shared by the head trainer and the frame-CNN trainer, so an interrupted or repeated stage behaves the same way
everywhere: files appear whole or not at all, and a folder made with other settings is refused, not mixed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def claim_run_dir(run_dir, config: dict) -> Path:
    """Creates `run_dir` for `config`, or checks that it was made with exactly that config.

    Raises:
        ValueError: naming the fields that differ, so a run is never resumed or reused under other settings.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists():
        old = json.loads(config_path.read_text())
        if old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ValueError(f"{run_dir} was made with another configuration (differs in {', '.join(changed)}); "
                             "remove the folder or choose another")
    else:
        atomic_write_json(config_path, config)
    return run_dir
