"""The gray scale of a dataset store: gray level P ↔ dBZ ↔ rain rate (mm/h), in torch and numpy.

P = (dBZ − z_min)/(z_max − z_min), Z = a·R^b (docs/preprocessing.md); the constants are those the
store was preprocessed with, read from its ``preprocess`` dict (so a threshold in mm/h
means the same thing the model was trained on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nowcast.errors import UserError
from nowcast.units import dbz_to_gray, dbz_to_rate, rate_to_dbz


@dataclass(frozen=True)
class GrayScale:
    """Gray-level bounds z_min, z_max [dBZ] and the Z–R relation Z = a·R^b [mm^6 m^-3, mm/h]."""

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
        return (dbz - self.z_min) / (self.z_max - self.z_min)

    def max_mmh(self) -> float:
        """The rain rate [mm/h] of gray level 1 (z_max): no observation can exceed it."""
        return float(dbz_to_rate(self.z_max, self.a, self.b))

    def min_mmh(self) -> float:
        """The rain rate [mm/h] of gray level 0 (z_min)."""
        return float(dbz_to_rate(self.z_min, self.a, self.b))

    def gray_to_mmh_np(self, gray: np.ndarray) -> np.ndarray:
        """Gray level → rain rate [mm/h] (numpy, float64)."""
        dbz = self.z_min + np.asarray(gray, dtype=np.float64) * (self.z_max - self.z_min)
        return dbz_to_rate(dbz, self.a, self.b)

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
        return torch.exp(gray * (span * k) + offset)
