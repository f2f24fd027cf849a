"""Step 2: the central crop, with a margin of real neighbours for the disk filter."""

from __future__ import annotations

import numpy as np

from nowcast.errors import UserError


def crop_origin(shape: tuple[int, int], crop: int) -> tuple[int, int]:
    """Row and column of the top-left pixel of the central ``crop`` × ``crop`` square.

    ``((H − crop) // 2, (W − crop) // 2)``; UserError when the grid is smaller than the crop.
    """
    h, w = shape
    if h < crop or w < crop:
        raise UserError(
            f"the grid ({h}×{w}) is smaller than the crop ({crop}×{crop}, preprocess.crop)"
        )
    return (h - crop) // 2, (w - crop) // 2


def crop_window(shape: tuple[int, int], crop: int, margin: int = 0) -> tuple[slice, slice]:
    """Rows and columns of the grid that the central ``crop`` square plus ``margin`` covers.

    The ``(rows, cols)`` slices are clipped to the grid ``shape`` (H, W): what a reader has
    to read for :func:`central_crop` (``nowcast.io.read_frames(window=…)``).
    UserError when the grid is smaller than the crop.
    """
    r0, c0 = crop_origin(shape, crop)
    n = crop + 2 * margin
    top, left = r0 - margin, c0 - margin
    h, w = shape
    return slice(max(top, 0), min(top + n, h)), slice(max(left, 0), min(left + n, w))


def central_crop(
    field: np.ndarray,
    crop: int,
    margin: int = 0,
    shape: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """The central ``crop`` square of the grid plus ``margin`` pixels on every side.

    field: the grid's values (H, W), or a window of them whose pixel [0, 0] is grid pixel
    ``origin`` (row, col) of a grid of ``shape`` (H, W); the window must hold
    :func:`crop_window`. Returns ``(crop + 2·margin, crop + 2·margin)`` float32; margin
    pixels that fall outside the grid are NaN (no data), so a filter uses only the real
    neighbours that exist.
    """
    shape = field.shape if shape is None else shape
    r0, c0 = crop_origin(shape, crop)
    n = crop + 2 * margin
    top, left = r0 - margin, c0 - margin
    rows, cols = crop_window(shape, crop, margin)
    oy, ox = origin
    if (
        rows.start < oy
        or cols.start < ox
        or rows.stop > oy + field.shape[0]
        or cols.stop > ox + field.shape[1]
    ):
        raise ValueError(f"the window at {origin} of shape {field.shape} misses part of the crop")
    part = field[rows.start - oy : rows.stop - oy, cols.start - ox : cols.stop - ox]
    if part.shape == (n, n):
        return np.asarray(part, dtype=np.float32)
    out = np.full((n, n), np.nan, dtype=np.float32)
    out[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = part
    return out
