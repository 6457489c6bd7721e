import struct

import numpy as np
import pytest

from exvo_keras.experiments.filters import cumulative_response, default_n_fft, plot_figure2

SR = 16000


def _windowed_sines(freqs_hz, taps):
    t = np.arange(taps) / SR
    return np.stack([np.hanning(taps) * np.cos(2 * np.pi * f * t) for f in freqs_hz], axis=1)


def _local_maxima(x):
    return np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])) + 1


@pytest.mark.parametrize("taps, freqs_hz", [(30, (1500.0, 6000.0)), (300, (500.0, 2000.0, 4000.0, 7000.0))])
def test_windowed_sinusoids_peak_at_their_frequencies(taps, freqs_hz):
    n_fft = 1024
    bin_hz = SR / n_fft
    for f in freqs_hz:  # each filter on its own
        freqs, response = cumulative_response(_windowed_sines([f], taps), SR, n_fft)
        assert abs(freqs[np.argmax(response)] - f) <= bin_hz
    freqs, response = cumulative_response(_windowed_sines(freqs_hz, taps), SR, n_fft)
    peaks = freqs[_local_maxima(response)]
    for f in freqs_hz:  # and summed: one local maximum per filter, at its frequency
        assert np.min(np.abs(peaks - f)) <= bin_hz, (f, peaks)


def test_axis_and_normalisation():
    kernel = np.random.default_rng(0).standard_normal((30, 128))
    freqs, response = cumulative_response(kernel)
    assert default_n_fft(30) == 1024 and default_n_fft(3000) == 4096
    assert freqs.shape == response.shape == (513,)
    assert freqs[0] == 0 and freqs[-1] == SR / 2
    assert response.max() == pytest.approx(1.0) and response.min() >= 0

    # Per-filter unit energy: rescaling one filter, or adding a dead (all-zero) one, changes nothing.
    scaled = kernel.copy()
    scaled[:, 3] *= 1000.0
    np.testing.assert_allclose(cumulative_response(scaled)[1], response, rtol=1e-10)
    with_dead = np.concatenate([kernel, np.zeros((30, 2))], axis=1)
    np.testing.assert_allclose(cumulative_response(with_dead)[1], response, rtol=1e-10)

    # The sum is the sum of unit-energy spectra, then scaled to unit max.
    mags = np.abs(np.fft.rfft(kernel, n=1024, axis=0))
    expected = (mags / np.linalg.norm(mags, axis=0)).sum(axis=1)
    np.testing.assert_allclose(response, expected / expected.max(), rtol=1e-10)

    # Keras' [k, 1, filters] layout is accepted; all-zero kernels give zeros, not NaN.
    np.testing.assert_allclose(cumulative_response(kernel[:, None, :])[1], response)
    assert not cumulative_response(np.zeros((30, 4)))[1].any()
    with pytest.raises(ValueError):
        cumulative_response(kernel, n_fft=16)


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_figure2_writes_a_png_of_the_requested_size(tmp_path):
    rng = np.random.default_rng(1)
    panels = {
        "Raw networks": {"Raw(ExVo)-ER": rng.standard_normal((30, 128)),
                         "Raw(seg)": rng.standard_normal((300, 128))},
        "ZFF networks": {"Zff(ExVo)-ER": _windowed_sines([300.0, 900.0], 30)},
    }
    out = plot_figure2(panels, tmp_path / "fig" / "figure2.png", figsize=(8, 3), dpi=50)
    assert out == tmp_path / "fig" / "figure2.png"
    assert out.stat().st_size > 1000
    assert _png_size(out) == (400, 150)
    assert [p.name for p in out.parent.iterdir()] == ["figure2.png"]  # no temporary file left behind

    plot_figure2(panels, out, figsize=(6, 4), dpi=50)  # overwrites in place
    assert _png_size(out) == (300, 200)
    with pytest.raises(ValueError):
        plot_figure2({}, tmp_path / "empty.png")
