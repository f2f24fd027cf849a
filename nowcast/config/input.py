"""`input`: which radar files `nowcast preprocess` reads, and how."""

from __future__ import annotations

from typing import Optional

from nowcast.config.base import Section


class InputConfig(Section):
    """The raw radar files (CF-netCDF or ODIM_H5) and how to find the field in them."""

    paths: list[str] = []
    """Files, directories (searched recursively) or glob patterns; ``--input`` replaces it."""
    pattern: str = "*"
    """File-name glob applied inside directories (only names ending in .nc, .nc4, .cdf,
    .h5, .hdf5 or .hdf are taken there), e.g. ``synth_*.nc``; files named directly or
    matched by a glob in ``paths`` are always taken."""
    variable: Optional[str] = None
    """The field to read: a netCDF variable name or an ODIM quantity (DBZH, TH, RATE, ACRR).
    None: find it by CF standard_name (equivalent_reflectivity_factor, rainfall_rate,
    precipitation_amount) or by ODIM quantity."""
    skip_bad: bool = False
    """Skip unreadable or unusable files (and count them in the summary) instead of stopping
    with an error naming the first one; ``--skip-bad`` sets it."""
