"""Every signal step, once, in TensorFlow: the signal caches, training, extraction and the exported graphs call
the same functions.

- `zff`: zero-frequency filtering (float64) and glottal closure instants; `zff(x, sample_rate)` is numpy in,
  numpy out.
- `framing`: the frame CNNs' z-normalised 250 ms windows.
- `pooling`: mean and population std of frame vectors (float64).
- `normalize`: per-clip input normalisation of the SSL encoders.
- `resample`: scipy's polyphase resampling (float64).
- `numpy_order`: `np.mean`'s summation order as graph ops (what keeps ZFF equal to its numpy original).
"""

from exvo_keras.signal.zff import average_pitch_period, epochs, trend_window_samples, zff

__all__ = ["average_pitch_period", "epochs", "trend_window_samples", "zff"]
