"""One progress bar for every long loop, so they all look and behave alike."""

from __future__ import annotations

import sys

# The text bar everywhere: tqdm.auto would want ipywidgets in notebooks and warn when it is missing.
from tqdm import tqdm


def progress_bar(iterable=None, *, desc: str, unit: str = "it", total: int | None = None, initial: int = 0,
                 enabled: bool = True):
    """A tqdm bar on stderr; off when `enabled` is False (library calls, tests)."""
    return tqdm(iterable, desc=desc, unit=unit, total=total, initial=initial, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)
