"""The radar colour map every nowcast figure uses (evaluate's example panel, predict's PNGs).

It is pysteps' standard "intensity" scale in mm/h (``pysteps.visualization.precipfields
.get_colormap("intensity", "mm/h", "pysteps")``): 16 discrete colours between 0.08 and
160 mm/h on a BoundaryNorm. Below 0.08 mm/h is drawn transparent (no rain), outside
radar coverage / masked pixels light grey.

    from nowcast.plotting.colormap import draw_rate
    image = draw_rate(ax, rate_mmh, mask)   # then fig.colorbar(image, ...) via add_rate_colorbar
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import matplotlib.colors as mcolors
import numpy as np

from nowcast.pysteps_import import import_pysteps

OUTSIDE_COLOUR = "#d9d9d9"


@lru_cache(maxsize=1)
def rate_colormap() -> tuple[mcolors.Colormap, mcolors.BoundaryNorm, list[float]]:
    """(colour map, norm, colour-bar levels in mm/h) of the standard rain-rate scale."""
    precipfields = import_pysteps("pysteps.visualization.precipfields")
    with warnings.catch_warnings():  # pysteps still uses the old Colormap.set_* calls
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        cmap, norm, levels, _ = precipfields.get_colormap("intensity", "mm/h", "pysteps")
    cmap = cmap.with_extremes(under=(1.0, 1.0, 1.0, 0.0), bad=OUTSIDE_COLOUR)
    norm = mcolors.BoundaryNorm(list(levels), cmap.N)  # clip=False: below → "under"
    return cmap, norm, [float(v) for v in levels]


def draw_rate(ax, rate_mmh: np.ndarray, mask: np.ndarray | None = None):
    """Draw a rain-rate field (H, W) [mm/h] on ``ax``; pixels where ``mask`` is False in grey.

    Row 0 is drawn at the top (array order). Returns the image, for a colour bar.
    """
    field = np.ma.masked_invalid(np.asarray(rate_mmh, dtype=np.float64))
    if mask is not None:
        field = np.ma.masked_where(~np.asarray(mask, dtype=bool), field)
    cmap, norm, _ = rate_colormap()
    ax.set_facecolor("white")
    image = ax.imshow(field, cmap=cmap, norm=norm, interpolation="nearest", origin="upper")
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def add_rate_colorbar(fig, image, axes=None, label: str = "rain rate [mm/h]", cax=None):
    """A colour bar for :func:`draw_rate` images: beside ``axes`` (one axis or a list), or in
    the axis ``cax`` when given."""
    _, _, levels = rate_colormap()
    if cax is not None:
        bar = fig.colorbar(image, cax=cax, ticks=levels, extend="max")
    else:
        bar = fig.colorbar(image, ax=axes, ticks=levels, extend="max", shrink=0.9, pad=0.02)
    bar.ax.set_yticklabels([f"{v:g}" for v in levels])
    bar.set_label(label)
    return bar
