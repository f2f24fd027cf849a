"""The nowcast file: CF-1.8 netCDF with one time step per lead, written atomically.

Layout::

    time(time)                   f8   valid time of each lead, minutes since 1970-01-01
    forecast_period(time)        f8   lead time [minutes] (valid time − reference time)
    forecast_reference_time      f8   scalar: time of the last input frame
    y(y), x(x)                   f8   projected coordinates of the grid-cell centres [m]
                                      (latitude, longitude [degrees] on a lat/lon grid)
    crs                          i4   grid mapping: the input product's attributes completed
                                      by pyproj (grid_mapping_name, crs_wkt, parameters)
    lat(y, x), lon(y, x)         f8   latitude, longitude of the cell centres [degrees]
    reflectivity(time, y, x)     f4   equivalent reflectivity factor [dBZ], fill = not predicted
    rainfall_rate(time, y, x)    f4   rain rate [mm h-1] by the checkpoint's Z = a·R^b

Nothing time-of-writing dependent goes into the file (no ``history`` stamp), so the same
nowcast gives the same bytes. The file is built in a temporary file beside ``path`` and
renamed into place (:func:`nowcast.atomic.atomic_path`): a failure leaves no output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from nowcast.atomic import OutputSet, atomic_path
from nowcast.store import TIME_UNITS, _nc_attr, write_grid

FILL = np.float32(-9999.0)
_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


def write_nowcast(
    path: str | os.PathLike,
    reflectivity: np.ndarray,
    rainfall_rate: np.ndarray,
    reference_time: np.datetime64,
    lead_minutes: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    grid_mapping: Mapping[str, Any],
    attrs: Mapping[str, Any],
    outputs: OutputSet | None = None,
) -> Path:
    """Write a nowcast file atomically and return its path (with ``outputs``, it appears
    when that set of outputs is committed).

    reflectivity: (L, H, W) dBZ, NaN where nothing is predicted (outside coverage, noise).
    rainfall_rate: (L, H, W) mm/h, NaN at the same pixels.
    reference_time: time of the last observed frame (UTC).
    lead_minutes: (L,) lead of each step, > 0.
    x: (W,), y: (H,) projected cell-centre coordinates [m] (degrees on a lat/lon grid).
    grid_mapping: CF grid-mapping attributes (completed by pyproj and written on the ``crs``
        variable, with 2-D ``lat``/``lon``: :func:`nowcast.store.write_grid`).
    attrs: global attributes (values: str, numbers; dicts/lists are stored as JSON).
    """
    reflectivity = np.asarray(reflectivity, dtype=np.float32)
    rainfall_rate = np.asarray(rainfall_rate, dtype=np.float32)
    lead = np.asarray(lead_minutes, dtype=np.float64)
    n, h, w = reflectivity.shape
    if rainfall_rate.shape != reflectivity.shape or lead.shape != (n,):
        raise ValueError("reflectivity, rainfall_rate and lead_minutes disagree in shape")
    if (len(y), len(x)) != (h, w):
        raise ValueError(f"grid {len(y)}×{len(x)} does not match fields {h}×{w}")
    ref_min = (np.datetime64(reference_time, "s") - _EPOCH).astype(np.int64) / 60.0

    with atomic_path(path, outputs) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts({"Conventions": "CF-1.8", **{k: _nc_attr(v) for k, v in attrs.items()}})
            nc.createDimension("time", n)
            nc.createDimension("y", h)
            nc.createDimension("x", w)
            _variable(
                nc,
                "time",
                ("time",),
                ref_min + lead,
                standard_name="time",
                long_name="valid time",
                units=TIME_UNITS,
                calendar="standard",
                axis="T",
            )
            _variable(
                nc,
                "forecast_period",
                ("time",),
                lead,
                standard_name="forecast_period",
                long_name="lead time",
                units="minutes",
            )
            _variable(
                nc,
                "forecast_reference_time",
                (),
                ref_min,
                standard_name="forecast_reference_time",
                long_name="time of the last observed radar frame",
                units=TIME_UNITS,
                calendar="standard",
            )
            grid_attrs = write_grid(nc, x, y, dict(grid_mapping), long_names=True)
            coordinates = " ".join(
                ["forecast_reference_time forecast_period", grid_attrs.pop("coordinates", "")]
            ).strip()
            common = {**grid_attrs, "coordinates": coordinates}
            _field(
                nc,
                "reflectivity",
                reflectivity,
                standard_name="equivalent_reflectivity_factor",
                long_name="nowcast radar reflectivity",
                units="dBZ",
                **common,
            )
            _field(
                nc,
                "rainfall_rate",
                rainfall_rate,
                standard_name="rainfall_rate",
                long_name="nowcast rain rate (Z = a R^b)",
                units="mm h-1",
                **common,
            )
    return Path(path)


def _variable(nc: netCDF4.Dataset, name: str, dims: tuple[str, ...], values, **attrs) -> None:
    v = nc.createVariable(name, "f8", dims)
    v.setncatts(attrs)
    v[...] = values


def _field(nc: netCDF4.Dataset, name: str, values: np.ndarray, **attrs) -> None:
    """A (time, y, x) float32 field, one compressed chunk per lead, NaN stored as fill."""
    _, h, w = values.shape
    v = nc.createVariable(
        name,
        "f4",
        ("time", "y", "x"),
        zlib=True,
        complevel=1,  # measured: smaller and faster than level 4 + shuffle on these fields
        shuffle=False,
        chunksizes=(1, h, w),
        fill_value=FILL,
    )
    v.setncatts(attrs)
    v[:] = np.ma.masked_invalid(values)
