"""`nowcast preprocess`: radar files → the dataset store (``preprocess(cfg) -> Path``).

1. Expand ``input.paths``; read the first usable file: its grid is the run's grid.
2. Read and transform every file in chunks (in process or on dask workers); park the
   100×100 frames in an on-disk spool and sum the per-pixel monthly clutter statistics.
3. Build the time grid (whole days at ``interval_minutes``), match frames to it, cut
   blocks and assign splits; K-means noise mask per calendar month.
4. Write the store through :class:`nowcast.store.StoreWriter` (temp file + rename) and
   print a summary.

The output is checked before any file is read (:func:`nowcast.outputs.check_output`): not
an input file, not a folder or special file, somewhere writable.

A bad file stops the run with a one-line error naming it (nothing is written), unless
``input.skip_bad`` is set, in which case it is skipped and counted. A frame with no data
(all NaN) inside the crop is not a bad file: its time is left invalid (``valid = 0``), a
warning names the file, and the store's coverage is that of the other frames. A dry frame
(no echo anywhere) is a valid frame like any other.
"""

from __future__ import annotations

import contextlib
import time
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.atomic import write_error
from nowcast.config.tree import Config
from nowcast.errors import UserError
from nowcast.io.frame import BadInputFile, Frame
from nowcast.io.paths import expand_inputs
from nowcast.io.read import read_frames
from nowcast.outputs import check_output
from nowcast.preprocess.clutter import (
    CELL_FRACTION,
    CV_WEIGHT,
    ClutterRule,
    MonthlyStats,
    month_mask,
)
from nowcast.preprocess.crop import crop_origin, tile_origins
from nowcast.preprocess.parallel import Runner
from nowcast.preprocess.splits import assign_blocks
from nowcast.preprocess.spool import Spool
from nowcast.preprocess.summary import Summary
from nowcast.preprocess.tasks import ReferenceGrid, TaskSpec, process_chunk, stats_key
from nowcast.preprocess.timegrid import TimeGrid, build_time_grid, month_key
from nowcast.preprocess.transform import (
    TransformSettings,
    grid_extent,
    output_coordinates,
    square_coordinates,
)
from nowcast.progress import console, make_progress, warn
from nowcast.store import SPLITS, StoreWriter, Tiles, read_meta, window_starts


def preprocess(cfg: Config) -> Path:
    """Preprocess ``cfg.input`` into the store ``cfg.data.store``; returns its path."""
    return run_preprocess(cfg).store


def run_preprocess(cfg: Config, show_summary: bool = True, runner: Runner | None = None) -> Summary:
    """:func:`preprocess`, returning the :class:`Summary` (printed unless ``show_summary`` is false).

    runner: an open :class:`~nowcast.preprocess.parallel.Runner` to use instead of the one
    ``preprocess.workers`` / ``scheduler`` describe (benchmarks reuse a warm cluster).
    """
    t_start = time.perf_counter()
    pre = cfg.preprocess
    check_settings(cfg)
    out = Path(cfg.data.store)
    files = expand_inputs(cfg.input.paths, cfg.input.pattern)
    check_output(out, "data.store (--output)", inputs=files)
    settings = TransformSettings.from_config(pre)
    summary = Summary(store=out, files=len(files), interval_minutes=pre.interval_minutes)
    bad: dict[int, str] = {}
    ref = _reference_frame(files, cfg, bad)
    origins = tile_layout(cfg, ref.shape)
    spec = TaskSpec(
        input_cfg=cfg.input,
        zr=cfg.zr,
        settings=settings,
        interval_minutes=pre.interval_minutes,
        grid=ReferenceGrid(ref.grid_key(), str(ref.path), ref.shape),
        clutter=pre.clutter_clusters > 0,
        tiles=None if origins is None else tuple(origins),
    )
    n_tiles = 1 if origins is None else len(origins)
    where = f"{pre.crop}×{pre.crop} crop" if origins is None else f"{n_tiles} tiles"
    with Spool(out, pre.size) as spool:
        t_read = time.perf_counter()
        times, rank, usable, stats = _read_all(
            files, cfg, spec, spool, bad, runner, summary, n_tiles
        )
        summary.read_seconds = time.perf_counter() - t_read
        summary.bad_files = [bad[i] for i in sorted(bad)]
        summary.frames_read = len(times)
        if not len(times):
            raise UserError(
                f"{_where(cfg)}: empty input: none of the {len(files)} files gave a radar frame"
            )
        if not usable.any():
            raise UserError(
                f"{_where(cfg)}: empty input: none of the {len(times)} frames has radar data "
                f"inside the {where} (all NaN)"
            )
        any_data = usable.any(axis=1)
        _report_empty(times, rank, any_data, files, where, summary)
        grid = build_time_grid(times, pre.interval_minutes, pre.tolerance_minutes, rank, any_data)
        if grid.times.size == 0:
            raise UserError(
                f"{files[int(rank[0])]}: no frame lies within {pre.tolerance_minutes:g} min of a "
                f"{pre.interval_minutes}-minute grid time (preprocess.interval_minutes / tolerance_minutes)"
            )
        _report_dropped(grid, files, rank, summary)
        # each tile's own matching (a frame may have data in one tile and none in another)
        grids = (
            [grid]
            if origins is None
            else [
                build_time_grid(times, pre.interval_minutes, pre.tolerance_minutes, rank, u)
                for u in usable.T
            ]
        )
        coverages = [_coverage(g, spool, k, n_tiles) for k, g in enumerate(grids)]
        kept = _kept_tiles(grids, coverages, origins, cfg, summary)
        blocks = [
            assign_blocks(
                grids[k].times,
                grids[k].valid,
                grids[k].per_day,
                pre.block_frames,
                pre.split_ratio,
                pre.seed,
                pre.drop_gappy_blocks,
            )
            for k in kept
        ]
        months = sorted({month_key(t) for t in grid.times[:: grid.per_day]})
        t_clutter = time.perf_counter()
        noise = _noise_masks(months, stats, cfg, [None] if origins is None else kept)
        summary.clutter_seconds = time.perf_counter() - t_clutter
        meta = settings_json(cfg, ref)
        if origins is None:
            x, y = output_coordinates(ref.x, ref.y, settings)
            tiles = None
        else:
            xy = [square_coordinates(ref.x, ref.y, settings, origins[k]) for k in kept]
            x, y = xy[0]
            tiles = Tiles(
                index=np.repeat(np.arange(len(kept), dtype=np.int32), grid.times.size),
                row0=np.array([origins[k][0] for k in kept], dtype=np.int32),
                col0=np.array([origins[k][1] for k in kept], dtype=np.int32),
                x=np.stack([a for a, _ in xy]),
                y=np.stack([b for _, b in xy]),
                coverage=np.stack([coverages[k] for k in kept]),
                noise_mask=np.stack(noise),
            )
        _write_store(
            out,
            [(grids[k], k) for k in kept],
            n_tiles,
            spool,
            x,
            y,
            ref.grid_mapping,
            meta,
            blocks,
            months,
            (noise[0], coverages[kept[0]]),
            tiles,
        )
    summary.days = grid.days
    summary.frames_found = int(grid.valid.sum())
    summary.frames_missing = int((~grid.valid).sum())
    summary.blocks = {k: sum(b.usable[k] for b in blocks) for k in SPLITS}
    summary.blocks_dropped = sum(b.gappy for b in blocks) if pre.drop_gappy_blocks else 0
    summary.window_frames = window_length(cfg)
    store_meta = read_meta(out)
    summary.windows = {
        k: int(window_starts(store_meta, k, summary.window_frames).size) for k in SPLITS
    }
    summary.masked = {m: int(sum(n[i].sum() for n in noise)) for i, m in enumerate(months)}
    summary.covered_cells = int(sum(coverages[k].sum() for k in kept))
    summary.cells = int(sum(coverages[k].size for k in kept))
    summary.seconds = time.perf_counter() - t_start
    if show_summary:
        for line in summary.lines():
            console.print(line, highlight=False, soft_wrap=True)
    if sum(summary.windows.values()) == 0:
        warn(
            f"no whole {pre.block_frames}-frame block, so no windows (see preprocess.block_frames)"
        )
    return summary


def tile_layout(cfg: Config, shape: tuple[int, int]) -> list[tuple[int, int]] | None:
    """Top-left (row, col) of every tile of an (H, W) grid (``preprocess.crops: tiles``),
    row by row from the top-left corner, ``tile_stride`` (default ``crop``) apart; None for
    ``crops: center``."""
    pre = cfg.preprocess
    if pre.crops == "center":
        return None
    return tile_origins(shape, pre.crop, pre.tile_stride or pre.crop)


def window_length(cfg: Config) -> int:
    """Frames per training window: data.n_in + data.n_out (5 + 15 by default)."""
    return cfg.data.n_in + cfg.data.n_out


def check_settings(cfg: Config) -> None:
    """Rules between keys that a single key's type cannot express (UserError naming the key)."""
    pre = cfg.preprocess
    rules = [
        (
            pre.z_max > pre.z_min,
            "z_max",
            f"must be greater than preprocess.z_min ({pre.z_min:g})",
            pre.z_max,
        ),
        (pre.size <= pre.crop, "size", f"must not exceed preprocess.crop ({pre.crop})", pre.size),
        (
            1440 % pre.interval_minutes == 0,
            "interval_minutes",
            "must divide a day (1440 minutes)",
            pre.interval_minutes,
        ),
        (
            pre.block_frames <= 1440 // pre.interval_minutes,
            "block_frames",
            f"must fit in a day ({1440 // pre.interval_minutes} frames at {pre.interval_minutes} min)",
            pre.block_frames,
        ),
        (
            pre.tolerance_minutes < pre.interval_minutes / 2,
            "tolerance_minutes",
            f"must be less than half of preprocess.interval_minutes ({pre.interval_minutes / 2:g})",
            pre.tolerance_minutes,
        ),
        (
            sum(pre.split_ratio) > 0,
            "split_ratio",
            "needs at least one positive entry",
            pre.split_ratio,
        ),
        (pre.clutter_clusters != 1, "clutter_clusters", "must be 0 (no mask) or at least 2", 1),
        (
            pre.tile_stride is None or pre.crops == "tiles",
            "tile_stride",
            "is only used with preprocess.crops: tiles",
            pre.tile_stride,
        ),
        (
            pre.tile_min_coverage == 0 or pre.crops == "tiles",
            "tile_min_coverage",
            "is only used with preprocess.crops: tiles",
            pre.tile_min_coverage,
        ),
    ]
    for ok, key, rule, value in rules:
        if not ok:
            raise UserError(f"preprocess.{key}: {rule}, got {value!r}")


def settings_json(cfg: Config, ref: Frame) -> dict[str, Any]:
    """The store's ``preprocess`` attribute: every setting needed to redo the preprocessing."""
    pre = cfg.preprocess
    exclude = {"workers", "scheduler", "chunk_files"}
    if pre.crops == "center":  # a central-crop store's settings are as they always were
        exclude |= {"crops", "tile_stride", "tile_min_coverage"}
    settings = pre.model_dump(mode="json", exclude=exclude)
    if pre.crops == "tiles":
        settings["tile_stride"] = pre.tile_stride or pre.crop
    r0, c0 = crop_origin(ref.shape, pre.crop)
    settings.update(
        {
            "clutter_cell_fraction": CELL_FRACTION,
            "clutter_cv_weight": CV_WEIGHT,
            "zr": {"a": cfg.zr.a, "b": cfg.zr.b},
            "input": {
                "variable": cfg.input.variable,
                "variable_read": ref.variable,
                "quantity": ref.quantity,
                "units": ref.units,
                "format": ref.format,
            },
            "grid": {**grid_extent(ref.x, ref.y), "crop_row0": r0, "crop_col0": c0},
            "window_frames": window_length(cfg),
        }
    )
    return settings


# --------------------------------------------------------------------------- steps


def _reference_frame(files: list[Path], cfg: Config, bad: dict[int, str]) -> Frame:
    """First usable frame (in file order); its grid is the run's grid."""
    pre = cfg.preprocess
    for i, path in enumerate(files):
        try:
            frame = read_frames(path, cfg.input, cfg.zr, pre.interval_minutes)[0]
            _check_grid(frame, pre.crop)
            return frame
        except BadInputFile as exc:
            if not cfg.input.skip_bad:
                raise
            bad[i] = str(exc)
    raise UserError(
        f"{_where(cfg)}: empty input: none of the {len(files)} files is usable ({len(bad)} bad)"
    )


def _check_grid(frame: Frame, crop: int) -> None:
    try:
        crop_origin(frame.shape, crop)
    except UserError as exc:
        raise BadInputFile(frame.path, str(exc)) from None
    for name, c in (("x", frame.x), ("y", frame.y)):
        step = np.diff(c)
        if c.size < 2 or np.any(step == 0) or np.ptp(step) > 1e-3 * np.abs(step).max():
            raise BadInputFile(frame.path, f"the {name} coordinates are not evenly spaced")


def _read_all(
    files: list[Path],
    cfg: Config,
    spec: TaskSpec,
    spool: Spool,
    bad: dict[int, str],
    runner: Runner | None,
    summary: Summary,
    n_tiles: int = 1,
):
    """Run the chunks, spool the frames; returns (times (F,), file rank (F,), has data (F, N),
    monthly stats) of the F frames read. Frame f of tile k is spool entry ``f·N + k``."""
    pre = cfg.preprocess
    items = [(i, str(p)) for i, p in enumerate(files)]
    chunks = [items[k : k + pre.chunk_files] for k in range(0, len(items), pre.chunk_files)]
    seconds, rank, usable = array("q"), array("q"), array("b")  # 17 bytes a frame
    # one month of every tile's clutter sums stays in memory (the rest is parked on disk)
    stats = MonthlyStats(spool.folder, keep=max(4, n_tiles))
    with contextlib.ExitStack() as stack:
        if runner is None:
            runner = stack.enter_context(Runner(pre.workers, pre.scheduler))
        progress = stack.enter_context(make_progress())
        task = progress.add_task("preprocess: files", total=len(files))
        for result in runner.map_unordered(process_chunk, chunks, spec):
            if result.bad and not cfg.input.skip_bad:
                raise UserError(min(result.bad)[1])
            bad.update(result.bad)
            for fr in result.frames:
                if fr.tile != spool.count % n_tiles:  # each frame gives its tiles in order
                    raise RuntimeError(f"tile {fr.tile} out of order at spool {spool.count}")
                spool.append(fr.frame, fr.covered)
                if fr.tile == 0:
                    seconds.append(int(np.datetime64(fr.time, "s").astype(np.int64)))
                    rank.append(fr.file)
                usable.append(fr.has_data)
            try:
                for key, st in result.stats.items():
                    stats.add(key, st)  # may park a month's sums in the spool folder
            except OSError as exc:
                raise write_error(spool.beside, exc) from None
            summary.task_read_seconds += result.read_seconds
            summary.task_transform_seconds += result.transform_seconds
            progress.advance(task, result.files)
    times = np.frombuffer(seconds, dtype=np.int64).astype("datetime64[s]")
    has_data = np.frombuffer(usable, dtype=np.int8).astype(bool).reshape(-1, n_tiles)
    return times, np.frombuffer(rank, dtype=np.int64), has_data, stats


def _report_empty(
    times: np.ndarray,
    rank: np.ndarray,
    usable: np.ndarray,
    files: list[Path],
    where: str,
    summary: Summary,
) -> None:
    """Warn about frames without data (each naming its file, the first 10) and count them."""
    empty = np.flatnonzero(~usable)
    summary.empty_frames = int(empty.size)
    for i in empty[:10]:
        warn(
            f"{files[int(rank[i])]}: no radar data inside the {where} (all NaN); "
            f"the frame at {np.datetime64(times[i], 's')} is left out (valid = 0)"
        )
    if empty.size > 10:
        warn(f"… and {empty.size - 10} more frames without data were left out")


def _coverage(grid: TimeGrid, spool: Spool, tile: int, n_tiles: int) -> np.ndarray:
    """(size, size) bool: cells of ``tile`` covered in every frame on its time grid (none
    when it has no valid frame)."""
    coverage = np.ones((spool.size, spool.size), dtype=bool)
    for f in grid.frame[grid.frame >= 0]:
        coverage &= spool.covered(int(f) * n_tiles + tile)
    if not grid.valid.any():
        coverage[:] = False
    return coverage


def _kept_tiles(
    grids: list[TimeGrid],
    coverages: list[np.ndarray],
    origins: list[tuple[int, int]] | None,
    cfg: Config,
    summary: Summary,
) -> list[int]:
    """Indices of the tiles that go into the store: every tile with a valid frame and at
    least ``preprocess.tile_min_coverage`` of its cells covered ([0] for the central crop)."""
    if origins is None:
        return [0]
    pre = cfg.preprocess
    share = [float(c.mean()) for c in coverages]
    with_data = [k for k, g in enumerate(grids) if g.valid.any()]
    kept = [k for k in with_data if share[k] >= pre.tile_min_coverage]
    summary.tiles = len(kept)
    summary.tiles_found = len(grids)
    summary.tiles_without_data = len(grids) - len(with_data)
    summary.tiles_below_coverage = len(with_data) - len(kept)
    if not kept:
        best = max(with_data, key=lambda k: share[k])
        raise UserError(
            f"preprocess.tile_min_coverage: {pre.tile_min_coverage:g} keeps no tile: the best "
            f"of the {len(grids)} tiles (input row {origins[best][0]}, column "
            f"{origins[best][1]}) has {share[best]:.3f} of its cells inside coverage"
        )
    return kept


def _report_dropped(grid: TimeGrid, files: list[Path], rank: np.ndarray, summary: Summary) -> None:
    summary.duplicates = int(grid.duplicates.size)
    summary.off_grid = int(grid.off_grid.size)
    if grid.duplicates.size:
        example = files[int(rank[int(grid.duplicates[0])])]
        warn(
            f"{grid.duplicates.size} duplicate frame(s) (another frame has the same grid time) "
            f"were left out, e.g. {example}"
        )
    if grid.off_grid.size:
        example = files[int(rank[int(grid.off_grid[0])])]
        warn(
            f"{grid.off_grid.size} frame(s) lie further than the tolerance from every grid time "
            f"and were left out, e.g. {example}"
        )


def _noise_masks(
    months: list[str], stats: MonthlyStats, cfg: Config, tiles: list[int | None]
) -> list[np.ndarray]:
    """(M, size, size) bool: the noise mask of each month, for each of ``tiles`` (None: the
    central crop)."""
    pre = cfg.preprocess
    noise = [np.zeros((len(months), pre.size, pre.size), dtype=bool) for _ in tiles]
    if pre.clutter_clusters == 0:
        return noise
    rule = ClutterRule.from_config(pre)
    with make_progress() as progress:
        task = progress.add_task("preprocess: clutter", total=len(months) * len(tiles))
        for j, tile in enumerate(tiles):
            for i, month in enumerate(months):
                month_stats = stats.take(stats_key(month, tile))
                if month_stats is not None:
                    noise[j][i] = month_mask(month_stats, pre.size, rule)
                progress.advance(task)
    return noise


def _write_store(
    out, tile_grids, n_tiles, spool, x, y, grid_mapping, meta, blocks, months, masks, tiles
) -> None:
    """Copy the spooled frames in time order into the store, tile after tile.

    tile_grids: (time grid, tile index in the spool) of each stored tile; blocks: their
    :class:`Blocks`; masks: (noise masks, coverage) of the first stored tile (the store's
    ``noise_mask`` and ``coverage``); tiles: the ``tile_*`` variables (None: central crop).
    Block ids of stored tile j are shifted by j × the blocks of one tile, so no two tiles
    share one.
    """
    size = spool.size
    first = tile_grids[0][0]
    n = first.times.size
    step = first.per_day
    times = np.tile(first.times, len(tile_grids))
    per_tile = int(max((b.block.max(initial=-1) for b in blocks), default=-1)) + 1
    valid = np.concatenate([g.valid for g, _ in tile_grids])
    split = np.concatenate([b.split for b in blocks])
    block = np.concatenate(
        [np.where(b.block >= 0, b.block + j * per_tile, -1) for j, b in enumerate(blocks)]
    ).astype(np.int32)
    with StoreWriter(out, times, x, y, grid_mapping, meta) as writer:
        with make_progress() as progress:
            task = progress.add_task("preprocess: store", total=times.size)
            for j, (grid, k) in enumerate(tile_grids):
                for start in range(0, n, step):
                    idx = grid.frame[start : start + step]
                    buf = np.zeros((idx.size, size, size), dtype=np.uint8)
                    for i, f in enumerate(idx):
                        if f >= 0:
                            buf[i] = spool.frame(int(f) * n_tiles + k)
                    writer.write_frames(j * n + start, buf)
                    progress.advance(task, idx.size)
        writer.finish(valid, block, split, months, masks[0], masks[1], tiles)


def _where(cfg: Config) -> str:
    return ", ".join(cfg.input.paths) or "input.paths"
