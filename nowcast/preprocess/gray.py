"""Step 1: reflectivity → gray level with fixed bounds (never per-frame min/max)."""

from __future__ import annotations

import numpy as np


def gray_level(dbz: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    """dBZ → gray level P = clip((dBZ − z_min)/(z_max − z_min), 0, 1), float32, same shape.

    NaN (outside coverage) stays NaN; −inf (no echo) and anything below ``z_min`` give 0;
    anything above ``z_max`` gives 1. (:func:`nowcast.units.dbz_to_gray` is the float64
    reference of the same formula.)
    """
    g = np.asarray(dbz, dtype=np.float32) - np.float32(z_min)
    g *= np.float32(1.0 / (z_max - z_min))
    return np.clip(g, np.float32(0), np.float32(1), out=g)
