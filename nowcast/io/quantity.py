"""What a radar variable holds (reflectivity, rain rate, accumulation) and its conversion to dBZ.

Rain rates convert by Z = a·R^b (:func:`nowcast.units.rate_to_dbz`, config ``zr``);
accumulations are first turned into the mean rate over their interval. A rate ≤ 0 is
"no echo" and becomes −inf dBZ (gray level 0 after clipping); NaN stays NaN (outside
coverage, no data). Only NaN means "no data": a dry frame is data.

Plausible values (:func:`implausible`): reflectivity within :data:`DBZ_RANGE` (or −inf,
no echo), rain rate at most :data:`MAX_RATE_MMH` (≤ 0: no rain). A frame none of whose
pixels with data is plausible is outside physical range as a whole (a broken file, e.g.
every pixel 1e30 dBZ or +inf); single implausible pixels are kept (clipped to the gray
scale).
"""

from __future__ import annotations

import numpy as np

from nowcast.units import rate_to_dbz

REFLECTIVITY, RATE, ACCUMULATION = "reflectivity", "rate", "accumulation"

#: plausible reflectivity of a pixel with data [dBZ] (−inf, no echo, is plausible too)
DBZ_RANGE = (-50.0, 100.0)
#: plausible rain rate of a pixel with data [mm/h] (≤ 0 is no rain)
MAX_RATE_MMH = 1000.0

#: CF standard names recognised, in order of preference, and what they hold
STANDARD_NAMES: dict[str, str] = {
    "equivalent_reflectivity_factor": REFLECTIVITY,
    "rainfall_rate": RATE,
    "lwe_precipitation_rate": RATE,
    "precipitation_amount": ACCUMULATION,
    "lwe_thickness_of_precipitation_amount": ACCUMULATION,
    "rainfall_amount": ACCUMULATION,
    "thickness_of_rainfall_amount": ACCUMULATION,
}

#: units (normalised by :func:`normalise_units`) → factor to dBZ / mm h-1 / mm
UNITS: dict[str, dict[str, float]] = {
    REFLECTIVITY: {"dbz": 1.0},
    RATE: {
        "mm h-1": 1.0,
        "mm/h": 1.0,
        "mm hr-1": 1.0,
        "mm/hr": 1.0,
        "kg m-2 h-1": 1.0,
        "mm s-1": 3600.0,
        "mm/s": 3600.0,
        "kg m-2 s-1": 3600.0,
        "m s-1": 3.6e6,
        "m/s": 3.6e6,
        "mm d-1": 1.0 / 24.0,
        "mm day-1": 1.0 / 24.0,
        "mm/day": 1.0 / 24.0,
    },
    ACCUMULATION: {"mm": 1.0, "kg m-2": 1.0, "kg/m2": 1.0, "m": 1000.0},
}


def normalise_units(units: str) -> str:
    """Lower-case, no ``**``/``^``, single spaces: ``'kg m**-2'`` → ``'kg m-2'``."""
    text = str(units).strip().lower().replace("**", "").replace("^", "").replace(".", " ")
    return " ".join(text.split())


def quantity_from_units(units: str) -> str | None:
    """The quantity that ``units`` can only mean (None if unknown)."""
    key = normalise_units(units)
    for quantity, table in UNITS.items():
        if key in table:
            return quantity
    return None


def unit_factor(quantity: str, units: str) -> float | None:
    """Factor from ``units`` to dBZ (reflectivity), mm h-1 (rate) or mm (accumulation)."""
    return UNITS[quantity].get(normalise_units(units))


def known_units(quantity: str) -> str:
    """The accepted units of ``quantity``, for messages."""
    return ", ".join(repr(u) for u in UNITS[quantity])


def to_dbz(
    values: np.ndarray,
    quantity: str,
    factor: float,
    zr_a: float,
    zr_b: float,
    interval_minutes: float | None = None,
) -> np.ndarray:
    """Field in its file units → reflectivity [dBZ], float32, same shape.

    values: the decoded field (NaN = no data); factor: from :func:`unit_factor`;
    interval_minutes: the accumulation period (accumulations only). Rates ≤ 0 → −inf.
    """
    values = np.asarray(values, dtype=np.float32)
    if quantity == REFLECTIVITY:
        return values if factor == 1.0 else values * np.float32(factor)
    return rate_to_dbz(_rate(values, quantity, factor, interval_minutes), zr_a, zr_b).astype(
        np.float32
    )


def implausible(
    values: np.ndarray,
    quantity: str,
    factor: float,
    interval_minutes: float | None = None,
) -> str | None:
    """Why a decoded field (file units, NaN = no data) is outside physical range as a
    whole, or None when at least one pixel with data is plausible (or none has data).

    Plausible: reflectivity in :data:`DBZ_RANGE` [dBZ] or −inf (no echo); rain rate (an
    accumulation's mean rate over ``interval_minutes``) ≤ :data:`MAX_RATE_MMH` [mm/h].
    """
    values = np.asarray(values)
    if values.size == 0:
        return None
    if quantity == REFLECTIVITY:
        dbz = values.astype(np.float64) * factor
        data = dbz[~np.isnan(dbz)]
        lo, hi = DBZ_RANGE
        ok = (data == -np.inf) | ((data >= lo) & (data <= hi))
        what, unit = f"{lo:g} to {hi:g}", "dBZ"
    else:
        rate = _rate(values, quantity, factor, interval_minutes)
        data = rate[~np.isnan(rate)]
        ok = data <= MAX_RATE_MMH
        what, unit = f"at most {MAX_RATE_MMH:g}", "mm/h"
        if quantity == ACCUMULATION:
            unit += " (mean rate of the accumulation)"
    if data.size == 0 or ok.any():
        return None
    return (
        f"outside physical range: every value with data lies in {data.min():.4g} … "
        f"{data.max():.4g} {unit}, none is plausible ({what})"
    )


def _rate(
    values: np.ndarray, quantity: str, factor: float, interval_minutes: float | None
) -> np.ndarray:
    """Rain rate [mm/h] of a rate or accumulation field in its file units, float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        rate = np.asarray(values, dtype=np.float64) * factor
        if quantity == ACCUMULATION:
            if not interval_minutes or interval_minutes <= 0:
                raise ValueError("an accumulation needs a positive interval")
            rate = rate * (60.0 / interval_minutes)
    return rate
