"""Which frames a nowcast starts from, and the checks on them before anything runs.

(``--input`` files, directories and globs are expanded by :func:`nowcast.io.expand_inputs`.)
Every check failure is a :class:`~nowcast.errors.UserError` naming the file at fault,
raised before any output is written:

* fewer frames than the model reads (``n_in``);
* two frames at the same time (within the tolerance), or frames that are not consecutive
  at the model's interval (within the tolerance);
* frames on different grids, or a grid smaller than the checkpoint's crop;
* an all-NaN frame (or one with no data inside the crop). Only NaN means "no data": a dry
  frame (rain rate 0, −inf dBZ, or reflectivity below the gray scale) is data.

From all the frames found, the newest ``n_in`` (by valid time) are used; the checks on
spacing and duplicates apply to those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nowcast.errors import UserError


def select_newest(
    times: Sequence[np.datetime64],
    paths: Sequence[Path],
    n_in: int,
    interval_minutes: float,
    tolerance_minutes: float,
) -> list[int]:
    """Indices (oldest first) of the newest ``n_in`` frames, after checking their spacing.

    times: valid time of each file; paths: the files (for the messages).
    Consecutive frames must be ``interval_minutes ± tolerance_minutes`` apart; two frames
    at most ``tolerance_minutes`` apart are duplicates. UserError otherwise, naming files.
    """
    if len(times) != len(paths):
        raise ValueError("times and paths differ in length")
    stamps = np.array([np.datetime64(t, "s") for t in times], dtype="datetime64[s]")
    order = np.argsort(stamps, kind="stable")
    if len(order) < n_in:
        where = _common_source(paths)
        raise UserError(
            f"{where}: {len(order)} radar frame{'s' if len(order) != 1 else ''} found, "
            f"the model needs {n_in} consecutive frames"
        )
    chosen = [int(i) for i in order[len(order) - n_in :]]
    # a duplicate of the oldest chosen frame may lie just outside the chosen ones
    if len(order) > n_in:
        chosen_with_prev = [int(order[len(order) - n_in - 1]), *chosen]
    else:
        chosen_with_prev = chosen
    for prev, cur in zip(chosen_with_prev, chosen_with_prev[1:]):
        gap = (stamps[cur] - stamps[prev]).astype(np.int64) / 60.0
        if gap <= tolerance_minutes:
            raise UserError(
                f"{paths[cur]}: duplicate frame: valid at {_fmt(stamps[cur])}, the same time "
                f"(± {tolerance_minutes:g} min) as {paths[prev]}"
            )
    for prev, cur in zip(chosen, chosen[1:]):
        gap = (stamps[cur] - stamps[prev]).astype(np.int64) / 60.0
        if abs(gap - interval_minutes) > tolerance_minutes:
            raise UserError(
                f"{paths[cur]}: not consecutive: {gap:g} min after the previous frame "
                f"{paths[prev].name} ({_fmt(stamps[prev])} → {_fmt(stamps[cur])}), the model "
                f"works at {interval_minutes:g} ± {tolerance_minutes:g} min"
            )
    return chosen


def check_grid(path: Path, shape: tuple[int, int], crop: tuple[int, int]) -> None:
    """UserError naming ``path`` when its ``(H, W)`` grid is smaller than the ``crop``."""
    if shape[0] < crop[0] or shape[1] < crop[1]:
        raise UserError(
            f"{path}: grid {shape[0]}×{shape[1]} is smaller than the checkpoint's "
            f"{crop[0]}×{crop[1]} crop"
        )


def check_same_grid(
    path: Path,
    x: np.ndarray,
    y: np.ndarray,
    ref_path: Path,
    ref_x: np.ndarray,
    ref_y: np.ndarray,
) -> None:
    """UserError naming ``path`` when its x/y coordinates differ from those of ``ref_path``."""
    same = (
        x.shape == ref_x.shape
        and y.shape == ref_y.shape
        and np.allclose(x, ref_x, rtol=0, atol=1e-3)
        and np.allclose(y, ref_y, rtol=0, atol=1e-3)
    )
    if not same:
        raise UserError(
            f"{path}: grid differs from that of {ref_path.name} "
            f"({y.size}×{x.size} vs {ref_y.size}×{ref_x.size} or other coordinates)"
        )


def check_data(path: Path, dbz: np.ndarray, crop_slices: tuple[slice, slice]) -> None:
    """UserError naming ``path`` when the frame (dBZ, (H, W)) is all NaN, or NaN in the crop.

    −inf (no echo) is data: a dry frame passes.
    """
    if np.isnan(dbz).all():
        raise UserError(f"{path}: all-NaN frame (no radar data at all)")
    if np.isnan(dbz[crop_slices]).all():
        raise UserError(f"{path}: no radar data inside the checkpoint's central crop (all NaN)")


def _common_source(paths: Sequence[Path]) -> str:
    """How to name a set of input files in a message: their folder, or the one file."""
    if len(paths) == 1:
        return str(paths[0])
    parents = {p.parent for p in paths}
    return str(parents.pop()) if len(parents) == 1 else "--input"


def _fmt(t: np.datetime64) -> str:
    return str(np.datetime64(t, "m")).replace("T", " ")
