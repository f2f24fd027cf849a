"""CF-netCDF radar files → :class:`~nowcast.io.frame.Frame` (netCDF4 library).

* The field is found by CF ``standard_name`` (:data:`~nowcast.io.quantity.STANDARD_NAMES`,
  in that order of preference) or named by ``input.variable``; its units say how to turn it
  into dBZ (reflectivity in dBZ, rain rate in mm h-1 and kin, accumulation in mm / kg m-2).
* Layouts ``(y, x)`` and ``(time, y, x)`` (one frame per time step); ``(x, y)`` is
  transposed. Packing (scale_factor, add_offset), ``_FillValue``/``missing_value`` and
  ``valid_min/max/range`` are decoded; missing data becomes NaN.
* Time: the field's own time dimension, else a ``time`` coordinate (scalar or length 1),
  else a ``valid_time`` variable (CF units ``<unit> since <date>``).
* Accumulation period: ``time`` bounds or a ``start_time`` variable, else the
  ``interval_minutes`` given by the caller (the archive's frame interval).
* Grid: 1-D projected ``x``/``y`` coordinates (``m`` or ``km``, converted to m; finite and
  strictly monotonic) and the attributes of the variable named by the field's
  ``grid_mapping``; or 1-D ``longitude``/``latitude`` coordinates (units ``degrees_east`` /
  ``degrees_north``), kept in degrees, with the field's ``latitude_longitude`` grid mapping
  or, without one, ``{"grid_mapping_name": "latitude_longitude"}``.
* A field outside physical range as a whole (:func:`~nowcast.io.quantity.implausible`) or a
  time beyond what a 64-bit time stamp holds makes the file bad.
* File names are passed to the library as the file system's bytes, so a name that is not
  valid UTF-8 opens like any other.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from nowcast.io.crs import GEOGRAPHIC, is_geographic
from nowcast.io.frame import BadInputFile, Frame, Window, jsonable, window_slices
from nowcast.io.paths import FS_CODEC
from nowcast.io.quantity import (
    ACCUMULATION,
    STANDARD_NAMES,
    implausible,
    known_units,
    quantity_from_units,
    to_dbz,
    unit_factor,
)

_X_NAMES = ("projection_x_coordinate", "grid_longitude", "longitude")
_Y_NAMES = ("projection_y_coordinate", "grid_latitude", "latitude")
_LENGTH_UNITS = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0, "km": 1000.0}
#: CF units of longitude / latitude coordinates (degrees east / north)
_DEGREE_UNITS = {
    "x": ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"),
    "y": ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"),
}


def read_netcdf(
    path: str | Path,
    variable: str | None,
    zr_a: float,
    zr_b: float,
    interval_minutes: float | None,
    window: Window | None = None,
) -> list[Frame]:
    """All frames of a CF-netCDF file, oldest first. BadInputFile for anything unusable.

    window: read and convert only these rows and columns of the grid (see :class:`Frame`).
    """
    path = Path(path)
    try:
        nc = netCDF4.Dataset(path, encoding=FS_CODEC)
    except (OSError, ValueError, RuntimeError) as exc:
        raise BadInputFile(path, f"cannot read: not a valid netCDF file ({_short(exc)})") from None
    try:
        with nc:
            return _read(nc, path, variable, zr_a, zr_b, interval_minutes, window)
    except BadInputFile:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise BadInputFile(path, f"cannot read: {_short(exc)}") from None


def _read(nc, path, variable, zr_a, zr_b, interval_minutes, window) -> list[Frame]:
    var = _find_field(nc, path, variable)
    quantity, factor, units = _quantity(var, path)
    y_dim, x_dim, transpose = _spatial_dims(var, path)
    x, x_deg = _coordinate(nc, x_dim, "x", path)
    y, y_deg = _coordinate(nc, y_dim, "y", path)
    tvar = _time_variable(nc, var, path)
    times = _decode_time(tvar, path)
    period = interval_minutes
    if quantity == ACCUMULATION:
        period = _accumulation_minutes(nc, tvar, path) or interval_minutes
    rows, cols, origin = window_slices(window, (len(y), len(x)))
    index = (cols, rows) if transpose else (rows, cols)
    values = _decode(var, (slice(None),) * (var.ndim - 2) + index)
    if var.ndim == 2:
        values = values[None]
    if values.shape[0] != len(times):
        raise BadInputFile(path, f"{var.name}: {values.shape[0]} fields but {len(times)} times")
    mapping = _grid_mapping(nc, var, x_deg, y_deg, path)
    frames = []
    for k, t in enumerate(times):
        field = values[k].T if transpose else values[k]
        problem = implausible(field, quantity, factor, period)
        if problem is not None:
            when = f" at {np.datetime64(t, 's')}" if len(times) > 1 else ""
            raise BadInputFile(path, f"{var.name}{when}: {problem}")
        dbz = to_dbz(field, quantity, factor, zr_a, zr_b, period)
        frames.append(
            Frame(
                time=t,
                dbz=np.ascontiguousarray(dbz),
                x=x,
                y=y,
                grid_mapping=mapping,
                path=path,
                quantity=quantity,
                variable=var.name,
                units=units,
                origin=origin,
            )
        )
    return frames


def _find_field(nc: netCDF4.Dataset, path: Path, variable: str | None):
    if variable is not None:
        if variable not in nc.variables:
            names = ", ".join(nc.variables)
            raise BadInputFile(
                path, f"no variable {variable!r} (input.variable); the file has: {names}"
            )
        return nc.variables[variable]
    by_name = {}
    for var in nc.variables.values():
        std = getattr(var, "standard_name", None)
        if isinstance(std, str) and std in STANDARD_NAMES and var.ndim >= 2:
            by_name.setdefault(std, var)
    for std in STANDARD_NAMES:
        if std in by_name:
            return by_name[std]
    raise BadInputFile(
        path,
        "no recognisable radar field: no variable with standard_name "
        f"{', '.join(STANDARD_NAMES)} (name one with input.variable)",
    )


def _quantity(var, path: Path) -> tuple[str, float, str]:
    units = getattr(var, "units", None)
    std = getattr(var, "standard_name", None)
    if not isinstance(units, str):
        raise BadInputFile(path, f"{var.name}: no units attribute")
    quantity = STANDARD_NAMES.get(std) if isinstance(std, str) else None
    if quantity is None:
        quantity = quantity_from_units(units)
        if quantity is None:
            raise BadInputFile(path, f"{var.name}: unknown units {units!r}")
    factor = unit_factor(quantity, units)
    if factor is None:
        raise BadInputFile(
            path,
            f"{var.name}: unknown units {units!r} for {quantity} (expected {known_units(quantity)})",
        )
    return quantity, factor, units


def _spatial_dims(var, path: Path) -> tuple[str, str, bool]:
    if var.ndim not in (2, 3):
        raise BadInputFile(
            path, f"{var.name}: expected (y, x) or (time, y, x), got dimensions {var.dimensions}"
        )
    a, b = var.dimensions[-2:]
    nc = var.group()
    role_a, role_b = _axis_role(nc, a), _axis_role(nc, b)
    if (role_a, role_b) == ("x", "y"):
        return b, a, True
    return a, b, False


def _axis_role(nc, dim: str) -> str | None:
    var = nc.variables.get(dim)
    if var is None:
        return None
    std = getattr(var, "standard_name", "")
    axis = str(getattr(var, "axis", "")).upper()
    if std in _X_NAMES or axis == "X":
        return "x"
    if std in _Y_NAMES or axis == "Y":
        return "y"
    return dim if dim in ("x", "y") else None


def _coordinate(nc, dim: str, axis: str, path: Path) -> tuple[np.ndarray, bool]:
    """(values, in degrees): metres (``m`` or ``km`` converted to m), or degrees of
    longitude (axis x) / latitude (axis y) as CF writes their units."""
    if dim not in nc.variables:
        raise BadInputFile(path, f"no coordinate variable for dimension {dim!r}")
    var = nc.variables[dim]
    values = np.ma.filled(np.ma.asarray(var[:], dtype=np.float64), np.nan)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise BadInputFile(path, f"coordinate {dim!r} is not a 1-D list of finite numbers")
    step = np.diff(values)
    if not (np.all(step > 0) or np.all(step < 0)):
        raise BadInputFile(path, f"coordinate {dim!r} is not strictly increasing or decreasing")
    units = str(getattr(var, "units", "m")).strip().lower()
    if units in _DEGREE_UNITS[axis]:
        return values, True
    if units not in _LENGTH_UNITS:
        expected = "m or km" + (", degrees_east" if axis == "x" else ", degrees_north")
        raise BadInputFile(
            path, f"coordinate {dim!r}: unknown units {units!r} (expected {expected})"
        )
    return values * _LENGTH_UNITS[units], False


def _time_variable(nc, var, path: Path):
    """The variable holding the valid time(s) of ``var``."""
    if var.ndim == 3:
        tdim = var.dimensions[0]
        if tdim in nc.variables:
            return nc.variables[tdim]
        raise BadInputFile(path, f"{var.name}: no coordinate variable for dimension {tdim!r}")
    coords = str(getattr(var, "coordinates", "")).split()
    for name in (*coords, "time", "valid_time"):
        if name in nc.variables and nc.variables[name].size == 1:
            return nc.variables[name]
    raise BadInputFile(path, "cannot parse time: no 'time' coordinate or 'valid_time' variable")


def _decode_time(tvar, path: Path, values=None) -> list[np.datetime64]:
    """Times of ``tvar`` (or ``values`` in its units) as datetime64[s]."""
    units = getattr(tvar, "units", None)
    calendar = getattr(tvar, "calendar", "standard")
    try:
        raw = tvar[:] if values is None else values
        raw = np.ma.filled(np.ma.asarray(raw, dtype=np.float64), np.nan).reshape(-1)
        if raw.size == 0 or not np.all(np.isfinite(raw)):
            raise ValueError("missing value")
        dates = netCDF4.num2date(
            raw, units, calendar, only_use_cftime_datetimes=False, only_use_python_datetimes=True
        )
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise BadInputFile(
            path, f"cannot parse time {tvar.name!r} (units {units!r}): {_short(exc)}"
        ) from None
    return [np.datetime64(_naive(d), "s") for d in np.atleast_1d(dates)]


def _naive(d: dt.datetime) -> dt.datetime:
    if d.tzinfo is not None:
        d = d.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return dt.datetime(d.year, d.month, d.day, d.hour, d.minute, d.second)


def _accumulation_minutes(nc, tvar, path: Path) -> float | None:
    """Accumulation period from the time bounds or a ``start_time`` variable (None: not given)."""
    end = _decode_time(tvar, path)[0]
    bounds = getattr(tvar, "bounds", None)
    if isinstance(bounds, str) and bounds in nc.variables:
        lo, hi = _decode_time(tvar, path, nc.variables[bounds][:])[:2]
        start, end = min(lo, hi), max(lo, hi)
    elif "start_time" in nc.variables:
        start = _decode_time(nc.variables["start_time"], path)[0]
    else:
        return None
    minutes = float((end - start) / np.timedelta64(60, "s"))
    return minutes if minutes > 0 else None


def _decode(var, index: tuple[slice, ...]) -> np.ndarray:
    """``var[index]`` as float32 with every kind of missing value as NaN."""
    var.set_auto_maskandscale(False)
    raw = np.asarray(var[index])
    attrs = {k: var.getncattr(k) for k in var.ncattrs()}
    bad = np.zeros(raw.shape, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            for v in np.atleast_1d(attrs[key]):
                bad |= np.isnan(raw) if _isnan(v) else raw == v
    if "_FillValue" not in attrs and raw.dtype.kind in "iuf":
        default = netCDF4.default_fillvals.get(raw.dtype.str[1:])
        if default is not None:
            bad |= raw == np.asarray(default).astype(raw.dtype)
    values = raw.astype(np.float32)
    scale = attrs.get("scale_factor")
    offset = attrs.get("add_offset")
    if scale is not None:
        values *= np.float32(scale)
    if offset is not None:
        values += np.float32(offset)
    lo, hi = _valid_range(attrs)
    if lo is not None:
        bad |= raw < lo
    if hi is not None:
        bad |= raw > hi
    values[bad] = np.nan
    return values


def _valid_range(attrs: dict[str, Any]):
    if "valid_range" in attrs:
        lo, hi = np.asarray(attrs["valid_range"]).tolist()
        return lo, hi
    return attrs.get("valid_min"), attrs.get("valid_max")


def _isnan(v) -> bool:
    try:
        return bool(np.isnan(v))
    except TypeError:
        return False


def _grid_mapping(nc, var, x_deg: bool, y_deg: bool, path: Path) -> dict[str, Any]:
    """The attributes of the field's grid-mapping variable; on longitude/latitude
    coordinates without one, ``{"grid_mapping_name": "latitude_longitude"}``."""
    if x_deg != y_deg:
        raise BadInputFile(
            path, f"{var.name}: one horizontal coordinate is in degrees, the other in metres"
        )
    name = getattr(var, "grid_mapping", None)
    mapping: dict[str, Any] = {}
    if name and name in nc.variables:
        gm = nc.variables[name]
        mapping = {k: jsonable(gm.getncattr(k)) for k in gm.ncattrs() if k not in ("coordinates",)}
    if x_deg and not mapping:
        return {"grid_mapping_name": GEOGRAPHIC}
    if x_deg != is_geographic(mapping):
        raise BadInputFile(
            path,
            f"{var.name}: grid mapping {name!r} does not match its coordinates "
            f"({'degrees' if x_deg else 'metres'})",
        )
    return mapping


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
