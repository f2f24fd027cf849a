"""The whole per-frame transform, as training and ``nowcast predict`` must both apply it.

    settings = TransformSettings.from_dict(meta.preprocess)   # or .from_config(cfg.preprocess)
    u8 = transform_frame(frame.dbz, settings)                  # (100, 100) uint8
    x, y = output_coordinates(frame.x, frame.y, settings)      # cell centres [m]

Steps (docs/preprocessing.md): gray level P = clip((dBZ − z_min)/(z_max − z_min), 0, 1) → central
``crop`` square, taken with a margin of ``c = ceil(disk_radius − ½)`` real neighbours on
each side → disk filter (NaN-aware) → keep the central crop → area-averaging resize to
``size`` × ``size`` → uint8 round(255·P).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from nowcast.preprocess.crop import (
    central_crop,
    crop_origin,
    crop_window,
    square_crop,
    tiles_window,
)
from nowcast.preprocess.disk import disk_filter, kernel_half_width
from nowcast.preprocess.resize import area_resize, cell_centres
from nowcast.units import dbz_to_gray_float32, gray_to_uint8


@dataclass(frozen=True)
class TransformSettings:
    """The per-frame transform's constants (a subset of the store's ``preprocess`` JSON)."""

    z_min: float = -10.0
    z_max: float = 60.0
    crop: int = 330
    disk_radius: float = 10.0
    size: int = 100

    @classmethod
    def from_config(cls, pre: Any) -> TransformSettings:
        """From a :class:`~nowcast.config.preprocess.PreprocessConfig`."""
        return cls(**{f.name: getattr(pre, f.name) for f in fields(cls)})

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> TransformSettings:
        """From the store's / checkpoint's ``preprocess`` dict (other keys are ignored)."""
        return cls(**{f.name: settings[f.name] for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def transform_field(dbz: np.ndarray, s: TransformSettings) -> tuple[np.ndarray, np.ndarray]:
    """dBZ ``(H, W)`` → ``(gray, covered)``, both ``(size, size)``.

    gray: float64 in [0, 1], the area mean of the filtered gray level over the cell's
    pixels that have data (NaN if none has); covered: bool, every pixel of the cell has data
    (is inside coverage). UserError if the grid is smaller than the crop.
    """
    return filter_and_resize(gray_region(dbz, s), s)


def gray_region(
    dbz: np.ndarray,
    s: TransformSettings,
    shape: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Steps 1–2: gray level of the central crop plus the filter's margin of neighbours.

    dbz: the grid (H, W), or the window of a grid of ``shape`` that starts at grid pixel
    ``origin`` and holds :func:`region_window` (a frame read with that window).
    Returns ``(crop + 2c, crop + 2c)`` float32 (c = ceil(disk_radius − ½)); margin pixels
    outside the input are NaN. ``region[c:c+crop, c:c+crop]`` is the crop itself.
    """
    margin = kernel_half_width(s.disk_radius)
    return dbz_to_gray_float32(central_crop(dbz, s.crop, margin, shape, origin), s.z_min, s.z_max)


def region_window(shape: tuple[int, int], s: TransformSettings) -> tuple[slice, slice]:
    """The rows and columns of an (H, W) grid that the transform uses (crop and margin)."""
    return crop_window(shape, s.crop, kernel_half_width(s.disk_radius))


def tile_region(
    dbz: np.ndarray,
    s: TransformSettings,
    at: tuple[int, int],
    shape: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """:func:`gray_region` of the ``crop`` square whose top-left grid pixel is ``at`` (row,
    col) instead of the central one: ``(crop + 2c, crop + 2c)`` float32, NaN margin outside
    the grid. Only that square is converted, so memory does not grow with the grid."""
    margin = kernel_half_width(s.disk_radius)
    part = square_crop(dbz, at, s.crop, margin, shape, origin)
    return dbz_to_gray_float32(part, s.z_min, s.z_max)


def tiles_region_window(
    shape: tuple[int, int], s: TransformSettings, tiles: list[tuple[int, int]]
) -> tuple[slice, slice]:
    """The rows and columns of an (H, W) grid that the transform of every tile of ``tiles``
    (top-left pixels) uses: the bounding box of the tiles and their filter margins."""
    return tiles_window(shape, tiles, s.crop, kernel_half_width(s.disk_radius))


def filter_and_resize(region: np.ndarray, s: TransformSettings) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3–4 on a :func:`gray_region`: disk filter, then area resize → (gray, covered)."""
    return area_resize(disk_filter(region, s.disk_radius), (s.size, s.size))


def transform_frame(dbz: np.ndarray, s: TransformSettings) -> np.ndarray:
    """dBZ ``(H, W)`` (NaN outside coverage, −inf no echo) → stored frame ``(size, size)`` uint8.

    round(255·gray) of :func:`transform_field`; cells with no data at all are 0. Cells only
    partly inside coverage keep the mean of their covered part (the store's ``coverage``
    excludes them anyway).
    """
    gray, _ = transform_field(dbz, s)
    return gray_to_uint8(gray)


def output_coordinates(
    x: np.ndarray, y: np.ndarray, s: TransformSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Projected centres ``(x (size,), y (size,))`` [m] of the stored cells in the input grid.

    x, y: the input's pixel-centre coordinates (W,), (H,), evenly spaced. Cell j spans input
    pixels ``c0 + [j·crop/size, (j+1)·crop/size)`` of the crop starting at column c0 (row r0).
    """
    return square_coordinates(x, y, s, crop_origin((len(y), len(x)), s.crop))


def square_coordinates(
    x: np.ndarray, y: np.ndarray, s: TransformSettings, at: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`output_coordinates` of the ``crop`` square whose top-left pixel is ``at``
    (row r0, col c0): projected cell centres ``(x (size,), y (size,))`` [m]."""
    r0, c0 = at
    idx = cell_centres(s.crop, s.size)
    return _along(x, c0 + idx), _along(y, r0 + idx)


def _along(coord: np.ndarray, index: np.ndarray) -> np.ndarray:
    coord = np.asarray(coord, dtype=np.float64)
    step = (coord[-1] - coord[0]) / (len(coord) - 1)
    return coord[0] + index * step


def grid_extent(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Input grid description stored in the ``preprocess`` JSON (shape, first/last centres, step)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return {
        "shape": [int(y.size), int(x.size)],
        "x_first": float(x[0]),
        "x_last": float(x[-1]),
        "y_first": float(y[0]),
        "y_last": float(y[-1]),
        "dx": float((x[-1] - x[0]) / max(x.size - 1, 1)),
        "dy": float((y[-1] - y[0]) / max(y.size - 1, 1)),
    }
