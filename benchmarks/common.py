"""Shared by the benchmarks: where figures go and what machine produced them."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import tensorflow as tf

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))}


def report(name: str, figures: dict) -> Path:
    """Prints the figures and writes them, with the machine, to benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    record = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2))
    for key, value in figures.items():
        print(f"{name}: {key} = {value}")
    print(f"written to {path}")
    return path
