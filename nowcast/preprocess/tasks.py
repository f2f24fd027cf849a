"""The unit of parallel work: read and transform a chunk of files (runs on dask workers).

Everything here is picklable and importable by a worker process; a worker needs the
files on a path it can read (a shared file system when the cluster spans machines).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from nowcast.config.input import InputConfig
from nowcast.config.zr import ZRConfig
from nowcast.errors import UserError
from nowcast.io.frame import BadInputFile
from nowcast.io.read import read_frames
from nowcast.preprocess.clutter import MonthStats
from nowcast.preprocess.cvthreads import cv2_threads
from nowcast.preprocess.disk import kernel_half_width
from nowcast.preprocess.timegrid import month_key, nearest_slot
from nowcast.preprocess.transform import (
    TransformSettings,
    filter_and_resize,
    gray_region,
    region_window,
    tile_region,
    tiles_region_window,
)
from nowcast.units import gray_to_uint8


@dataclass(frozen=True)
class ReferenceGrid:
    """The grid every file of a run must share (that of the first readable file)."""

    key: str  # Frame.grid_key()
    path: str
    shape: tuple[int, int]


@dataclass(frozen=True)
class TaskSpec:
    """What a worker needs besides the file names."""

    input_cfg: InputConfig
    zr: ZRConfig
    settings: TransformSettings
    interval_minutes: int
    grid: ReferenceGrid | None = None
    clutter: bool = True  # gather the per-pixel monthly statistics
    tiles: tuple[tuple[int, int], ...] | None = None  # top-left (row, col) of each tile;
    # None: the central crop only (preprocess.crops: center)


def stats_key(month: str, tile: int | None) -> str:
    """Key of the clutter sums of ``month`` ('YYYY-MM') of tile ``tile`` (None: the central
    crop): the month itself, or ``'YYYY-MM.tileK'``."""
    return month if tile is None else f"{month}.tile{tile}"


@dataclass
class FrameOut:
    """One transformed frame."""

    file: int  # index of its file in the run's file list
    time: np.datetime64  # valid time [s]
    frame: np.ndarray  # (size, size) uint8, round(255·gray)
    covered: np.ndarray  # (size, size) bool, every input pixel of the cell has data
    has_data: bool = True  # false: every pixel of the crop is NaN (no data, not a dry frame)
    tile: int = 0  # index into TaskSpec.tiles (0 for the central crop)


@dataclass
class ChunkResult:
    """What a chunk of files gave: frames (any order), bad files, monthly clutter sums."""

    frames: list[FrameOut] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (file index, one-line message)
    stats: dict[str, MonthStats] = field(default_factory=dict)  # by stats_key(month, tile)
    files: int = 0
    frames_read: int = 0
    read_seconds: float = 0.0
    transform_seconds: float = 0.0


def process_chunk(items: list[tuple[int, str]], spec: TaskSpec) -> ChunkResult:
    """Read, check and transform ``items`` = [(file index, path), …].

    A file that cannot be used (corrupt, no field, unknown units, unparsable time, a grid
    other than ``spec.grid`` or smaller than the crop, values outside physical range) is
    reported in ``bad`` with a one-line message naming it, and contributes nothing. A frame
    with no data (NaN) anywhere in the crop is returned with ``has_data`` false and adds
    nothing to the clutter statistics. With ``spec.tiles`` every frame gives one
    :class:`FrameOut` per tile (``tile`` = its index, in order), each with its own
    ``has_data`` and clutter sums; the file is read once, over the tiles' bounding window.
    """
    with threadpool_limits(1), cv2_threads(1):  # one core per task: workers give parallelism
        return _process(items, spec)


def _process(items: list[tuple[int, str]], spec: TaskSpec) -> ChunkResult:
    out = ChunkResult()
    s = spec.settings
    c = kernel_half_width(s.disk_radius)
    tiles = [None] if spec.tiles is None else list(spec.tiles)
    if spec.tiles is None:
        window = functools.partial(region_window, s=s)  # only the crop and margin are read
    else:
        window = functools.partial(tiles_region_window, s=s, tiles=tiles)
    for index, path in items:
        out.files += 1
        t0 = time.perf_counter()
        try:
            frames = read_frames(path, spec.input_cfg, spec.zr, spec.interval_minutes, window)
        except BadInputFile as exc:
            out.bad.append((index, str(exc)))
            continue
        except UserError as exc:  # e.g. a grid smaller than the crop
            out.bad.append((index, f"{path}: {exc}"))
            continue
        t1 = time.perf_counter()
        out.read_seconds += t1 - t0
        out.frames_read += len(frames)
        try:
            done = []
            for fr in frames:
                if spec.grid is not None and fr.grid_key() != spec.grid.key:
                    raise BadInputFile(path, _grid_message(fr, spec.grid))
                for k, at in enumerate(tiles):
                    if at is None:
                        region = gray_region(fr.dbz, s, fr.shape, fr.origin)
                    else:
                        region = tile_region(fr.dbz, s, at, fr.shape, fr.origin)
                    gray, covered = filter_and_resize(region, s)
                    crop_gray = region[c : c + s.crop, c : c + s.crop]
                    done.append((fr.time, k, crop_gray, gray, covered))
        except BadInputFile as exc:
            out.bad.append((index, str(exc)))
            continue
        except UserError as exc:
            out.bad.append((index, f"{path}: {exc}"))
            continue
        for t, k, crop_gray, gray, covered in done:
            has_data = not np.isnan(crop_gray).all()
            out.frames.append(FrameOut(index, t, gray_to_uint8(gray), covered, has_data, k))
            if spec.clutter and has_data:
                month = month_key(nearest_slot(np.array([t]), spec.interval_minutes)[0])
                key = stats_key(month, None if spec.tiles is None else k)
                if key not in out.stats:
                    out.stats[key] = MonthStats.zeros(s.crop)
                out.stats[key].add_frame(crop_gray)
        out.transform_seconds += time.perf_counter() - t1
    return out


def read_chunk(items: list[tuple[int, str]], spec: TaskSpec) -> ChunkResult:
    """Only read ``items`` (no checks, no transform): the bare reading cost, for benchmarks."""
    out = ChunkResult()
    with threadpool_limits(1):
        for index, path in items:
            out.files += 1
            t0 = time.perf_counter()
            try:
                out.frames_read += len(
                    read_frames(path, spec.input_cfg, spec.zr, spec.interval_minutes)
                )
            except BadInputFile as exc:
                out.bad.append((index, str(exc)))
            out.read_seconds += time.perf_counter() - t0
    return out


def _grid_message(frame, grid: ReferenceGrid) -> str:
    h, w = frame.shape
    return (
        f"mixed grids: this file's grid ({h}×{w}, x {frame.x[0]:.0f}…{frame.x[-1]:.0f} m, "
        f"y {frame.y[0]:.0f}…{frame.y[-1]:.0f} m) differs from that of {grid.path} "
        f"({grid.shape[0]}×{grid.shape[1]}); preprocess one grid per run"
    )
