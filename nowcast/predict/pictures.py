"""Pictures of a nowcast: one PNG per lead and/or an animated GIF, in a radar colour map.

Each picture is the rain rate [mm/h] on the projected grid (axes in km) in the standard
radar colour scale of :mod:`nowcast.plotting.colormap` (the one the evaluation plots use:
pysteps' "intensity" scale, transparent below 0.08 mm/h), grey where nothing is predicted,
with a title giving the lead and the valid time. Figures
are drawn with the Agg canvas directly (no pyplot state), and PNGs carry no time stamp, so
the same nowcast gives the same bytes. Every file is written atomically. matplotlib is
imported by :func:`render`, not with this module.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from nowcast.atomic import OutputSet, atomic_path

FIGSIZE = (6.4, 5.2)  # inches


def png_paths(folder: str | os.PathLike, lead_minutes: np.ndarray) -> list[Path]:
    """``folder/nowcast_+MMMmin.png`` for each lead [min], in lead order."""
    return [
        Path(folder) / f"nowcast_+{int(round(float(lead))):03d}min.png" for lead in lead_minutes
    ]


def write_pngs(
    folder: str | os.PathLike,
    images: list[bytes],
    lead_minutes: np.ndarray,
    outputs: OutputSet | None = None,
) -> list[Path]:
    """Save :func:`render`'s images as :func:`png_paths`; paths in lead order. With
    ``outputs`` the files appear when the set is committed."""
    out = png_paths(folder, lead_minutes)
    for path, png in zip(out, images):
        with atomic_path(path, outputs) as tmp:
            tmp.write_bytes(png)
    return out


def write_gif(
    path: str | os.PathLike, images: list[bytes], frame_ms: int, outputs: OutputSet | None = None
) -> Path:
    """An animated GIF of :func:`render`'s images, ``frame_ms`` ms each, looping forever.
    With ``outputs`` the file appears when the set is committed."""
    from PIL import Image  # pillow comes with matplotlib

    frames = [
        Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=255, dither=Image.Dither.NONE)
        for png in images
    ]
    with atomic_path(path, outputs) as tmp:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=frame_ms,
            loop=0,
        )
    return Path(path)


def render(
    rainfall_rate: np.ndarray,
    reference_time: np.datetime64,
    lead_minutes: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    dpi: int,
) -> list[bytes]:
    """One PNG image (encoded bytes) per lead, drawn on one reused figure.

    rainfall_rate: (L, H, W) mm/h, NaN = not predicted; lead_minutes (L,) after
    ``reference_time``; x (W,), y (H,) projected cell centres [m]; dpi of a FIGSIZE figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only when pictures are asked
    from matplotlib.figure import Figure

    from nowcast.plotting.colormap import add_rate_colorbar, rate_colormap

    cmap, norm, _ = rate_colormap()
    x_km, y_km = np.asarray(x) / 1000.0, np.asarray(y) / 1000.0
    extent = (*_edges(x_km), *_edges(y_km))
    # extent is (left, right, bottom, top); origin="upper" puts row 0 at the top (y
    # decreasing down the rows, the usual north-up layout), "lower" at the bottom
    origin = "upper" if y_km.size < 2 or y_km[0] > y_km[-1] else "lower"
    fig = Figure(figsize=FIGSIZE, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(
        np.ma.masked_invalid(rainfall_rate[0]),
        cmap=cmap,
        norm=norm,
        origin=origin,
        extent=extent,
        interpolation="nearest",
    )
    add_rate_colorbar(fig, image, ax)
    ax.set_xlabel("x [km]")
    ax.set_ylabel("y [km]")
    ref = np.datetime64(reference_time, "s")
    images = []
    for field, lead in zip(rainfall_rate, lead_minutes):
        image.set_data(np.ma.masked_invalid(field))
        valid = ref + np.timedelta64(int(round(float(lead) * 60)), "s")
        ax.set_title(f"nowcast +{float(lead):g} min, valid {_fmt(valid)} UTC\nfrom {_fmt(ref)} UTC")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        images.append(buf.getvalue())
    return images


def _edges(centres: np.ndarray) -> tuple[float, float]:
    """Outer edges (low, high) of a regular axis of cell centres, in increasing order."""
    lo, hi = float(np.min(centres)), float(np.max(centres))
    step = (hi - lo) / (centres.size - 1) if centres.size > 1 else 1.0
    return lo - step / 2, hi + step / 2


def _fmt(t: np.datetime64) -> str:
    return str(np.datetime64(t, "m")).replace("T", " ")
