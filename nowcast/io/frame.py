"""The common in-memory radar frame every reader returns."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import UserError


class BadInputFile(UserError):
    """A radar file that cannot be used (corrupt, no field, unknown units, bad time, …).

    ``path`` is the file at fault; the message starts with it. ``preprocess --skip-bad``
    skips such files and counts them instead of stopping.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Frame:
    """One radar field on a projected grid.

    time: valid time, numpy ``datetime64[s]`` (UTC).
    dbz: ``(H, W)`` float32 reflectivity [dBZ]; NaN outside radar coverage (or no data);
        −inf where there is no echo (a rain rate ≤ 0 or an ODIM ``undetect`` pixel).
        Row 0 is the first row of the file (usually the northern edge).
    x: ``(W,)`` float64 x of the pixel centres: projected [m], or longitude
        [degrees_east] on a ``latitude_longitude`` grid (:mod:`nowcast.io.crs`).
    y: ``(H,)`` float64 y of the pixel centres: projected [m], or latitude [degrees_north].
    grid_mapping: CF grid-mapping attributes (or ``{"proj4_params": …}``), JSON-able.
    path: the file it came from.
    quantity: what the file held: ``reflectivity``, ``rate`` or ``accumulation``.
    variable: the netCDF variable name or ODIM quantity read.
    units: the units of that variable as written in the file.
    format: ``cf-netcdf`` or ``odim_h5``.
    origin: grid row and column of ``dbz[0, 0]``. ``dbz`` is the whole grid unless the
        frame was read with a window (``read_frames(window=…)``): then it holds only the
        window's rows and columns, while ``x``, ``y`` and :attr:`shape` are the whole grid's.
    """

    time: np.datetime64
    dbz: np.ndarray
    x: np.ndarray
    y: np.ndarray
    grid_mapping: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    quantity: str = "reflectivity"
    variable: str = ""
    units: str = "dBZ"
    format: str = "cf-netcdf"
    origin: tuple[int, int] = (0, 0)

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape (H, W) = (len(y), len(x)); ``dbz`` is smaller when windowed."""
        return (len(self.y), len(self.x))

    def grid_key(self) -> str:
        """A short fingerprint of the grid (shape, coordinates to 1 m or 1e-5°, grid mapping).

        Two frames can be stacked when their keys are equal.
        """
        return grid_key(self.shape, self.x, self.y, self.grid_mapping)


#: ``window(shape) -> (rows, cols)``: the part of an (H, W) grid a reader should read
Window = Callable[[tuple[int, int]], tuple[slice, slice]]


def no_pixels(shape: tuple[int, int]) -> tuple[slice, slice]:
    """A :data:`Window` of no pixels: a read with it gives each frame's time, grid and
    metadata (all checked as usual) and an empty ``dbz`` (0, 0), without decoding the field."""
    return slice(0, 0), slice(0, 0)


def window_slices(
    window: Window | None, shape: tuple[int, int]
) -> tuple[slice, slice, tuple[int, int]]:
    """``(rows, cols, origin)`` a reader reads of an (H, W) grid: ``window(shape)``, or the
    whole grid when ``window`` is None; ``origin`` is the grid pixel of the part's [0, 0]."""
    rows, cols = window(tuple(shape)) if window else (slice(None), slice(None))
    return rows, cols, (rows.start or 0, cols.start or 0)


def grid_key(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, grid_mapping: dict[str, Any]
) -> str:
    """Fingerprint of a grid: shape, pixel-centre x/y rounded to 1 m (1e-5 degrees on a
    latitude/longitude grid), grid-mapping attributes."""
    from nowcast.io.crs import is_geographic  # crs imports this module

    unit = 1e5 if is_geographic(grid_mapping) else 1.0
    h = hashlib.sha1()
    h.update(repr(tuple(shape)).encode())
    h.update(np.rint(np.asarray(x, dtype=np.float64) * unit).astype(np.int64).tobytes())
    h.update(np.rint(np.asarray(y, dtype=np.float64) * unit).astype(np.int64).tobytes())
    h.update(json.dumps(jsonable(grid_mapping), sort_keys=True).encode())
    return h.hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """netCDF/HDF5 attribute values (numpy scalars, arrays, bytes) → plain JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.ndim else jsonable(value.item())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
