"""Time grid, frame matching, blocks and splits: counts checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nowcast.preprocess.splits import apportion, assign_blocks, day_labels
from nowcast.preprocess.timegrid import build_time_grid, nearest_slot
from nowcast.store import StoreMeta, window_starts

MIN = np.timedelta64(60, "s")


def _day_times(day: str, interval: int, n: int | None = None) -> np.ndarray:
    start = np.datetime64(f"{day}T00:00:00", "s")
    per_day = 1440 // interval
    return start + np.arange(per_day if n is None else n) * interval * MIN


def _meta(times, valid, blocks) -> StoreMeta:
    h = w = 1
    return StoreMeta(
        path=Path("x"),
        times=times,
        valid=valid,
        block=blocks.block,
        split=blocks.split,
        months=[],
        noise_mask=np.zeros((0, h, w), bool),
        coverage=np.ones((h, w), bool),
        x=np.zeros(w),
        y=np.zeros(h),
        grid_mapping={},
        preprocess={},
    )


def test_full_six_minute_day_gives_6_blocks_and_21_windows_each():
    frames = _day_times("2024-06-01", 6)
    assert frames.size == 240
    grid = build_time_grid(frames, 6, 1.0)
    assert grid.times.size == 240 and grid.valid.all() and grid.per_day == 240
    b = assign_blocks(grid.times, grid.valid, 240, 40, [4, 1, 1], seed=0)
    assert sorted(set(b.block.tolist())) == [0, 1, 2, 3, 4, 5]
    assert np.all(np.bincount(b.block) == 40)
    assert b.usable == {"train": 4, "val": 1, "test": 1} and b.gappy == 0
    # each block has one split
    for k in range(6):
        assert len(set(b.split[b.block == k].tolist())) == 1
    meta = _meta(grid.times, grid.valid, b)
    assert window_starts(meta, "train", 20).size == 4 * 21
    assert window_starts(meta, "val", 20).size == 21
    assert window_starts(meta, "test", 20).size == 21


def test_five_minute_day_leaves_the_tail_unused():
    frames = _day_times("2024-06-01", 5)
    grid = build_time_grid(frames, 5, 1.0)
    assert grid.times.size == 288
    b = assign_blocks(grid.times, grid.valid, 288, 40, [4, 1, 1], seed=0)
    assert b.block.max() == 6 and np.all(b.block[280:] == -1) and np.all(b.split[280:] == -1)
    assert b.usable == {"train": 5, "val": 1, "test": 1}  # 7 blocks: 4.67/1.17/1.17 → 5/1/1
    meta = _meta(grid.times, grid.valid, b)
    assert window_starts(meta, "train", 20).size == 5 * 21


def test_missing_frame_drops_its_block_by_default():
    frames = np.delete(_day_times("2024-06-01", 6), [45])  # block 1 loses a frame
    grid = build_time_grid(frames, 6, 1.0)
    assert grid.valid.sum() == 239 and not grid.valid[45]
    b = assign_blocks(grid.times, grid.valid, 240, 40, [4, 1, 1], seed=3)
    assert np.all(b.block[40:80] == 1)  # keeps its block id
    assert np.all(b.split[40:80] == -1)  # but no split: no windows
    assert b.gappy == 1 and sum(b.usable.values()) == 5
    kept = assign_blocks(grid.times, grid.valid, 240, 40, [4, 1, 1], seed=3, drop_gappy=False)
    label = kept.split[40]
    assert np.all(kept.split[40:80] == label) and label >= 0
    meta = _meta(grid.times, grid.valid, kept)
    starts = window_starts(meta, int(label), 20)
    in_block = starts[(starts >= 40) & (starts < 80)]
    assert in_block.tolist() == list(range(46, 61))  # only the windows after the gap


def test_split_assignment_is_seeded_per_day():
    days = np.concatenate([_day_times(f"2024-06-{d:02d}", 6) for d in range(1, 11)])
    grid = build_time_grid(days, 6, 1.0)
    a = assign_blocks(grid.times, grid.valid, 240, 40, [4, 1, 1], seed=7)
    b = assign_blocks(grid.times, grid.valid, 240, 40, [4, 1, 1], seed=7)
    c = assign_blocks(grid.times, grid.valid, 240, 40, [4, 1, 1], seed=8)
    np.testing.assert_array_equal(a.split, b.split)
    assert not np.array_equal(a.split, c.split)
    assert a.usable == {"train": 40, "val": 10, "test": 10}
    # a day's labels do not depend on the other days in the archive
    one = build_time_grid(_day_times("2024-06-04", 6), 6, 1.0)
    alone = assign_blocks(one.times, one.valid, 240, 40, [4, 1, 1], seed=7)
    np.testing.assert_array_equal(alone.split, a.split[3 * 240 : 4 * 240])
    np.testing.assert_array_equal(
        day_labels(np.datetime64("2024-06-04"), 6, [4, 1, 1], 7), alone.split[::40]
    )


def test_apportion():
    assert apportion(6, [4, 1, 1]) == [4, 1, 1]
    assert apportion(7, [4, 1, 1]) == [5, 1, 1]
    assert apportion(3, [4, 1, 1]) == [2, 1, 0]
    assert apportion(5, [1, 0, 0]) == [5, 0, 0]
    assert apportion(0, [4, 1, 1]) == [0, 0, 0]
    with pytest.raises(ValueError):
        apportion(3, [0, 0, 0])


def test_matching_tolerance_duplicates_and_off_grid():
    t0 = np.datetime64("2024-06-01T00:00:00", "s")
    times = np.array(
        [
            t0 + 6 * MIN + np.timedelta64(30, "s"),  # 0: slot 1, 30 s late
            t0 + 6 * MIN - np.timedelta64(10, "s"),  # 1: slot 1, 10 s early → wins
            t0 + 12 * MIN + np.timedelta64(150, "s"),  # 2: 2.5 min off → off the grid
            t0 + 18 * MIN,  # 3: slot 3
            t0 + 18 * MIN,  # 4: same time as 3, later in file order → duplicate
        ]
    )
    grid = build_time_grid(times, 6, 1.0, rank=np.array([0, 1, 2, 3, 4]))
    assert grid.frame[:4].tolist() == [-1, 1, -1, 3]
    assert grid.duplicates.tolist() == [0, 4]
    assert grid.off_grid.tolist() == [2]
    # ties go to the lower rank (file order), not to the arrival order
    grid = build_time_grid(times, 6, 1.0, rank=np.array([0, 1, 2, 9, 4]))
    assert grid.frame[3] == 4
    # a frame just before midnight belongs to the next day's first slot
    late = np.array([np.datetime64("2024-06-01T23:59:40", "s")])
    assert nearest_slot(late, 6)[0] == np.datetime64("2024-06-02T00:00:00")
    assert build_time_grid(late, 6, 1.0).times[0] == np.datetime64("2024-06-02T00:00:00")


def test_only_days_with_frames_are_in_the_grid():
    frames = np.concatenate([_day_times("2024-06-01", 6, 10), _day_times("2024-06-20", 6, 5)])
    grid = build_time_grid(frames, 6, 1.0)
    assert grid.days == 2 and grid.times.size == 480
    assert grid.times[240] == np.datetime64("2024-06-20T00:00:00")
    assert grid.valid.sum() == 15
