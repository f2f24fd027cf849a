"""Conversions between reflectivity (dBZ), rain rate (mm/h) and the stored gray level.

Contracts (DESIGN.md): the internal unit is dBZ; Z = a·R^b with Z in mm^6 m^-3 and R in
mm/h; the gray level is P = clip((dBZ − z_min)/(z_max − z_min), 0, 1), stored as
uint8 round(255·P).
"""

from __future__ import annotations

import numpy as np


def rate_to_dbz(rate_mmh, a: float, b: float):
    """Rain rate R [mm/h] → reflectivity [dBZ] by Z = a·R^b, float64, same shape.

    R ≤ 0 (no rain; negative rates mean "no rain" in several products) gives −inf, which
    every gray scale maps to its lowest level; NaN (no data) stays NaN.
    """
    rate = np.asarray(rate_mmh, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dbz = 10.0 * np.log10(a) + 10.0 * b * np.log10(np.where(rate > 0, rate, np.nan))
    return np.where(rate > 0, dbz, np.where(np.isnan(rate), np.nan, -np.inf))


def dbz_to_rate(dbz, a: float, b: float):
    """Reflectivity [dBZ] → rain rate R [mm/h] by inverting Z = a·R^b. NaN stays NaN."""
    dbz = np.asarray(dbz, dtype=np.float64)
    return (10.0 ** (dbz / 10.0) / a) ** (1.0 / b)


def dbz_to_gray(dbz, z_min: float, z_max: float):
    """Reflectivity [dBZ] → gray level P in [0, 1] with fixed bounds (NaN stays NaN)."""
    dbz = np.asarray(dbz, dtype=np.float64)
    return np.clip((dbz - z_min) / (z_max - z_min), 0.0, 1.0)


def gray_to_dbz(gray, z_min: float, z_max: float):
    """Gray level P in [0, 1] → reflectivity [dBZ]."""
    return z_min + np.asarray(gray, dtype=np.float64) * (z_max - z_min)


def gray_to_uint8(gray) -> np.ndarray:
    """Gray level in [0, 1] → stored uint8 round(255·P); NaN maps to 0."""
    g = np.nan_to_num(np.asarray(gray, dtype=np.float64), nan=0.0)
    return np.rint(np.clip(g, 0.0, 1.0) * 255.0).astype(np.uint8)


def uint8_to_gray(u8) -> np.ndarray:
    """Stored uint8 → gray level in [0, 1] as float32."""
    return np.asarray(u8, dtype=np.float32) / np.float32(255.0)
