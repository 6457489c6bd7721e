"""Run folders: atomic writes, reading back, file digests, and the rule that a folder belongs to one configuration.

Shared by the head trainer and the frame-CNN trainer, so an interrupted or repeated stage behaves the same way
everywhere: files appear whole or not at all, and a folder made with other settings is refused, not mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from exvo_keras.workspace import NetworkFolder, RunFolder


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def read_json(path: Path):
    """The JSON file's content, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def short_sha1(path: Path) -> str:
    """The first 16 hex digits of a file's sha1: how stores and exports name the weights they were made with."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def claim_run_dir(folder: RunFolder | NetworkFolder, config: dict):
    """Creates `folder` for `config`, or checks that it was made with exactly that config; returns `folder`.

    Raises:
        ValueError: naming the fields that differ, so a run is never resumed or reused under other settings.
    """
    folder.path.mkdir(parents=True, exist_ok=True)
    old = read_json(folder.config)
    if old is None:
        atomic_write_json(folder.config, config)
    elif old != config:
        changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        raise ValueError(f"{folder.path} was made with another configuration (differs in {', '.join(changed)}); "
                         "remove the folder or choose another")
    return folder
