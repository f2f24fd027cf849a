"""Step 2: the central crop (or a grid of tiles), with a margin of real neighbours for the
disk filter."""

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
    return square_window(shape, crop_origin(shape, crop), crop, margin)


def square_window(
    shape: tuple[int, int], origin: tuple[int, int], crop: int, margin: int = 0
) -> tuple[slice, slice]:
    """Rows and columns of an (H, W) grid covered by the ``crop`` square whose top-left pixel
    is ``origin`` (row, col), plus ``margin`` pixels on every side, clipped to the grid."""
    r0, c0 = origin
    n = crop + 2 * margin
    top, left = r0 - margin, c0 - margin
    h, w = shape
    return slice(max(top, 0), min(top + n, h)), slice(max(left, 0), min(left + n, w))


def tile_origins(shape: tuple[int, int], crop: int, stride: int) -> list[tuple[int, int]]:
    """Top-left (row, col) of every ``crop`` × ``crop`` tile of an (H, W) grid, row by row.

    Tiles start at (0, 0) and step ``stride`` pixels right and down; only tiles that lie
    wholly inside the grid are kept: ``(H − crop) // stride + 1`` rows of
    ``(W − crop) // stride + 1`` tiles. UserError when the grid is smaller than the crop.
    """
    crop_origin(shape, crop)  # the size check
    h, w = shape
    return [(r, c) for r in range(0, h - crop + 1, stride) for c in range(0, w - crop + 1, stride)]


def tiles_window(
    shape: tuple[int, int], origins: list[tuple[int, int]], crop: int, margin: int = 0
) -> tuple[slice, slice]:
    """The smallest rows × columns window of the grid holding every tile's
    :func:`square_window` (what a reader has to read for all of them)."""
    wins = [square_window(shape, o, crop, margin) for o in origins]
    return (
        slice(min(r.start for r, _ in wins), max(r.stop for r, _ in wins)),
        slice(min(c.start for _, c in wins), max(c.stop for _, c in wins)),
    )


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
    return square_crop(field, crop_origin(shape, crop), crop, margin, shape, origin)


def square_crop(
    field: np.ndarray,
    at: tuple[int, int],
    crop: int,
    margin: int = 0,
    shape: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """The ``crop`` square whose top-left grid pixel is ``at`` (row, col), plus ``margin``.

    As :func:`central_crop` (same ``field`` / ``shape`` / ``origin`` convention, NaN
    margin outside the grid) for any square of the grid, e.g. a tile of
    :func:`tile_origins`; the window must hold :func:`square_window` of it.
    """
    shape = field.shape if shape is None else shape
    r0, c0 = at
    n = crop + 2 * margin
    top, left = r0 - margin, c0 - margin
    rows, cols = square_window(shape, at, crop, margin)
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
