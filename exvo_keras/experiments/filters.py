"""The paper's Figure 2: the cumulative frequency response of each network's first convolution layer.

Convention (Palaz, Magimai-Doss and Collobert's analyses of raw-speech CNNs, Idiap): with ``F_m`` the magnitude
of the zero-padded DFT of filter ``m``,

    F_cum = sum_m F_m / ||F_m||_2

Each filter is normalised to unit energy before summing, so the curve shows *where in frequency* the filters
put their passbands, not which filters happen to have large weights. We then divide ``F_cum`` by its maximum,
so that networks with different filter counts (or the Raw and ZFF panels) share one 0-1 axis; the shape is
unchanged. Filters with all-zero weights (dead units) contribute nothing instead of a division by zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exvo_keras.experiments.plots import new_figure, save_figure
from exvo_keras.registry import NETWORKS
from exvo_keras.workspace import Workspace


def _as_kernel(kernel) -> np.ndarray:
    """[kernel_size, filters] float64 from an array or anything with `first_conv_kernel()` (a FrameCNN)."""
    if hasattr(kernel, "first_conv_kernel"):
        kernel = kernel.first_conv_kernel()
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim == 3 and kernel.shape[1] == 1:  # Keras' Conv1D layout [k, in_channels=1, filters]
        kernel = kernel[:, 0, :]
    if kernel.ndim == 1:
        kernel = kernel[:, None]
    if kernel.ndim != 2:
        raise ValueError(f"expected a [kernel_size, filters] kernel, got shape {kernel.shape}")
    return kernel


def default_n_fft(kernel_size: int) -> int:
    """Zero-padded DFT size: at least 1,024 (15.6 Hz bins at 16 kHz) and at least the kernel length."""
    return max(1024, 1 << int(np.ceil(np.log2(max(kernel_size, 1)))))


def cumulative_response(kernel, sample_rate: int = 16000, n_fft: int | None = None):
    """Normalised cumulative magnitude response of a bank of FIR filters.

    Args:
        kernel: ``[kernel_size, filters]`` (e.g. ``FrameCNN.first_conv_kernel()``); a Keras ``[k, 1, filters]``
            kernel or a FrameCNN is accepted too.
        sample_rate: Hz, for the frequency axis.
        n_fft: DFT size (zero padding); default :func:`default_n_fft`. Must be >= kernel_size.

    Returns:
        ``(freqs_hz, response)``: ``n_fft // 2 + 1`` frequencies from 0 to Nyquist, and the sum over filters of
        each filter's unit-energy magnitude spectrum, divided by its maximum (all zeros if every filter is zero).
    """
    kernel = _as_kernel(kernel)
    n_fft = default_n_fft(kernel.shape[0]) if n_fft is None else int(n_fft)
    if n_fft < kernel.shape[0]:
        raise ValueError(f"n_fft={n_fft} is shorter than the kernel ({kernel.shape[0]} taps)")
    magnitude = np.abs(np.fft.rfft(kernel, n=n_fft, axis=0))
    norms = np.linalg.norm(magnitude, axis=0)
    live = norms > 0
    response = (magnitude[:, live] / norms[live]).sum(axis=1)
    peak = response.max()
    if peak > 0:
        response = response / peak
    return np.fft.rfftfreq(n_fft, d=1.0 / sample_rate), response


def plot_figure2(panels: dict, out_png, sample_rate: int = 16000, n_fft: int | None = None,
                 figsize=(12.0, 4.0), dpi: int = 100) -> Path:
    """Draws Figure 2: one panel per group of networks, one curve per network.

    Args:
        panels: panel title -> {network name -> first-layer kernel}; e.g.
            ``{"Raw networks": {"Raw(ExVo)-ER": k1, ...}, "ZFF networks": {"Zff(ExVo)-ER": k2, ...}}``. Panels are
            drawn left to right in dict order and lettered "(a)", "(b)", ... Kernels are as in
            :func:`cumulative_response`.
        out_png: where to write the PNG; parent folders are created. Written to a temporary file and moved into
            place, so a reader never sees a half-written figure.
        sample_rate, n_fft: passed to :func:`cumulative_response`.
        figsize, dpi: the PNG is ``figsize * dpi`` pixels.

    Returns:
        The PNG's path.
    """
    if not panels:
        raise ValueError("plot_figure2 needs at least one panel")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)

    fig = new_figure(figsize)  # a bare Agg Figure, not pyplot (see exvo_keras.experiments.plots)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for i, (ax, (title, networks)) in enumerate(zip(axes, panels.items())):
        for name, kernel in networks.items():
            freqs, response = cumulative_response(kernel, sample_rate=sample_rate, n_fft=n_fft)
            ax.plot(freqs, response, label=name, linewidth=1.2)
        ax.set_title(f"({chr(ord('a') + i)}) {title}")
        ax.set_xlabel("Frequency (Hz)")
        ax.set_xlim(0, sample_rate / 2)
        ax.set_ylim(0, 1.05)
        ax.grid(True, linestyle="--", alpha=0.5)
        if networks:
            ax.legend(loc="upper right", fontsize="small")
    axes[0].set_ylabel("Normalised cumulative response")

    return save_figure(fig, out_png, dpi=dpi)


def figure2(ws: Workspace, out_png) -> tuple[Path, list[str]]:
    """Figure 2 from the trained networks of the workspace (those not trained yet are left out); (path, networks
    drawn)."""
    from exvo_keras.experiments.networks import TrainedNetwork

    panels = {"raw": {}, "zff": {}}
    for net in NETWORKS.values():
        if ws.network(net.name).best.exists():
            panels[net.signal][net.label] = TrainedNetwork.load(net, ws).model.first_conv_kernel()
    if not any(panels.values()):
        raise FileNotFoundError(f"no trained networks under {ws.networks}; run train-network first")
    return plot_figure2(panels, out_png), [label for panel in panels.values() for label in panel]
