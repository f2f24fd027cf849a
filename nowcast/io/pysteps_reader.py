"""Any radar file a pysteps importer reads (``input.format: pysteps``) → :class:`Frame`.

* ``input.importer`` names the importer (``pysteps.io.get_method(name, "importer")``), checked
  against pysteps' importer registry; ``input.importer_kwargs`` are passed to it. pysteps is
  imported on the first such read only.
* The importer returns the field and its metadata. ``unit`` says what the field holds:
  ``dBZ`` (reflectivity), ``mm/h`` (rain rate) or ``mm`` (accumulation over ``accutime``
  minutes, else the caller's ``interval_minutes``). ``transform`` ``dB`` (10·log10) or
  ``log`` (natural log) of a rate or accumulation is undone, pixels equal to ``zerovalue``
  becoming "no rain"; a reflectivity is in decibels already and kept as it is (its lowest
  value, e.g. −32 dBZ, is "no echo"). NaN (and masked pixels) are outside coverage. Rates and
  accumulations become dBZ by Z = a·R^b (:func:`~nowcast.io.quantity.to_dbz`); a field
  outside physical range as a whole (:func:`~nowcast.io.quantity.implausible`) makes the
  file bad.
* Grid: the outer corners ``x1``, ``x2``, ``y1``, ``y2`` in ``cartesian_unit``: m or km
  (projected, stored in m), or degrees (a longitude/latitude grid such as MRMS, kept in
  degrees, :mod:`nowcast.io.crs`); the pixel centres are the middles of W (H) equal cells between
  them, which must agree with ``xpixelsize`` (``ypixelsize``) to half a pixel. ``yorigin``
  ``upper``: row 0 is the northern edge (y descending); ``lower``: the southern. The grid
  mapping is ``{"proj4_params": projection}``, as the ODIM reader and the CF conversions of
  these products write it.
* Time: pysteps importers give none, so the valid time (UTC) is read from the file name by
  ``input.time_format`` (see :func:`time_from_name`).
* A missing optional library (pygrib, pillow, pyproj, …) is a :class:`UserError` naming the
  package to install; a file the importer cannot read is a :class:`BadInputFile`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import inspect
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import UserError
from nowcast.io.frame import BadInputFile, Frame, Window, window_slices
from nowcast.io.quantity import (
    ACCUMULATION,
    REFLECTIVITY,
    implausible,
    quantity_from_units,
    to_dbz,
    unit_factor,
)

#: file-name patterns of products that only a pysteps importer reads: (glob, importer,
#: config in configs/data/ or ""); used to say which ``input.importer`` reads a folder
IMPORTER_HINTS: tuple[tuple[str, str, str], ...] = (
    ("*.pgm.gz", "fmi_pgm", "configs/data/fmi_pgm.yaml"),
    ("*.pgm", "fmi_pgm", ""),
    ("*.gif", "mch_gif", "configs/data/mch_gif.yaml"),
    ("*.grib2", "mrms_grib", "configs/data/mrms.yaml"),
    ("*.grib2.gz", "mrms_grib", ""),
    ("*.grib", "mrms_grib", ""),
    ("*.grb2", "mrms_grib", ""),
    ("*.tif", "fmi_geotiff", ""),
    ("*.tiff", "fmi_geotiff", ""),
)

#: Python package to install for a module an importer could not import
PACKAGES = {
    "pil": "pillow",
    "pygrib": "pygrib",
    "pyproj": "pyproj",
    "gdal": "gdal",
    "osgeo": "gdal",
    "h5py": "h5py",
    "netcdf4": "netCDF4",
    "metranet": "metranet",
}
#: packages installed by ``pip install 'nowcast[formats]'``
FORMATS_EXTRA = ("pygrib", "pillow", "pyproj")

_LENGTHS = {"m": 1.0, "km": 1000.0, "degrees": 1.0, "degree": 1.0, "deg": 1.0}
_DIRECTIVES = {"Y": 4, "y": 2, "m": 2, "d": 2, "j": 3, "H": 2, "M": 2, "S": 2}
_GRID_KEYS = ("x1", "x2", "y1", "y2", "xpixelsize", "ypixelsize")


def importer_hint(name: str) -> tuple[str, str, str] | None:
    """``(glob, importer, config)`` of the first :data:`IMPORTER_HINTS` entry whose glob
    matches the file name ``name`` (case-insensitive); None when no importer is known."""
    lower = name.lower()
    for entry in IMPORTER_HINTS:
        if fnmatch.fnmatchcase(lower, entry[0]):
            return entry
    return None


def hint_text(glob: str, importer: str, config: str) -> str:
    """The config keys that read files named like ``glob``, in words (for messages)."""
    text = f"input.format: pysteps, input.importer: {importer}, input.pattern: '{glob}'"
    return text + (f" (see {config})" if config else "")


def read_pysteps(
    path: str | Path,
    importer: str | None,
    importer_kwargs: dict[str, Any],
    time_format: str | None,
    zr_a: float,
    zr_b: float,
    interval_minutes: float | None,
    window: Window | None = None,
) -> list[Frame]:
    """The frame of ``path`` read by the pysteps importer ``importer`` (a list of one).

    importer_kwargs: passed to the importer; time_format: strftime pattern of the valid time
    in the file name; zr_a, zr_b: Z = a·R^b; interval_minutes: accumulation period when the
    importer gives none; window: read rows and columns (see :class:`Frame`; the importer
    decodes the whole file, the rest is dropped before conversion).
    Returns one frame, ``dbz`` ``(H, W)`` float32 [dBZ], NaN outside coverage.
    UserError for a config problem or a missing library, BadInputFile for a bad file.
    """
    path = Path(path)
    name, fn = resolve_importer(importer, tuple(sorted(importer_kwargs)))
    pattern = _time_pattern(time_format)
    time = time_from_name(path, time_format or "", pattern)
    precip, meta = _call(fn, name, path, importer_kwargs)
    return [_frame(path, name, precip, meta, zr_a, zr_b, interval_minutes, window, time)]


@functools.cache
def resolve_importer(name: str | None, given: tuple[str, ...] = ()) -> tuple[str, Callable]:
    """``(name, importer function)`` for ``input.importer``; UserError for no name, a name
    pysteps does not know (listing the ones it does) or a required keyword argument of the
    importer missing from ``given`` (the keys of ``input.importer_kwargs``)."""
    from nowcast.pysteps_import import import_pysteps

    interface = import_pysteps("pysteps.io.interface")
    names = sorted(getattr(interface, "_importer_methods", {}))
    if not name:
        raise UserError(
            "input.importer: required with input.format: pysteps; one of: " + ", ".join(names)
        )
    key = name.strip().lower()
    if key not in names:
        raise UserError(
            f"input.importer: unknown pysteps importer {name!r}; valid: {', '.join(names)}"
        )
    fn = interface.get_method(key, "importer")
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]  # after the file name
    except (TypeError, ValueError):
        params = []
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in given
    ]
    if missing:
        raise UserError(
            f"input.importer_kwargs: the pysteps importer {key!r} needs "
            f"{', '.join(missing)} (e.g. input.importer_kwargs: {{{missing[0]}: …}})"
        )
    return key, fn


def time_from_name(
    path: Path, time_format: str, pattern: re.Pattern | None = None
) -> np.datetime64:
    """Valid time (UTC, ``datetime64[s]``) found in ``path``'s name by the strftime pattern
    ``time_format``: each directive matches its fixed number of digits (%Y 4, %j 3, the
    others 2), other text itself; the first match in the name counts.
    BadInputFile when the name holds no such time."""
    pattern = pattern or _time_pattern(time_format)
    found = pattern.search(path.name)
    if found is not None:
        try:
            return np.datetime64(dt.datetime.strptime(found.group(0), time_format), "s")
        except ValueError:
            pass
    raise BadInputFile(
        path, f"cannot parse time: no {time_format!r} (input.time_format) in the file name"
    )


@functools.lru_cache(maxsize=64)
def _time_pattern(time_format: str | None) -> re.Pattern:
    if not time_format:
        raise UserError(
            "input.time_format: required with input.format: pysteps (the strftime pattern "
            "of the valid time in the file names, e.g. '%Y%m%d%H%M')"
        )
    parts, i = [], 0
    while i < len(time_format):
        c = time_format[i]
        if c != "%":
            parts.append(re.escape(c))
            i += 1
            continue
        d = time_format[i + 1 : i + 2]
        if d == "%":
            parts.append("%")
        elif d in _DIRECTIVES:
            parts.append(rf"\d{{{_DIRECTIVES[d]}}}")
        else:
            raise UserError(
                f"input.time_format: {time_format!r}: %{d} is not supported "
                f"(directives: {' '.join('%' + k for k in _DIRECTIVES)})"
            )
        i += 2
    if "%Y" not in time_format and "%y" not in time_format:
        raise UserError(f"input.time_format: {time_format!r} has no year (%Y or %y)")
    return re.compile("".join(parts))


def _call(fn: Callable, name: str, path: Path, kwargs: dict[str, Any]):
    from nowcast.pysteps_import import import_pysteps

    missing_dependency = import_pysteps("pysteps.exceptions").MissingOptionalDependency
    try:
        precip, _quality, meta = fn(os.fspath(path), **kwargs)
    except missing_dependency as exc:
        first = str(exc).split(" ", 1)[0]
        raise UserError(_missing_package(name, first)) from None
    except ModuleNotFoundError as exc:
        raise UserError(_missing_package(name, (exc.name or "?").split(".")[0])) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 — importers raise anything on a bad file
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BadInputFile(
            path, f"cannot read with the pysteps importer {name!r}: {text}"
        ) from None
    if not isinstance(meta, dict):
        raise BadInputFile(path, f"the pysteps importer {name!r} gave no metadata")
    return precip, meta


def _missing_package(importer: str, module: str) -> str:
    package = PACKAGES.get(module.lower(), module)
    extra = " (or: pip install 'nowcast[formats]')" if package in FORMATS_EXTRA else ""
    return (
        f"input.importer {importer!r} needs the Python package {package}, which is not "
        f"installed: pip install {package}{extra}"
    )


def _frame(path, name, precip, meta, zr_a, zr_b, interval_minutes, window, time) -> Frame:
    data = np.ma.getdata(precip)
    values = np.array(data, dtype=np.float32)  # float32, as the CF reader decodes
    mask = np.ma.getmask(precip)
    if mask is not np.ma.nomask:
        values[np.broadcast_to(mask, values.shape)] = np.nan
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise BadInputFile(
            path, f"the pysteps importer {name!r} gave a field of shape {values.shape}"
        )
    unit = str(meta.get("unit", ""))
    quantity = quantity_from_units(unit)
    factor = unit_factor(quantity, unit) if quantity else None
    if factor is None:
        raise BadInputFile(
            path, f"the pysteps importer {name!r} gave unit {unit!r} (readable: dBZ, mm/h, mm)"
        )
    period = interval_minutes
    if quantity == ACCUMULATION:
        period = _positive(meta.get("accutime")) or interval_minutes
    x, y = _grid(path, name, meta, values.shape)
    rows, cols, origin = window_slices(window, values.shape)
    values = _untransform(path, name, values[rows, cols], quantity, meta)
    problem = implausible(values, quantity, factor, period)
    if problem is not None:
        raise BadInputFile(path, f"{name}: {problem}")
    dbz = to_dbz(values, quantity, factor, zr_a, zr_b, period)
    projection = str(meta.get("projection") or "").strip()
    return Frame(
        time=time,
        dbz=np.ascontiguousarray(dbz, dtype=np.float32),
        x=x,
        y=y,
        grid_mapping={"proj4_params": projection} if projection else {},
        path=path,
        quantity=quantity,
        variable=name,
        units=unit,
        format=f"pysteps:{name}",
        origin=origin,
    )


def _untransform(path, name, values: np.ndarray, quantity: str, meta: dict) -> np.ndarray:
    """Values in the unit of ``meta['unit']``: a dB or log transform of a rate or
    accumulation undone (pixels at ``zerovalue`` become 0, no rain)."""
    transform = meta.get("transform")
    if transform in (None, "", "None") or (quantity == REFLECTIVITY and transform == "dB"):
        return values
    if quantity == REFLECTIVITY or transform not in ("dB", "log"):
        raise BadInputFile(
            path, f"the pysteps importer {name!r} gave transform {transform!r} for {meta['unit']!r}"
        )
    zero = _finite(meta.get("zerovalue"))
    dry = values == np.float32(zero) if zero is not None else np.zeros(values.shape, bool)
    with np.errstate(over="ignore", invalid="ignore"):
        out = 10.0 ** (values / 10.0) if transform == "dB" else np.exp(values)
    out = out.astype(np.float32)
    out[dry] = 0.0
    return out


def _grid(path: Path, name: str, meta: dict, shape: tuple[int, int]):
    """Pixel-centre x (W,) and y (H,) from the importer's corners and pixel sizes: [m] on a
    projected grid, [degrees] of longitude / latitude on a geographic one."""
    unit = str(meta.get("cartesian_unit", "m")).strip().lower()
    if unit not in _LENGTHS:
        projection = str(meta.get("projection") or "").strip()
        raise BadInputFile(
            path,
            f"the pysteps importer {name!r} gave a grid in {unit!r} (projection "
            f"{projection!r}): grids in m, km or degrees are read",
        )
    values = {k: _finite(meta.get(k)) for k in _GRID_KEYS}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise BadInputFile(
            path,
            f"the pysteps importer {name!r} gave no usable grid ({', '.join(missing)} "
            "missing or not finite in its metadata)",
        )
    x1, x2, y1, y2, dx, dy = (values[k] for k in _GRID_KEYS)
    h, w = shape
    if dx <= 0 or dy <= 0 or abs((x2 - x1) / dx - w) > 0.5 or abs((y2 - y1) / dy - h) > 0.5:
        raise BadInputFile(
            path,
            f"the pysteps importer {name!r} gave a grid x {x1:g}…{x2:g}, y {y1:g}…{y2:g} with "
            f"pixels {dx:g}×{dy:g} that does not fit its {h}×{w} field",
        )
    yorigin = meta.get("yorigin", "upper")
    if yorigin not in ("upper", "lower"):
        raise BadInputFile(path, f"the pysteps importer {name!r} gave yorigin {yorigin!r}")
    scale = _LENGTHS[unit]
    x = _centres(x1, x2, w) * scale
    y = _centres(y1, y2, h) * scale
    return x, (y[::-1] if yorigin == "upper" else y).copy()


def _centres(lo: float, hi: float, n: int) -> np.ndarray:
    """Centres of ``n`` equal cells between the edges ``lo`` and ``hi``, ascending."""
    edges = np.linspace(lo, hi, n + 1)
    return (edges[:-1] + edges[1:]) / 2.0


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _positive(value) -> float | None:
    v = _finite(value)
    return v if v is not None and v > 0 else None
