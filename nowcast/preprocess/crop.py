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


def central_crop(field: np.ndarray, crop: int, margin: int = 0) -> np.ndarray:
    """The central ``crop`` square of ``field`` (H, W) plus ``margin`` pixels on every side.

    Returns ``(crop + 2·margin, crop + 2·margin)`` float32; margin pixels that fall outside
    the input are NaN (no data), so a filter uses only the real neighbours that exist.
    """
    r0, c0 = crop_origin(field.shape, crop)
    n = crop + 2 * margin
    top, left = r0 - margin, c0 - margin
    h, w = field.shape
    if top >= 0 and left >= 0 and top + n <= h and left + n <= w:
        return np.asarray(field[top : top + n, left : left + n], dtype=np.float32)
    out = np.full((n, n), np.nan, dtype=np.float32)
    rs, cs = max(top, 0), max(left, 0)
    re, ce = min(top + n, h), min(left + n, w)
    out[rs - top : re - top, cs - left : ce - left] = field[rs:re, cs:ce]
    return out
