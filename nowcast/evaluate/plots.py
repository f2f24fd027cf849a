"""The evaluation figures (PNG): CSI vs lead time, errors vs lead time, an example panel.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no display needed) and
saved to the path given; the caller decides where (the stage writes into a temp folder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nowcast.plotting.colormap import add_rate_colorbar, draw_rate
from nowcast.units import GrayScale
from nowcast.verification.metrics import Scores

DPI = 110


@dataclass
class Example:
    """One window to draw: gray levels, the pixels that count, and every method's forecast.

    ``inputs`` (n_in, H, W); ``observed`` (n_out, H, W); ``forecasts`` name → (n_out, H, W);
    ``mask`` (H, W) bool; ``time`` the valid time of the last input frame; ``frame_minutes``
    the frame interval.
    """

    time: np.datetime64
    frame_minutes: float
    inputs: np.ndarray
    observed: np.ndarray
    forecasts: dict[str, np.ndarray]
    mask: np.ndarray


def _style(i: int) -> dict:
    markers = "osD^vP*X"
    return {"marker": markers[i % len(markers)], "markersize": 4, "linewidth": 1.6}


def plot_csi(scores: Mapping[str, Scores], lead_minutes: Sequence[float], path: Path) -> Path:
    """One panel per threshold: CSI against lead time, one line per method."""
    thresholds = next(iter(scores.values())).thresholds_mmh
    n = len(thresholds)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), dpi=DPI)
    fig.subplots_adjust(
        left=0.06, right=0.98, bottom=0.13 / rows, top=1 - 0.08 / rows, wspace=0.25, hspace=0.45
    )
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for k, thr in enumerate(thresholds):
        ax = axes[k]
        for i, (name, s) in enumerate(scores.items()):
            ax.plot(lead_minutes, s.csi[:, k], label=name, **_style(i))
        ax.set_title(f"CSI, rain ≥ {thr:g} mm/h")
        ax.set_xlabel("lead time [min]")
        ax.set_ylabel("CSI")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    fig.savefig(path)
    return path


def plot_errors(scores: Mapping[str, Scores], lead_minutes: Sequence[float], path: Path) -> Path:
    """MSE and B-MSE (gray level, HKO-7 convention) and rain-rate MSE against lead time."""
    panels = (
        ("mse", "MSE (gray level, summed over pixels)"),
        ("b_mse", "B-MSE (gray level, rain-weighted)"),
        ("mse_rate", "MSE of rain rate [(mm/h)² per pixel]"),
    )
    fig = Figure(figsize=(13, 3.6), dpi=DPI)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.9, wspace=0.22)
    axes = fig.subplots(1, len(panels))
    for ax, (key, title) in zip(axes, panels):
        for i, (name, s) in enumerate(scores.items()):
            ax.plot(lead_minutes, getattr(s, key), label=name, **_style(i))
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("lead time [min]")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.savefig(path)
    return path


def plot_example(example: Example, scale: GrayScale, lead_index: Sequence[int], path: Path) -> Path:
    """Rows: the inputs, the observation and each method at the chosen leads, in mm/h."""
    n_in = example.inputs.shape[0]
    names = list(example.forecasts)
    cols = max(n_in, len(lead_index))
    rows = 2 + len(names)
    fig = Figure(figsize=(2.1 * cols + 1.0, 2.2 * rows + 0.6), dpi=DPI)
    grid = fig.add_gridspec(
        rows,
        cols + 1,
        width_ratios=[1.0] * cols + [0.07],
        left=0.04,
        right=0.93,
        bottom=0.02,
        top=1 - 0.8 / (2.2 * rows + 0.6),
        wspace=0.06,
        hspace=0.22,
    )
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(cols)] for r in range(rows)])
    dt = example.frame_minutes
    rate = scale.gray_to_mmh_np
    image = None
    for j in range(n_in):
        image = draw_rate(axes[0, j], rate(example.inputs[j]), example.mask)
        axes[0, j].set_title(f"input {(j - n_in + 1) * dt:+g} min", fontsize="small")
    series = [("observed", example.observed)] + [(n, example.forecasts[n]) for n in names]
    for r, (name, frames) in enumerate(series, start=1):
        for j, k in enumerate(lead_index):
            draw_rate(axes[r, j], rate(frames[k]), example.mask)
            axes[r, j].set_title(f"{name} +{(k + 1) * dt:g} min", fontsize="small")
        axes[r, 0].set_ylabel(name)
    for r in range(rows):
        used = n_in if r == 0 else len(lead_index)
        for j in range(used, cols):
            axes[r, j].set_visible(False)
    fig.suptitle(
        f"example window, last input {str(example.time)[:16].replace('T', ' ')} UTC",
        y=1 - 0.25 / (2.2 * rows + 0.6),
    )
    add_rate_colorbar(fig, image, cax=fig.add_subplot(grid[:, -1]))
    fig.savefig(path)
    return path
