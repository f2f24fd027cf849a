"""ODIM_H5 composites (Cartesian products) → :class:`~nowcast.io.frame.Frame` (h5py).

* The field is ``/datasetN/dataM/data`` whose ``what/quantity`` is DBZH or TH
  (reflectivity, dBZ), RATE (mm h-1) or ACRR (accumulation, mm), preferred in that order,
  or the quantity named by ``input.variable``.
* Decoding: value = offset + gain·raw; ``nodata`` (and NaN) → NaN (outside coverage),
  ``undetect`` → no echo (−inf dBZ). ``gain``, ``offset``, ``nodata``, ``undetect`` are
  looked up in ``dataM/what``, then ``datasetN/what``, then ``/what`` (ODIM inheritance);
  defaults gain 1, offset 0. A gain or offset that is not a finite number decodes nothing:
  every pixel is NaN (a frame without data). A field outside physical range as a whole
  (:func:`~nowcast.io.quantity.implausible`) makes the file bad.
* Time: ``/what`` ``date`` (YYYYMMDD) and ``time`` (HHMMSS), the nominal valid time.
  An ACRR accumulation lasts from ``datasetN/what`` startdate/starttime to
  enddate/endtime, else the ``interval_minutes`` given by the caller.
* Grid: ``where`` (``datasetN/where`` first, then ``/where``) ``UL_x``, ``UL_y`` (the
  upper-left corner of the upper-left pixel, projected metres), ``xscale``, ``yscale``;
  pixel centres are ``UL_x + (i + ½)·xscale`` and ``UL_y − (j + ½)·yscale``; the corner
  must be finite and the pixel sizes finite and positive. Without ``UL_x``/``UL_y`` (OPERA
  and most national composites) the grid comes from ``projdef`` (a PROJ string) and the
  outer corners ``LL_lon``/``LL_lat`` and ``UR_lon``/``UR_lat`` [degrees], projected with
  pyproj: UL_x = x(LL), UL_y = y(UR), pixel sizes (x(UR) − x(LL))/W and
  (y(UR) − y(LL))/H, or ``xscale``/``yscale`` when given (they must agree within 1 %).
  The grid mapping is ``{"proj4_params": projdef}``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyproj
from pyproj.exceptions import CRSError

from nowcast.io.crs import projected_xy
from nowcast.io.frame import BadInputFile, Frame, Window, window_slices
from nowcast.io.quantity import ACCUMULATION, RATE, REFLECTIVITY, implausible, to_dbz

#: ODIM quantities read, in order of preference: (quantity, units as in ODIM)
QUANTITIES: dict[str, tuple[str, str]] = {
    "DBZH": (REFLECTIVITY, "dBZ"),
    "TH": (REFLECTIVITY, "dBZ"),
    "RATE": (RATE, "mm/h"),
    "ACRR": (ACCUMULATION, "mm"),
}


def is_odim(h5: h5py.File) -> bool:
    """True when an open HDF5 file says it follows ODIM_H5 (root ``Conventions``)."""
    conv = _text(h5.attrs.get("Conventions", b""))
    return conv.upper().startswith("ODIM_H5")


def read_odim(
    path: str | Path,
    variable: str | None,
    zr_a: float,
    zr_b: float,
    interval_minutes: float | None,
    h5: h5py.File | None = None,
    window: Window | None = None,
) -> list[Frame]:
    """The frame of an ODIM_H5 composite (a list of one). BadInputFile if unusable.

    window: read and convert only these rows and columns of the grid (see :class:`Frame`).
    """
    path = Path(path)
    try:
        if h5 is None:
            with h5py.File(path, "r") as f:
                return [_read(f, path, variable, zr_a, zr_b, interval_minutes, window)]
        return [_read(h5, path, variable, zr_a, zr_b, interval_minutes, window)]
    except BadInputFile:
        raise
    except (OSError, KeyError, ValueError, TypeError, OverflowError) as exc:
        raise BadInputFile(
            path, f"cannot read ODIM_H5 data: {' '.join(str(exc).split())[:200]}"
        ) from None


def _read(f: h5py.File, path: Path, variable, zr_a, zr_b, interval_minutes, window) -> Frame:
    dataset, data, name = _find_field(f, path, variable)
    quantity, units = QUANTITIES[name]
    what = [data.get("what"), dataset.get("what"), f.get("what")]
    gain = float(_lookup(what, "gain", 1.0))
    offset = float(_lookup(what, "offset", 0.0))
    nodata = _lookup(what, "nodata", None)
    undetect = _lookup(what, "undetect", None)
    image = data["data"]
    if image.ndim != 2:
        raise BadInputFile(path, f"{data.name}/data: expected a 2-D image, got shape {image.shape}")
    rows, cols, origin = window_slices(window, image.shape)
    raw = np.asarray(image[rows, cols])
    values = raw.astype(np.float32) * np.float32(gain) + np.float32(offset)
    no_echo = np.zeros(raw.shape, dtype=bool) if undetect is None else raw == undetect
    missing = np.isnan(values) if raw.dtype.kind == "f" else np.zeros(raw.shape, dtype=bool)
    if not (np.isfinite(gain) and np.isfinite(offset)):
        missing[:] = True  # nothing can be decoded: the whole frame is without data
    if nodata is not None:
        missing |= raw == nodata
    values[no_echo] = 0.0 if quantity != REFLECTIVITY else -np.inf
    values[missing] = np.nan
    time = _valid_time(f, path)
    period = interval_minutes
    if quantity == ACCUMULATION:
        period = _accumulation_minutes(dataset) or interval_minutes
    x, y, mapping = _grid(f, dataset, image.shape, path)
    problem = implausible(values, quantity, 1.0, period)
    if problem is not None:
        raise BadInputFile(path, f"{data.name}/data: {problem}")
    dbz = to_dbz(values, quantity, 1.0, zr_a, zr_b, period)
    return Frame(
        time=time,
        dbz=dbz,
        x=x,
        y=y,
        grid_mapping=mapping,
        path=path,
        quantity=quantity,
        variable=name,
        units=units,
        format="odim_h5",
        origin=origin,
    )


def _find_field(f: h5py.File, path: Path, variable: str | None):
    found: list[tuple[Any, Any, str]] = []
    for ds_name in sorted((k for k in f if re.fullmatch(r"dataset\d+", k)), key=_index):
        dataset = f[ds_name]
        for d_name in sorted((k for k in dataset if re.fullmatch(r"data\d+", k)), key=_index):
            data = dataset[d_name]
            q = _text(_lookup([data.get("what"), dataset.get("what")], "quantity", b""))
            if "data" in data:
                found.append((dataset, data, q))
    wanted = [variable.upper()] if variable else list(QUANTITIES)
    for name in wanted:
        for dataset, data, q in found:
            if q.upper() == name:
                if name not in QUANTITIES:
                    raise BadInputFile(
                        path,
                        f"ODIM quantity {q!r}: unknown units (readable: {', '.join(QUANTITIES)})",
                    )
                return dataset, data, name
    have = ", ".join(sorted({q for _, _, q in found})) or "none"
    want = (
        f"quantity {variable!r} (input.variable)"
        if variable
        else f"quantity {', '.join(QUANTITIES)}"
    )
    raise BadInputFile(
        path, f"no recognisable radar field: no ODIM {want} (quantities in the file: {have})"
    )


def _valid_time(f: h5py.File, path: Path) -> np.datetime64:
    what = f.get("what")
    date = _text(what.attrs.get("date", b"")) if what is not None else ""
    time = _text(what.attrs.get("time", b"")) if what is not None else ""
    try:
        stamp = dt.datetime.strptime(date + time.ljust(6, "0")[:6], "%Y%m%d%H%M%S")
    except ValueError:
        raise BadInputFile(
            path,
            f"cannot parse time: /what date={date!r} time={time!r} (expected YYYYMMDD, HHMMSS)",
        ) from None
    return np.datetime64(stamp, "s")


def _accumulation_minutes(dataset) -> float | None:
    what = dataset.get("what")
    if what is None:
        return None
    try:
        start = dt.datetime.strptime(
            _text(what.attrs["startdate"]) + _text(what.attrs["starttime"]), "%Y%m%d%H%M%S"
        )
        end = dt.datetime.strptime(
            _text(what.attrs["enddate"]) + _text(what.attrs["endtime"]), "%Y%m%d%H%M%S"
        )
    except (KeyError, ValueError):
        return None
    minutes = (end - start).total_seconds() / 60.0
    return minutes if minutes > 0 else None


def _grid(f: h5py.File, dataset, shape: tuple[int, ...], path: Path):
    wheres = [dataset.get("where"), f.get("where")]
    projdef = _text(_lookup(wheres, "projdef", b"")).strip()
    mapping = {"proj4_params": projdef} if projdef else {}
    h, w = shape
    if _lookup(wheres, "UL_x", None) is None or _lookup(wheres, "UL_y", None) is None:
        x0, y0, xscale, yscale = _corner_grid(wheres, projdef, (h, w), path)
    else:
        x0, y0 = _number(wheres, "UL_x", path), _number(wheres, "UL_y", path)
        xscale, yscale = _number(wheres, "xscale", path), _number(wheres, "yscale", path)
    if not all(np.isfinite(v) for v in (x0, y0, xscale, yscale)) or min(xscale, yscale) <= 0:
        raise BadInputFile(
            path,
            f"/where: the grid is not usable: UL_x={x0:g}, UL_y={y0:g}, xscale={xscale:g}, "
            f"yscale={yscale:g} (corner finite, pixel sizes finite and positive)",
        )
    x = x0 + (np.arange(w) + 0.5) * xscale
    y = y0 - (np.arange(h) + 0.5) * yscale
    return x, y, mapping


def _number(wheres, key: str, path: Path) -> float:
    value = _lookup(wheres, key, None)
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise BadInputFile(
            path,
            f"/where {key}: not a number ({_text(value) if value is not None else 'absent'}); "
            "a projected grid needs UL_x, UL_y, xscale and yscale, or projdef with the "
            "LL_lon, LL_lat, UR_lon, UR_lat corners",
        ) from None


def _corner_grid(wheres, projdef: str, shape: tuple[int, int], path: Path):
    """(UL_x, UL_y, xscale, yscale) [m] from ``projdef`` and the lower-left and upper-right
    corners (longitude/latitude of the outer corners of those pixels), by pyproj."""
    needed = ("LL_lon", "LL_lat", "UR_lon", "UR_lat")
    missing = [k for k in needed if _lookup(wheres, k, None) is None]
    if not projdef or missing:
        what = ", ".join((["projdef"] if not projdef else []) + missing)
        raise BadInputFile(
            path,
            "no projected grid in /where: needs UL_x, UL_y, xscale and yscale, or projdef with "
            f"the LL_lon, LL_lat, UR_lon, UR_lat corners (missing: {what})",
        )
    try:
        crs = pyproj.CRS.from_proj4(projdef)
    except CRSError as exc:
        raise BadInputFile(
            path, f"/where projdef {projdef!r}: not a projection pyproj knows ({_first(exc)})"
        ) from None
    if not crs.is_projected:
        raise BadInputFile(path, f"/where projdef {projdef!r}: not a projected CRS")
    lon0, lat0, lon1, lat1 = (_number(wheres, k, path) for k in needed)
    x1, y1 = projected_xy(crs, lon0, lat0)
    x2, y2 = projected_xy(crs, lon1, lat1)
    if not all(np.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise BadInputFile(
            path,
            f"/where: the corners LL ({lon0:g}, {lat0:g}) and UR ({lon1:g}, {lat1:g}) do not "
            f"span a grid in {projdef!r}",
        )
    h, w = shape
    xscale = (x2 - x1) / w
    yscale = (y2 - y1) / h
    for key, derived in (("xscale", xscale), ("yscale", yscale)):
        if _lookup(wheres, key, None) is not None:
            given = _number(wheres, key, path)
            if not abs(given - derived) <= 0.01 * abs(given):
                raise BadInputFile(
                    path,
                    f"/where {key}={given:g} disagrees with the corners, which give {derived:g} "
                    f"m for {w}×{h} pixels",
                )
            derived = given
        if key == "xscale":
            xscale = derived
        else:
            yscale = derived
    return x1, y2, xscale, yscale


def _first(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]


def _lookup(groups, key: str, default):
    for g in groups:
        if g is not None and key in g.attrs:
            return g.attrs[key]
    return default


def _index(name: str) -> int:
    return int(re.sub(r"\D", "", name))


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("ascii", "replace").rstrip("\x00")
    return str(value)
