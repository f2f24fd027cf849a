"""Step 4: area-averaging resize by exact overlap weights (any ratio, e.g. 330 → 100).

Output cell j along an axis covers input pixels [j·s, (j+1)·s) with s = n_in / n_out; its
value is the mean of the input weighted by the overlap of each input pixel with that
interval. In 2-D the weights are separable: ``out = A_y · field · A_xᵀ``.

float64 input is resized with those exact weights (sparse products); float32 input that
is shrunk (the per-frame transform) by OpenCV's ``INTER_AREA``, the same overlap weights
computed in single precision (differences ~1e-7) and several times faster.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import scipy.sparse

from nowcast.preprocess.cvthreads import cv2_threads
from nowcast.preprocess.maskcache import MaskCache


@functools.lru_cache(maxsize=16)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float64 overlap weights; every row sums to 1 (read-only, cached)."""
    edges_out = np.arange(n_out + 1) * (n_in / n_out)
    lo = np.maximum(edges_out[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges_out[1:, None], np.arange(1, n_in + 1)[None, :])
    m = np.clip(hi - lo, 0.0, None) * (n_out / n_in)
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=16)
def _sparse(n_in: int, n_out: int) -> scipy.sparse.csr_matrix:
    return scipy.sparse.csr_matrix(area_matrix(n_in, n_out))


def apply_area(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``A_y · field · A_xᵀ`` for a finite ``field`` (H, W) → (h, w), in ``field``'s precision.

    float32 and shrinking on both axes: ``cv2.resize(INTER_AREA)`` (single-threaded);
    otherwise float64 sparse products.
    """
    if field.dtype == np.float32 and field.shape[0] >= size[0] and field.shape[1] >= size[1]:
        with cv2_threads(1):  # a 330² frame is too small to share out
            return cv2.resize(field, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    field = np.asarray(field, dtype=np.float64)
    ay = _sparse(field.shape[0], size[0])
    ax = _sparse(field.shape[1], size[1])
    return np.asarray((ax @ (ay @ field).T).T)


def cell_centres(n_in: int, n_out: int) -> np.ndarray:
    """Position of each output cell's centre in input-pixel index units (pixel i is centred at i)."""
    return (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5


def area_resize(field: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Area-average ``field`` (H, W) to ``size`` = (h, w), NaN-aware.

    Returns ``(values, covered)``: values (h, w) float64 — the overlap-weighted mean of the
    finite input pixels of each cell (NaN if it has none); covered (h, w) bool — every input
    pixel of the cell is finite. float32 input is averaged in float32 (see module doc).
    """
    field = np.asarray(field)
    if field.dtype != np.float32:
        field = field.astype(np.float64)
    valid = np.isfinite(field)
    if valid.all():
        return apply_area(field, size).astype(np.float64), np.ones(size, dtype=bool)
    values = apply_area(np.where(valid, field, field.dtype.type(0)), size).astype(np.float64)
    inv_den, empty, covered = _weights(valid, size)
    values *= inv_den
    values[empty] = np.nan
    return values, covered.copy()


def _compute_weights(
    valid: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1 / covered share, cells with no data, fully covered cells) of a validity mask."""
    den = apply_area(valid.astype(np.float64), size)
    empty = den <= 1e-12
    with np.errstate(divide="ignore"):
        inv = np.where(empty, 0.0, 1.0 / den)
    return inv, empty, den >= 1.0 - 1e-9


_weights = MaskCache(_compute_weights)
