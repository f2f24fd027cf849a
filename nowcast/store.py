"""The dataset store: the one netCDF file that preprocess writes and every later stage reads.

Layout (docs/store.md)::

    frames(time, y, x)      uint8   round(255·gray level); 0 where the frame is missing
    valid(time)             bool    a frame was found for this time
    block(time)             int32   index of the 40-frame block the frame is in (−1: none)
    split(time)             int8    −1 none, 0 train, 1 val, 2 test (the split of its block)
    noise_mask(month, y, x) bool    clutter / noise pixels found for each calendar month
    coverage(y, x)          bool    inside radar coverage in every frame
    x(x), y(y)              float64 projected coordinates of the grid-cell centres [m]
                                    (longitude, latitude [degrees] on a lat/lon grid)
    lat(y, x), lon(y, x)    float64 latitude, longitude of the cell centres [degrees]
    month(month)            str     'YYYY-MM'
    crs                     int32   grid mapping of the input product (CF attributes with
                                    grid_mapping_name and crs_wkt, completed by pyproj)
    attrs: preprocess (the preprocessing config as JSON), nowcast_version, Conventions

A tiled store (``preprocess.crops: tiles``) stacks its tiles along ``time``: tile k's
whole time grid fills indices ``k·T₀ … (k+1)·T₀ − 1``, block ids never repeat between
tiles (so no window spans two), and it adds::

    tile_index(time)            int32   tile of each frame
    tile_row0(tile), tile_col0(tile)  int32  top-left input pixel of each tile
    tile_x(tile, x), tile_y(tile, y)  float64  each tile's cell centres [m]
    tile_coverage(tile, y, x)   bool    coverage of each tile
    tile_noise_mask(tile, month, y, x)  bool  noise mask of each tile and month

Its ``x``, ``y``, ``coverage`` and ``noise_mask`` are those of tile 0 (what a checkpoint
trained on it carries).

``block`` is stored because two neighbouring blocks can share a split: windows must not
run across a block boundary, and ``split`` alone cannot tell. The file is written with the
netCDF4 library frame by frame (memory does not grow with the archive) into a temporary
file that is renamed into place when complete; xarray reads it as usual.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from nowcast import __version__
from nowcast.atomic import is_write_failure, make_temp_file, write_error
from nowcast.errors import UserError
from nowcast.io.crs import cf_grid_mapping, is_geographic, lat_lon

SPLITS = {"train": 0, "val": 1, "test": 2}
TIME_UNITS = "minutes since 1970-01-01 00:00:00"
_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


@dataclass
class StoreMeta:
    """Everything in a store except the frames (small: kilobytes to a few MB)."""

    path: Path
    times: np.ndarray  # (T,) datetime64[s]
    valid: np.ndarray  # (T,) bool
    block: np.ndarray  # (T,) int32
    split: np.ndarray  # (T,) int8
    months: list[str]  # ('YYYY-MM', ...)
    noise_mask: np.ndarray  # (M, H, W) bool
    coverage: np.ndarray  # (H, W) bool
    x: np.ndarray  # (W,) metres (degrees of longitude on a lat/lon grid)
    y: np.ndarray  # (H,) metres (degrees of latitude on a lat/lon grid)
    grid_mapping: dict[str, Any]
    preprocess: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    signature: tuple[int, ...] | None = None  # file_signature() when the metadata was read
    tiles: Tiles | None = None  # the tiles of a tiled store; None: one central crop

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape (H, W)."""
        return self.coverage.shape

    def month_index(self, time: np.datetime64) -> int:
        """Index into ``months`` of the calendar month of ``time`` (nearest month if absent)."""
        key = str(np.datetime64(time, "M"))
        if key in self.months:
            return self.months.index(key)
        stamps = np.array([np.datetime64(m, "M") for m in self.months])
        return int(np.argmin(np.abs((stamps - np.datetime64(time, "M")).astype(int))))

    def pixel_mask(self, time: np.datetime64, tile: int = 0) -> np.ndarray:
        """Pixels that count at ``time``, (H, W) bool: inside coverage and not noise that month
        (of tile ``tile`` in a tiled store)."""
        if self.tiles is None:
            return self.coverage & ~self.noise_mask[self.month_index(time)]
        t = self.tiles
        return t.coverage[tile] & ~t.noise_mask[tile, self.month_index(time)]

    def mask_stack(self) -> np.ndarray:
        """Every pixel mask of the store, (K, H, W) bool: ``coverage & ~noise_mask[m]`` for
        each month m (K = M), or for each tile and month of a tiled store (K = N·M, tile
        major). :meth:`mask_index` says which one a window uses."""
        if self.tiles is None:
            return self.coverage[None] & ~self.noise_mask
        t = self.tiles
        stack = t.coverage[:, None] & ~t.noise_mask  # (N, M, H, W)
        return stack.reshape(-1, *self.shape)

    def noise_stack(self) -> np.ndarray:
        """The noise (clutter) masks, (K, H, W) bool, in the order of :meth:`mask_stack`:
        ``noise_mask[m]`` for each month m, or for each tile and month of a tiled store."""
        if self.tiles is None:
            return np.asarray(self.noise_mask, dtype=bool)
        return np.asarray(self.tiles.noise_mask, dtype=bool).reshape(-1, *self.shape)

    def mask_index(self, starts: np.ndarray) -> np.ndarray:
        """Index into :meth:`mask_stack` of the window starting at each of ``starts`` (T
        indices): the month of its first frame (and its tile), (n,) int64."""
        starts = np.asarray(starts, dtype=np.int64)
        months = np.array([self.month_index(self.times[s]) for s in starts], dtype=np.int64)
        if self.tiles is None:
            return months
        return self.tiles.index[starts].astype(np.int64) * len(self.months) + months

    def require_counting_pixels(self) -> None:
        """UserError naming the store when no pixel counts: no valid frame, or no cell inside
        ``coverage`` and outside the noise mask of some month. Losses and scores over such a
        store would be sums over nothing."""
        if not self.valid.any():
            raise UserError(
                f"{self.path}: the store has no valid frame, so no pixel counts "
                "(re-run `nowcast preprocess` on radar files with data)"
            )
        coverage = self.coverage if self.tiles is None else self.tiles.coverage
        if not self.mask_stack().any():
            raise UserError(
                f"{self.path}: no pixel counts: {int(coverage.sum())} of "
                f"{coverage.size} cells lie inside the coverage of every valid frame, "
                "and none of them is outside the noise mask (re-run `nowcast preprocess`)"
            )


@dataclass
class Tiles:
    """The tiles of a tiled store (``preprocess.crops: tiles``), N tiles of (H, W) cells."""

    index: np.ndarray  # (T,) int32, tile of each frame
    row0: np.ndarray  # (N,) int32, top-left input row of each tile
    col0: np.ndarray  # (N,) int32, top-left input column of each tile
    x: np.ndarray  # (N, W) float64, cell centres [m]
    y: np.ndarray  # (N, H) float64, cell centres [m]
    coverage: np.ndarray  # (N, H, W) bool
    noise_mask: np.ndarray  # (N, M, H, W) bool


def split_code(name: str) -> int:
    """'train' | 'val' | 'test' → 0 | 1 | 2 (UserError for anything else)."""
    if name not in SPLITS:
        raise UserError(f"unknown split {name!r} (expected one of {', '.join(SPLITS)})")
    return SPLITS[name]


def window_starts(meta: StoreMeta, split: str | int, length: int) -> np.ndarray:
    """Start indices of every ``length``-frame window that lies inside one block of ``split``
    with all frames valid. Sliding by one frame: a full 40-frame block gives 40 − 20 + 1 = 21
    windows of 20."""
    code = split_code(split) if isinstance(split, str) else int(split)
    n = meta.times.size
    if n < length:
        return np.zeros(0, dtype=np.int64)
    ok = meta.valid & (meta.split == code) & (meta.block >= 0)
    # a window is good when all its frames are ok and the first and last share a block
    bad = np.concatenate([[0], np.cumsum(~ok)])
    starts = np.arange(n - length + 1)
    all_ok = (bad[starts + length] - bad[starts]) == 0
    same_block = meta.block[starts] == meta.block[starts + length - 1]
    return starts[all_ok & same_block]


def read_meta(path: str | os.PathLike) -> StoreMeta:
    """Read a store's metadata; a missing or foreign file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such dataset store (run `nowcast preprocess` first)")
    try:
        with netCDF4.Dataset(path) as nc:
            signature = file_signature(path)
            if "frames" not in nc.variables or "preprocess" not in nc.ncattrs():
                raise UserError(
                    f"{path}: not a nowcast dataset store (no frames / preprocess attribute)"
                )
            nc.set_auto_mask(False)
            times = _decode_times(nc["time"][:])
            crs = nc["crs"] if "crs" in nc.variables else None
            return StoreMeta(
                path=path,
                times=times,
                valid=nc["valid"][:].astype(bool),
                block=nc["block"][:].astype(np.int32),
                split=nc["split"][:].astype(np.int8),
                months=[str(m) for m in nc["month"][:]],
                noise_mask=nc["noise_mask"][:].astype(bool),
                coverage=nc["coverage"][:].astype(bool),
                x=np.asarray(nc["x"][:], dtype=np.float64),
                y=np.asarray(nc["y"][:], dtype=np.float64),
                grid_mapping={k: crs.getncattr(k) for k in crs.ncattrs()}
                if crs is not None
                else {},
                preprocess=json.loads(nc.getncattr("preprocess")),
                attrs={k: nc.getncattr(k) for k in nc.ncattrs()},
                signature=signature,
                tiles=_read_tiles(nc) if "tile_index" in nc.variables else None,
            )
    except UserError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: cannot read dataset store: {exc}") from None


def _read_tiles(nc: netCDF4.Dataset) -> Tiles:
    return Tiles(
        index=nc["tile_index"][:].astype(np.int32),
        row0=nc["tile_row0"][:].astype(np.int32),
        col0=nc["tile_col0"][:].astype(np.int32),
        x=np.asarray(nc["tile_x"][:], dtype=np.float64),
        y=np.asarray(nc["tile_y"][:], dtype=np.float64),
        coverage=nc["tile_coverage"][:].astype(bool),
        noise_mask=nc["tile_noise_mask"][:].astype(bool),
    )


def file_signature(path: str | os.PathLike) -> tuple[int, ...]:
    """(device, inode, size in bytes, modification time in ns) of a file: any change to it
    (rewritten, truncated, replaced by another file) changes the signature."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FrameReader:
    """Random access to a store's frames without loading the archive (one open handle).

    Open one per process (DataLoader workers open their own on first use). Every read checks
    that the file is still the one of ``signature`` (default: the file as first opened):
    netCDF/HDF5 read a file truncated under an open handle as zeros or fail with a bare
    "HDF error", so a changed, truncated or unreadable store is a UserError naming it.
    """

    def __init__(self, path: str | os.PathLike, signature: tuple[int, ...] | None = None):
        self.path = Path(path)
        self.signature = signature
        self._nc: netCDF4.Dataset | None = None
        self._pid: int | None = None

    def _var(self):
        if self._nc is None or self._pid != os.getpid():
            try:
                self._nc = netCDF4.Dataset(self.path)
            except OSError as exc:
                if self.signature is not None:
                    self._check_unchanged()
                raise StoreReadError(f"{self.path}: cannot read dataset store: {exc}") from None
            self._nc.set_auto_mask(False)
            self._pid = os.getpid()
            if self.signature is None:
                self.signature = self._current()
        return self._nc["frames"]

    def _current(self) -> tuple[int, ...] | None:
        try:
            return file_signature(self.path)
        except OSError:
            return None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as uint8 ``(stop − start, H, W)``."""
        try:
            frames = np.asarray(self._var()[start:stop])
        except (RuntimeError, OSError) as exc:
            self._check_unchanged()
            raise StoreReadError(
                f"{self.path}: cannot read frames {start}–{stop - 1} of the dataset store: {exc}"
            ) from None
        self._check_unchanged()  # after the read: the frames came from the unchanged file
        return frames

    def _check_unchanged(self) -> None:
        now = self._current()
        if now != self.signature:
            what = (
                "is gone"
                if now is None
                else f"was truncated ({now[2]} bytes, {self.signature[2]} when opened)"
                if now[:2] == self.signature[:2] and now[2] < self.signature[2]
                else "was modified or replaced"
            )
            raise StoreReadError(
                f"{self.path}: the dataset store {what} while it was being read; "
                "its frames cannot be trusted (stopped)"
            )

    def close(self) -> None:
        if self._nc is not None and self._pid == os.getpid():
            self._nc.close()
        self._nc = None

    def __getstate__(self):  # handles do not travel to worker processes
        return {"path": self.path, "signature": self.signature, "_nc": None, "_pid": None}


class StoreReadError(UserError):
    """A store that cannot be read, or that changed while being read (see FrameReader)."""


class StoreWriter:
    """Writes a store frame by frame into a temporary file beside ``path``
    (:func:`nowcast.atomic.make_temp_file`); :meth:`finish` renames it into place.

    Usage::

        with StoreWriter(path, times, x, y, grid_mapping, preprocess) as w:
            w.write_frames(i0, frames_uint8)       # any order, any chunking
            w.finish(valid, block, split, months, noise_mask, coverage)    # [, tiles]

    Leaving the ``with`` block without :meth:`finish` (an error) removes the temp file. A
    failure of the file system (full, read-only, size limit) is a UserError naming ``path``;
    an existing store at ``path`` is only replaced by a complete one.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        times: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        grid_mapping: dict[str, Any],
        preprocess: dict[str, Any],
    ):
        self.path = Path(path)
        self._done = False
        self._nc: netCDF4.Dataset | None = None
        self.tmp: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = make_temp_file(self.path)
            self._create(times, x, y, grid_mapping, preprocess)
        except BaseException as exc:
            self.abort()
            if is_write_failure(exc, self.path):
                raise write_error(self.path, exc) from None
            raise

    def _create(self, times, x, y, grid_mapping, preprocess) -> None:
        times = np.asarray(times, dtype="datetime64[s]")
        nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        self._nc = nc
        nc.setncatts(
            {
                "Conventions": "CF-1.8",
                "title": "nowcast dataset store (HKO-style preprocessed radar frames)",
                "nowcast_version": __version__,
                "preprocess": json.dumps(preprocess, sort_keys=True),
            }
        )
        h, w = len(y), len(x)
        nc.createDimension("time", times.size)
        nc.createDimension("y", h)
        nc.createDimension("x", w)
        vt = nc.createVariable("time", "f8", ("time",))
        vt.setncatts({"standard_name": "time", "units": TIME_UNITS, "calendar": "standard"})
        vt[:] = (times - _EPOCH).astype(np.int64) / 60.0
        grid_attrs = write_grid(nc, x, y, grid_mapping)
        self._grid_attrs = grid_attrs
        frames = nc.createVariable(
            "frames", "u1", ("time", "y", "x"), chunksizes=(1, h, w), fill_value=False
        )
        frames.setncatts(
            {
                "long_name": "radar gray level, round(255 * (dBZ - z_min) / (z_max - z_min))",
                **grid_attrs,
                "z_min_dBZ": float(preprocess.get("z_min", np.nan)),
                "z_max_dBZ": float(preprocess.get("z_max", np.nan)),
            }
        )
        self._frames = frames

    def write_frames(self, start: int, frames: np.ndarray) -> None:
        """Store uint8 frames ``(n, H, W)`` at time indices ``start:start+n``."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must be uint8, got {frames.dtype}")
        try:
            self._frames[start : start + frames.shape[0]] = frames
        except (OSError, RuntimeError) as exc:
            if is_write_failure(exc, self.path):
                raise write_error(self.path, exc) from None
            raise

    def finish(
        self,
        valid: np.ndarray,
        block: np.ndarray,
        split: np.ndarray,
        months: list[str],
        noise_mask: np.ndarray,
        coverage: np.ndarray,
        tiles: Tiles | None = None,
    ) -> Path:
        """Write the per-time and per-month variables (and the ``tile_*`` variables of
        ``tiles``), close, and rename into place."""
        try:
            self._finish(valid, block, split, months, noise_mask, coverage, tiles)
        except (OSError, RuntimeError) as exc:
            if is_write_failure(exc, self.path):
                raise write_error(self.path, exc) from None
            raise
        self._done = True
        return self.path

    def _finish(self, valid, block, split, months, noise_mask, coverage, tiles) -> None:
        nc = self._nc
        nc.createDimension("month", len(months))
        vm = nc.createVariable("month", str, ("month",))
        vm.long_name = "calendar month, YYYY-MM"
        for i, m in enumerate(months):
            vm[i] = m
        specs = (
            ("valid", "u1", ("time",), valid, "1 = a radar frame was found for this time"),
            ("block", "i4", ("time",), block, "index of the block the frame is in, -1 = none"),
            ("split", "i1", ("time",), split, "-1 none, 0 train, 1 val, 2 test"),
            ("noise_mask", "u1", ("month", "y", "x"), noise_mask, "1 = noise / clutter pixel"),
            ("coverage", "u1", ("y", "x"), coverage, "1 = inside radar coverage"),
        )
        for name, dtype, dims, values, long_name in specs:
            v = nc.createVariable(name, dtype, dims, zlib=name == "noise_mask")
            v.long_name = long_name
            if dims[-2:] == ("y", "x"):
                v.setncatts(self._grid_attrs)
            v[:] = np.asarray(values).astype(dtype)
        if tiles is not None:
            _write_tiles(nc, tiles)
        nc.close()
        self._nc = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file (nothing half-written is left)."""
        if not self._done:
            if self._nc is not None:
                try:
                    self._nc.close()
                except (RuntimeError, OSError):
                    pass
                self._nc = None
            if self.tmp is not None:
                try:
                    self.tmp.unlink()
                except OSError:
                    pass

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


def write_grid(
    nc: netCDF4.Dataset,
    x: np.ndarray,
    y: np.ndarray,
    grid_mapping: dict[str, Any],
    long_names: bool = False,
) -> dict[str, str]:
    """Write the grid of a file whose dimensions ``y`` and ``x`` exist: ``x(x)``, ``y(y)``,
    the grid mapping ``crs`` and 2-D ``lat(y, x)``/``lon(y, x)``; return the attributes
    (``grid_mapping``, ``coordinates``) a field on that grid carries.

    x, y: cell centres, projected [m], or longitude/latitude [degrees] on a
    ``latitude_longitude`` grid (:mod:`nowcast.io.crs`). The grid mapping is completed with
    pyproj's CF attributes (``grid_mapping_name``, ``crs_wkt``, …) and lat/lon are the cell
    centres transformed by pyproj. A grid mapping that describes no CRS (a merged store on
    no radar's grid) gives no ``crs``, ``lat`` or ``lon``.
    """
    mapping = cf_grid_mapping(grid_mapping)
    geographic = is_geographic(mapping)
    for name, values in (("y", y), ("x", x)):
        if geographic:
            std, units = (
                ("longitude", "degrees_east") if name == "x" else ("latitude", "degrees_north")
            )
        else:
            std, units = f"projection_{name}_coordinate", "m"
        v = nc.createVariable(name, "f8", (name,))
        attrs = {"standard_name": std}
        if long_names:
            attrs["long_name"] = f"{name} of the grid-cell centre"
        v.setncatts({**attrs, "units": units, "axis": name.upper()})
        v[:] = np.asarray(values, dtype=np.float64)
    field_attrs: dict[str, str] = {}
    if mapping:
        crs = nc.createVariable("crs", "i4")
        crs.setncatts({k: _nc_attr(v) for k, v in mapping.items()})
        field_attrs["grid_mapping"] = "crs"
    latlon = lat_lon(x, y, mapping)
    if latlon is not None:
        for name, values, std, units in (
            ("lat", latlon[0], "latitude", "degrees_north"),
            ("lon", latlon[1], "longitude", "degrees_east"),
        ):
            v = nc.createVariable(name, "f8", ("y", "x"), zlib=True)
            v.setncatts(
                {
                    "standard_name": std,
                    "long_name": f"{std} of the grid-cell centre",
                    "units": units,
                }
            )
            v[:] = values
        field_attrs["coordinates"] = "lat lon"
    return field_attrs


def _write_tiles(nc: netCDF4.Dataset, tiles: Tiles) -> None:
    nc.createDimension("tile", tiles.row0.size)
    specs = (
        ("tile_index", "i4", ("time",), tiles.index, "tile of the frame (index along tile)"),
        ("tile_row0", "i4", ("tile",), tiles.row0, "top-left input-grid row of the tile"),
        ("tile_col0", "i4", ("tile",), tiles.col0, "top-left input-grid column of the tile"),
        ("tile_x", "f8", ("tile", "x"), tiles.x, "x of the tile's cell centres (units of x)"),
        ("tile_y", "f8", ("tile", "y"), tiles.y, "y of the tile's cell centres (units of y)"),
        ("tile_coverage", "u1", ("tile", "y", "x"), tiles.coverage, "1 = inside coverage"),
        (
            "tile_noise_mask",
            "u1",
            ("tile", "month", "y", "x"),
            tiles.noise_mask,
            "1 = noise / clutter cell of the tile in that month",
        ),
    )
    for name, dtype, dims, values, long_name in specs:
        v = nc.createVariable(name, dtype, dims, zlib=name == "tile_noise_mask")
        v.long_name = long_name
        v[:] = np.asarray(values).astype(dtype)


def _nc_attr(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (dict, list, tuple)) and not all(
        isinstance(v, (int, float)) for v in value
    ):
        return json.dumps(value)
    return value


def _decode_times(minutes: np.ndarray) -> np.ndarray:
    seconds = np.rint(np.asarray(minutes, dtype=np.float64) * 60.0).astype(np.int64)
    return _EPOCH + seconds.astype("timedelta64[s]")


def to_datetime(t: np.datetime64) -> dt.datetime:
    """numpy datetime64 → naive UTC datetime."""
    return np.datetime64(t, "s").astype(dt.datetime)
