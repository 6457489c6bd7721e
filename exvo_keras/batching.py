"""Clips of different lengths in padded batches: which clips go together, and the padded arrays.

One helper for every caller that runs whole clips through a network (SSL extraction, `SSLEncoder.encode`,
predicting with an export): clips sorted longest first, so each batch pads to its first clip and little compute
goes to padding. numpy only, so that light callers (predict) import no TensorFlow through it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def length_batches(lengths: Sequence[int], *, max_items: int | None = None,
                   max_samples: int | None = None) -> list[list[int]]:
    """Positions in `lengths` grouped longest first (ties keep their order).

    A batch holds at most `max_items` clips and at most `max_samples` padded samples (its clip count times its
    longest clip); a clip longer than `max_samples` runs alone.

    Example:
        >>> length_batches([3, 9, 5, 9], max_items=2)
        [[1, 3], [2, 0]]
        >>> length_batches([3, 9, 5, 9], max_samples=12)
        [[1], [3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        fits = last is not None and (max_items is None or len(last) < max_items) and \
            (max_samples is None or (len(last) + 1) * int(lengths[last[0]]) <= max_samples)
        if fits:
            last.append(i)
        else:
            batches.append([i])
    return batches


def pad_clips(clips: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pads 1-D clips to the longest: (waveform ``[n, longest]`` float32, padding mask ``[n, longest]`` int32,
    1 for a clip's samples and 0 for padding).

    Example:
        >>> waveform, mask = pad_clips([np.ones(3), np.ones(1)])
        >>> mask.tolist()
        [[1, 1, 1], [1, 0, 0]]
    """
    longest = max(c.size for c in clips)
    waveform = np.zeros((len(clips), longest), np.float32)
    mask = np.zeros((len(clips), longest), np.int32)
    for row, clip in enumerate(clips):
        waveform[row, :clip.size] = clip
        mask[row, :clip.size] = 1
    return waveform, mask
