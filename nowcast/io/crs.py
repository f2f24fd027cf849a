"""Coordinate reference systems of radar grids (pyproj).

A grid mapping is a dict of CF grid-mapping attributes as read from a file
(:attr:`nowcast.io.frame.Frame.grid_mapping`). It describes a CRS through, in this order:
``crs_wkt`` or ``spatial_ref`` (WKT), ``proj4_params``, ``proj4`` or ``proj4text`` (a PROJ
string, as ODIM_H5 ``projdef``), or the CF attributes themselves (``grid_mapping_name`` …).
An empty mapping describes none (a grid on no known CRS).

Grids in a projected CRS have x/y in metres; grids in a geographic CRS
(``grid_mapping_name: latitude_longitude``) have x = longitude [degrees_east] and
y = latitude [degrees_north]. Crop and disk filter work in pixels either way.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyproj
from pyproj.exceptions import CRSError

from nowcast.io.frame import jsonable

GEOGRAPHIC = "latitude_longitude"
"""CF ``grid_mapping_name`` of a grid whose x/y are longitude/latitude in degrees."""

_WKT_KEYS = ("crs_wkt", "spatial_ref")
_PROJ_KEYS = ("proj4_params", "proj4", "proj4text")


def crs_of(mapping: Mapping[str, Any] | None) -> pyproj.CRS | None:
    """The CRS a grid mapping describes (see module docstring); None when it describes none
    or pyproj cannot make sense of it."""
    if not mapping:
        return None
    for keys, make in (
        (_WKT_KEYS, pyproj.CRS.from_wkt),
        (_PROJ_KEYS, pyproj.CRS.from_proj4),
    ):
        for key in keys:
            text = mapping.get(key)
            if isinstance(text, str) and text.strip():
                try:
                    return make(text.strip())
                except CRSError:
                    pass
    if "grid_mapping_name" in mapping:
        try:
            return pyproj.CRS.from_cf(dict(mapping))
        except (CRSError, KeyError, TypeError, ValueError):
            return None
    return None


def is_geographic(mapping: Mapping[str, Any] | None) -> bool:
    """Whether a grid mapping puts x/y in degrees of longitude/latitude."""
    if not mapping:
        return False
    name = mapping.get("grid_mapping_name")
    if name is not None:
        return name == GEOGRAPHIC
    for key in (*_WKT_KEYS, *_PROJ_KEYS):
        text = mapping.get(key)
        if isinstance(text, str) and text.strip():
            return _text_is_geographic(key in _WKT_KEYS, text.strip())
    return False


@functools.lru_cache(maxsize=64)
def _text_is_geographic(wkt: bool, text: str) -> bool:
    try:
        crs = pyproj.CRS.from_wkt(text) if wkt else pyproj.CRS.from_proj4(text)
    except CRSError:
        return False
    return bool(crs.is_geographic)


def cf_grid_mapping(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    """The mapping completed with pyproj's CF attributes (``grid_mapping_name``, ``crs_wkt``
    and the projection parameters, :meth:`pyproj.CRS.to_cf`); the mapping's own values win
    where both give one. A mapping that describes no CRS is returned unchanged (as a dict)."""
    mapping = dict(mapping or {})
    crs = crs_of(mapping)
    if crs is None:
        return mapping
    with warnings.catch_warnings():  # a parameter CF cannot express: crs_wkt still holds it
        warnings.simplefilter("ignore", UserWarning)
        cf = jsonable(crs.to_cf())
    if cf.get("grid_mapping_name") == "polar_stereographic":
        # CF requires the pole (±90); pyproj leaves it out of the standard-parallel variant
        parallel = cf.get("standard_parallel", cf.get("latitude_of_projection_origin", 90.0))
        cf.setdefault("latitude_of_projection_origin", 90.0 if float(parallel) >= 0 else -90.0)
    if cf.get("grid_mapping_name") == "oblique_mercator" and "azimuth_of_central_line" in cf:
        # CF's attribute is azimuth_of_central_line; the IOOS compliance checker (6.x)
        # requires it under the name "azimuth": both are written, with the same value
        cf.setdefault("azimuth", cf["azimuth_of_central_line"])
    return {**cf, **mapping}


def same_crs(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two grid mappings describe the same CRS (by pyproj when both describe one,
    however it is written; else by equal attributes, :func:`_same_attributes`)."""
    ca, cb = crs_of(a), crs_of(b)
    if ca is not None and cb is not None:
        return ca == cb
    return _same_attributes(jsonable(dict(a or {})), jsonable(dict(b or {})))


def _same_attributes(a: Any, b: Any) -> bool:
    """Grid-mapping attributes equal, numbers to 1e-6 relative (float32/64 round trips), a
    one-element list equal to its element."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_attributes(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_attributes(u, v) for u, v in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(np.isclose(a, b, rtol=1e-6, atol=0))
    if isinstance(a, (int, float)) and isinstance(b, list) and len(b) == 1:
        return _same_attributes(a, b[0])
    if isinstance(b, (int, float)) and isinstance(a, list) and len(a) == 1:
        return _same_attributes(a[0], b)
    return a == b


def lat_lon(
    x: np.ndarray, y: np.ndarray, mapping: Mapping[str, Any] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """2-D ``(lat, lon)`` [degrees_north, degrees_east], each (H, W) float64, of the cell
    centres x (W,), y (H,) of a grid in the mapping's CRS; None without a CRS."""
    crs = crs_of(mapping)
    if crs is None or crs.geodetic_crs is None:
        return None
    xx, yy = np.meshgrid(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


def projected_xy(crs: pyproj.CRS, lon: float, lat: float) -> tuple[float, float]:
    """Projected (x, y) [m] of a point given in longitude/latitude [degrees]."""
    to_xy = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    x, y = to_xy.transform(lon, lat)
    return float(x), float(y)
