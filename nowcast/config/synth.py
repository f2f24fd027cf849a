"""`synth`: the synthetic radar archive (`nowcast synth`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from pydantic import Field

from nowcast.config.base import NonNegativeInt, PositiveFloat, PositiveInt, Section


class SynthConfig(Section):
    """One CF-netCDF file per frame, shaped like a single-radar reflectivity product."""

    out: Path = Path("data/synth")
    """Folder the frame files, ``clutter_mask.nc`` and ``manifest.json`` are written to."""
    start: dt.date = dt.date(2024, 6, 1)
    """First day (UTC) of the archive."""
    days: PositiveInt = 2
    """Number of whole days to generate."""
    seed: int = 0
    """Seed: the same seed gives byte-identical fields (each day is seeded by seed and date)."""
    size: Annotated[int, Field(ge=64, le=4096)] = 480
    """Grid size in pixels (square, ``size`` × ``size``)."""
    pixel_km: PositiveFloat = 1.0
    """Grid spacing in km."""
    interval_minutes: Annotated[int, Field(ge=1, le=60)] = 6
    """Time between frames in minutes."""
    missing_per_day: NonNegativeInt = 2
    """Frames left out on purpose each day (their files are not written)."""
    clutter_patches: NonNegativeInt = 5
    """Number of fixed ground-clutter patches (discs; one radial spoke when ≥ 2)."""
