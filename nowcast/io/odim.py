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
  must be finite and the pixel sizes finite and positive. The grid mapping is
  ``{"proj4_params": projdef}``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

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
    try:
        ul_x = float(_lookup(wheres, "UL_x", None))
        ul_y = float(_lookup(wheres, "UL_y", None))
        xscale = float(_lookup(wheres, "xscale", None))
        yscale = float(_lookup(wheres, "yscale", None))
    except TypeError:
        raise BadInputFile(
            path, "no projected grid in /where (needs UL_x, UL_y, xscale and yscale)"
        ) from None
    if not all(np.isfinite(v) for v in (ul_x, ul_y, xscale, yscale)) or min(xscale, yscale) <= 0:
        raise BadInputFile(
            path,
            f"/where: the grid is not usable: UL_x={ul_x:g}, UL_y={ul_y:g}, xscale={xscale:g}, "
            f"yscale={yscale:g} (corner finite, pixel sizes finite and positive)",
        )
    h, w = shape
    x = ul_x + (np.arange(w) + 0.5) * xscale
    y = ul_y - (np.arange(h) + 0.5) * yscale
    projdef = _text(_lookup(wheres, "projdef", b"")).strip()
    return x, y, ({"proj4_params": projdef} if projdef else {})


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
