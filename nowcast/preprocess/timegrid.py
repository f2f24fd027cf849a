"""The regular time grid of the store and the matching of radar frames to it.

The grid holds whole UTC days (every day that has at least one frame), each cut into
``1440 / interval`` slots starting at 00:00. A frame goes to its nearest slot when it is
within ``tolerance`` of it; of several frames for one slot the nearest is kept (ties: the
first in file order) and the others are counted as duplicates. A frame without data
(``usable`` false) still makes its day part of the grid but fills no slot: its slot stays
invalid unless another frame fills it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MINUTE = np.timedelta64(60, "s")


def nearest_slot(times: np.ndarray, interval_minutes: int) -> np.ndarray:
    """Nearest grid time (a multiple of ``interval_minutes`` since midnight) of each time [s]."""
    t = np.asarray(times, dtype="datetime64[s]").astype(np.int64)
    step = 60 * interval_minutes
    return (np.floor_divide(t + step // 2, step) * step).astype("datetime64[s]")


@dataclass
class TimeGrid:
    """The store's time axis and which frame fills each slot."""

    times: np.ndarray  # (T,) datetime64[s], whole days, interval apart
    per_day: int  # slots per day
    frame: np.ndarray  # (T,) int64 index of the frame in each slot, −1 = missing
    duplicates: np.ndarray  # indices of frames dropped as duplicates of a kept one
    off_grid: np.ndarray  # indices of frames further than the tolerance from any slot

    @property
    def valid(self) -> np.ndarray:
        """(T,) bool: a frame was found for the slot."""
        return self.frame >= 0

    @property
    def days(self) -> int:
        return self.times.size // self.per_day


def build_time_grid(
    frame_times: np.ndarray,
    interval_minutes: int,
    tolerance_minutes: float,
    rank: np.ndarray | None = None,
    usable: np.ndarray | None = None,
) -> TimeGrid:
    """Grid of every day with a frame, and the frame (index into ``frame_times``) per slot.

    rank: order of the frames for ties between duplicates (lower wins; default: position);
    usable: (N,) bool, frames that may fill a slot (default: all); the others fill none and
    are neither duplicates nor off the grid.
    """
    times = np.asarray(frame_times, dtype="datetime64[s]")
    rank = np.arange(times.size) if rank is None else np.asarray(rank)
    per_day = 24 * 60 // interval_minutes
    slots = nearest_slot(times, interval_minutes)
    on_grid = np.abs(times - slots) <= np.timedelta64(int(round(tolerance_minutes * 60)), "s")
    days = np.unique(slots[on_grid].astype("datetime64[D]"))
    step = np.timedelta64(interval_minutes * 60, "s")
    grid = (days.astype("datetime64[s]")[:, None] + np.arange(per_day) * step).reshape(-1)
    frame = np.full(grid.size, -1, dtype=np.int64)
    duplicates: list[int] = []
    if grid.size:
        pos = np.searchsorted(grid, slots)
        error = np.abs(times - slots).astype(np.int64)
        # nearest first, then file order: the first one claiming a slot wins
        for i in np.lexsort((rank, error)):
            if not on_grid[i] or (usable is not None and not usable[i]):
                continue
            if frame[pos[i]] < 0:
                frame[pos[i]] = i
            else:
                duplicates.append(int(i))
    return TimeGrid(
        times=grid,
        per_day=per_day,
        frame=frame,
        duplicates=np.array(sorted(duplicates), dtype=np.int64),
        off_grid=np.flatnonzero(~on_grid),
    )


def month_key(time: np.datetime64) -> str:
    """Calendar month ``'YYYY-MM'`` of a time."""
    return str(np.datetime64(time, "M"))
