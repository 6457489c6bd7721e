"""Length batching shared by SSL extraction, SSLEncoder.encode and predict: the grouping and the padding."""

import numpy as np

from exvo_keras.batching import length_batches, pad_clips


def test_batches_go_longest_first_within_both_limits():
    lengths = [300, 900, 500, 900, 100, 2000]
    assert length_batches(lengths, max_items=2) == [[5, 1], [3, 2], [0, 4]]  # ties keep their order
    # at most 1800 padded samples: a batch pads to its first (longest) clip; the 2000-sample clip runs alone
    assert length_batches(lengths, max_samples=1800) == [[5], [1, 3], [2, 0, 4]]
    assert length_batches(lengths, max_items=2, max_samples=1800) == [[5], [1, 3], [2, 0], [4]]
    assert sorted(i for b in length_batches(lengths) for i in b) == list(range(6))
    assert length_batches([]) == []


def test_padding_keeps_each_clip_and_marks_it():
    waveform, mask = pad_clips([np.arange(1, 4, dtype="float64"), np.array([7.0])])
    assert waveform.dtype == np.float32 and mask.dtype == np.int32
    np.testing.assert_array_equal(waveform, [[1, 2, 3], [7, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0]])
