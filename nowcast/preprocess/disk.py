"""Step 3: the disk (pillbox) filter of MATLAB ``fspecial('disk', r)``, NaN-aware, via FFT.

Kernel: ``(2c+1)²`` with ``c = ceil(r − ½)``; each weight is the exact area of its unit
pixel inside the circle of radius ``r`` centred on the middle pixel, normalised to sum 1.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft

from nowcast.preprocess.maskcache import MaskCache


@functools.lru_cache(maxsize=16)
def disk_kernel(radius: float) -> np.ndarray:
    """``fspecial('disk', radius)``: ``(2c+1, 2c+1)`` float64 summing to 1, c = ceil(r − ½).

    ``radius`` 0 gives ``[[1.0]]`` (no filtering). The array is read-only (cached).
    """
    if radius < 0:
        raise ValueError("the disk radius must be ≥ 0")
    if radius == 0:
        k = np.ones((1, 1))
    else:
        c = math.ceil(radius - 0.5)
        k = np.array(
            [
                [
                    _square_in_disk(radius, j - 0.5, j + 0.5, i - 0.5, i + 0.5)
                    for j in range(-c, c + 1)
                ]
                for i in range(-c, c + 1)
            ]
        )
        k /= k.sum()
    k.setflags(write=False)
    return k


def kernel_half_width(radius: float) -> int:
    """Pixels the kernel reaches beyond its centre: ``ceil(r − ½)`` (0 for r = 0)."""
    return 0 if radius == 0 else math.ceil(radius - 0.5)


def disk_filter(field: np.ndarray, radius: float) -> np.ndarray:
    """Disk-average ``field`` (H, W) and return the part that has all its neighbours.

    Output ``(H − 2c, W − 2c)`` float32 (c = :func:`kernel_half_width`): pixel (i, j) is the
    kernel-weighted mean of ``field[i : i+2c+1, j : j+2c+1]`` over the neighbours that are
    not NaN (weights renormalised), NaN where the centre pixel itself is NaN. Computed in
    float32 by FFT (error ≲ 1e-6 of the field's range).
    """
    c = kernel_half_width(radius)
    field = np.asarray(field, dtype=np.float32)
    if c == 0:
        return field.copy()
    h, w = field.shape
    valid = ~np.isnan(field)
    if valid.all():
        return _convolve_valid(field, radius)
    num = _convolve_valid(np.where(valid, field, np.float32(0)), radius)
    inv_den, no_data = _weights(valid, radius)
    num *= inv_den
    num[no_data] = np.nan
    return num


def _convolve_valid(field: np.ndarray, radius: float) -> np.ndarray:
    """'valid' correlation with the disk kernel (symmetric, so = convolution), by real FFT.

    Circular convolution of period n ≥ (h, w): rows/cols 2c … h−1 are free of wrap-around.
    The 2-D transform is done axis by axis so that the inverse skips what is thrown away:
    the row transforms run only on the h input rows and on the h − 2c output rows kept.
    """
    h, w = field.shape
    c = kernel_half_width(radius)
    ny, nx = _fast_length(h), _fast_length(w)
    spec = scipy.fft.rfft(field, n=nx, axis=1)  # (h, nx//2+1) complex64
    spec = scipy.fft.fft(spec, n=ny, axis=0, overwrite_x=True)
    spec *= _kernel_fft(radius, ny, nx)
    spec = scipy.fft.ifft(spec, axis=0, overwrite_x=True)[2 * c : h]
    return scipy.fft.irfft(spec, n=nx, axis=1)[:, 2 * c : w]


def _fast_length(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (fast FFT sizes)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


@functools.lru_cache(maxsize=8)
def _kernel_fft(radius: float, h: int, w: int) -> np.ndarray:
    k = disk_kernel(radius)
    pad = np.zeros((h, w), dtype=np.float32)
    pad[: k.shape[0], : k.shape[1]] = k
    return scipy.fft.rfft2(pad)


def _compute_weights(valid: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(1 / kernel weight on the valid neighbours, pixels without a value) of a coverage mask."""
    c = kernel_half_width(radius)
    h, w = valid.shape
    den = _convolve_valid(valid.astype(np.float32), radius)
    no_data = ~valid[c : h - c, c : w - c] | (den <= 1e-6)
    with np.errstate(divide="ignore"):
        inv = np.where(no_data, np.float32(0), np.float32(1) / den).astype(np.float32)
    return inv, no_data


_weights = MaskCache(_compute_weights)


def _square_in_disk(r: float, x1: float, x2: float, y1: float, y2: float) -> float:
    """Area of the rectangle [x1, x2] × [y1, y2] inside the circle of radius r at the origin."""
    total = 0.0
    for a, b in ((max(x1, 0.0), max(x2, 0.0)), (max(-x2, 0.0), max(-x1, 0.0))):
        for c, d in ((max(y1, 0.0), max(y2, 0.0)), (max(-y2, 0.0), max(-y1, 0.0))):
            total += _quadrant_area(r, a, b, c, d)
    return total


def _quadrant_area(r: float, a: float, b: float, c: float, d: float) -> float:
    """Area of [a, b] × [c, d] (all ≥ 0) under the arc y = √(r² − x²)."""
    if a >= b or c >= d or c >= r or a >= r:
        return 0.0
    x_d = math.sqrt(r * r - d * d) if d < r else 0.0  # for x ≤ x_d the arc is above d
    x_c = math.sqrt(r * r - c * c)  # for x ≥ x_c the arc is below c
    area = (d - c) * max(0.0, min(b, x_d) - a)
    lo, hi = max(a, x_d), min(b, x_c)
    if hi > lo:
        area += _arc_integral(r, lo, hi) - c * (hi - lo)
    return area


def _arc_integral(r: float, lo: float, hi: float) -> float:
    """∫ √(r² − x²) dx from lo to hi (0 ≤ lo ≤ hi ≤ r)."""

    def prim(x: float) -> float:
        return 0.5 * (x * math.sqrt(max(r * r - x * x, 0.0)) + r * r * math.asin(min(x / r, 1.0)))

    return prim(hi) - prim(lo)
