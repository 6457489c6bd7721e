"""Signal processing on raw waveforms: zero-frequency filtering and glottal closure instants."""

from exvo_keras.signal.zff import average_pitch_period, epochs, trend_window_samples, zff

__all__ = ["average_pitch_period", "epochs", "trend_window_samples", "zff"]
