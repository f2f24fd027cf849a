"""The dataset store: round trip, atomic writing, and the window rule (inside one block)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from nowcast.errors import UserError
from nowcast.store import FrameReader, StoreWriter, read_meta, window_starts


def _write(path, n=120, block_len=40, splits=(0, 0, 2), missing=(), h=8, w=12):
    times = np.datetime64("2024-06-30T20:00:00", "s") + np.arange(n) * np.timedelta64(6, "m")
    frames = (np.arange(n)[:, None, None] + np.zeros((1, h, w))).astype(np.uint8)
    valid = np.ones(n, bool)
    valid[list(missing)] = False
    block = np.arange(n) // block_len
    split = np.array([splits[b] for b in block], np.int8)
    with StoreWriter(
        path,
        times,
        np.arange(w) * 1e3,
        -np.arange(h) * 1e3,
        {"grid_mapping_name": "x"},
        {"z_min": -10, "z_max": 60},
    ) as wr:
        wr.write_frames(0, frames[:50])
        wr.write_frames(50, frames[50:])
        months = ["2024-06", "2024-07"]
        noise = np.zeros((2, h, w), bool)
        noise[1, 0, 0] = True
        wr.finish(valid, block, split, months, noise, np.ones((h, w), bool))
    return times, frames


def test_round_trip(tmp_path):
    path = tmp_path / "s.nc"
    times, frames = _write(path)
    meta = read_meta(path)
    np.testing.assert_array_equal(meta.times, times)
    assert meta.months == ["2024-06", "2024-07"]
    assert meta.preprocess == {"z_min": -10, "z_max": 60}
    assert meta.shape == (8, 12)
    reader = FrameReader(path)
    np.testing.assert_array_equal(reader.read(30, 35), frames[30:35])
    with xr.open_dataset(path) as ds:  # xarray reads it as usual
        assert ds["frames"].dtype == np.uint8 and ds["frames"].shape == (120, 8, 12)
    # noise mask of the right month: July 1 → index 1
    assert not meta.pixel_mask(times[-1])[0, 0] and meta.pixel_mask(times[0])[0, 0]


def test_windows_stay_inside_one_block(tmp_path):
    path = tmp_path / "s.nc"
    _write(path, splits=(0, 0, 2))
    meta = read_meta(path)
    train = window_starts(meta, "train", 20)
    # two neighbouring train blocks: 21 windows each, none across the boundary at 40
    assert train.size == 42
    assert not np.any((train < 40) & (train + 20 > 40))
    assert window_starts(meta, "test", 20).tolist() == list(range(80, 101))
    assert window_starts(meta, "val", 20).size == 0


def test_missing_frame_removes_its_windows(tmp_path):
    path = tmp_path / "s.nc"
    _write(path, missing=(85,))
    starts = window_starts(read_meta(path), "test", 20)
    # (the preprocess default drops such a block altogether; the window rule alone keeps the
    # windows that avoid the gap: block 80..119 with 85 missing → starts 86..100)
    assert starts.tolist() == list(range(86, 101))


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "s.nc"
    with pytest.raises(RuntimeError):
        with StoreWriter(
            path, np.array(["2024-01-01"], "datetime64[s]"), np.arange(3.0), np.arange(2.0), {}, {}
        ) as wr:
            wr.write_frames(0, np.zeros((1, 2, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_store_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such dataset store"):
        read_meta(tmp_path / "nope.nc")
