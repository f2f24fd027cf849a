"""Conversions between reflectivity (dBZ), rain rate (mm/h) and the stored gray level.

Contracts (docs/preprocessing.md §Units): the internal unit is dBZ; Z = a·R^b with Z in
mm^6 m^-3 and R in mm/h; the gray level is P = clip((dBZ − z_min)/(z_max − z_min), 0, 1),
stored as uint8 round(255·P). Functions take
and return numpy arrays (or scalars) of any shape; :class:`GrayScale` holds one store's
constants and also converts torch tensors. Every formula lives here only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nowcast.errors import UserError

if TYPE_CHECKING:
    import torch


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


def dbz_to_gray(dbz, z_min: float, z_max: float, clip: bool = True):
    """Reflectivity [dBZ] → gray level P with fixed bounds, float64 (NaN stays NaN).

    ``clip``: into [0, 1] (−inf and anything below ``z_min`` give 0, anything above
    ``z_max`` 1); unclipped, values above ``z_max`` give P > 1 (thresholds beyond the scale).
    """
    dbz = np.asarray(dbz, dtype=np.float64)
    gray = (dbz - z_min) / (z_max - z_min)
    return np.clip(gray, 0.0, 1.0) if clip else gray


def dbz_to_gray_float32(dbz: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    """:func:`dbz_to_gray` (clipped) computed in float32 with one temporary, for whole radar
    frames: dBZ (any shape) → gray level in [0, 1], float32, same shape; NaN stays NaN.
    The bounds are fixed constants, never a frame's own minimum and maximum."""
    g = np.asarray(dbz, dtype=np.float32) - np.float32(z_min)
    g *= np.float32(1.0 / (z_max - z_min))
    return np.clip(g, np.float32(0), np.float32(1), out=g)


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


@dataclass(frozen=True)
class GrayScale:
    """Gray-level bounds z_min, z_max [dBZ] and the Z–R relation Z = a·R^b [mm^6 m^-3, mm/h]
    of one store: gray level P ↔ dBZ ↔ rain rate (mm/h), in numpy and torch.

    The constants are those the store was preprocessed with, read from its ``preprocess``
    dict (so a threshold in mm/h means the same thing the model was trained on).
    """

    z_min: float
    z_max: float
    a: float
    b: float

    @classmethod
    def from_preprocess(
        cls,
        preprocess: Mapping[str, Any],
        source: str = "store",
        zr_default: Mapping[str, Any] | None = None,
    ) -> GrayScale:
        """Read the constants from a store's (or checkpoint's) ``preprocess`` dict.

        Accepted layouts: ``{"z_min", "z_max", "zr": {"a", "b"}}`` (the preprocessing config
        with the Z–R section nested) or flat ``{"z_min", "z_max", "a", "b"}`` / ``zr_a``,
        ``zr_b``. Where the dict holds no Z–R constants, ``zr_default`` (``{"a", "b"}``, e.g.
        the config's ``zr`` section) supplies them. Anything missing is a UserError naming
        ``source``.
        """
        zr = preprocess.get("zr") if isinstance(preprocess.get("zr"), Mapping) else {}
        fallback = zr_default or {}
        values = {
            "z_min": preprocess.get("z_min"),
            "z_max": preprocess.get("z_max"),
            "a": zr.get("a", preprocess.get("zr_a", preprocess.get("a", fallback.get("a")))),
            "b": zr.get("b", preprocess.get("zr_b", preprocess.get("b", fallback.get("b")))),
        }
        missing = [k for k, v in values.items() if not isinstance(v, (int, float))]
        if missing:
            raise UserError(
                f"{source}: preprocess attribute lacks the gray-scale constants {', '.join(missing)}"
            )
        scale = cls(**{k: float(v) for k, v in values.items()})
        if not scale.z_max > scale.z_min or scale.a <= 0 or scale.b <= 0:
            raise UserError(f"{source}: invalid gray scale {scale}")
        return scale

    # ------------------------------------------------------------------ numpy (scalars, setup)

    def mmh_to_gray(self, rate_mmh: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Rain rate [mm/h] → gray level, *unclipped* (values > 1 lie above z_max), float64."""
        dbz = rate_to_dbz(rate_mmh, self.a, self.b)
        return dbz_to_gray(dbz, self.z_min, self.z_max, clip=False)

    def max_mmh(self) -> float:
        """The rain rate [mm/h] of gray level 1 (z_max): no observation can exceed it."""
        return float(dbz_to_rate(self.z_max, self.a, self.b))

    def min_mmh(self) -> float:
        """The rain rate [mm/h] of gray level 0 (z_min)."""
        return float(dbz_to_rate(self.z_min, self.a, self.b))

    def gray_to_mmh_np(self, gray: np.ndarray) -> np.ndarray:
        """Gray level → rain rate [mm/h] (numpy, float64)."""
        return dbz_to_rate(gray_to_dbz(gray, self.z_min, self.z_max), self.a, self.b)

    def dbz_to_gray(self, dbz: np.ndarray) -> np.ndarray:
        """dBZ → gray level in [0, 1] (numpy, clipped)."""
        return dbz_to_gray(dbz, self.z_min, self.z_max)

    # ------------------------------------------------------------------ torch (per batch)

    def gray_to_mmh(self, gray: torch.Tensor) -> torch.Tensor:
        """Gray level tensor (any shape) → rain rate [mm/h], same shape, dtype and device.

        R = 10^((dBZ − 10·log10 a)/(10·b)) with dBZ = z_min + P·(z_max − z_min), written as
        one exp so that it stays a fused elementwise op.
        """
        span = self.z_max - self.z_min
        k = np.log(10.0) / (10.0 * self.b)
        offset = (self.z_min - 10.0 * np.log10(self.a)) * k
        return (gray * (span * k) + offset).exp()
