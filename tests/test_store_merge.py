"""Merging dataset stores (nowcast.preprocess.merge): frames, blocks, splits, masks, grid,
the merged preprocess attribute, and the one-line errors. Stores are written with the
real StoreWriter; expected values are built by hand from the sources."""

from __future__ import annotations

import numpy as np
import pytest

from nowcast.errors import UserError
from nowcast.preprocess.merge import SHARED_KEYS, merge_stores
from nowcast.store import FrameReader, StoreWriter, read_meta, window_starts

PRE = {
    "z_min": -10.0,
    "z_max": 60.0,
    "zr": {"a": 200.0, "b": 1.6},
    "crop": 330,
    "disk_radius": 10.0,
    "size": 100,
    "interval_minutes": 5,
}
H, W = 6, 8


def _store(path, day, value, block_len=6, splits=(0, 1, 2, 0), missing=(), x0=0.0, **pre):
    """A day-long 24-frame store (every 5 min from ``day`` 00:00, only 24 slots) whose frame
    i holds value + i everywhere; blocks of ``block_len`` get ``splits`` in turn."""
    n = 24
    times = np.datetime64(day, "s") + np.arange(n) * np.timedelta64(5, "m")
    frames = ((value + np.arange(n))[:, None, None] + np.zeros((1, H, W))).astype(np.uint8)
    valid = np.ones(n, bool)
    valid[list(missing)] = False
    block = (np.arange(n) // block_len).astype(np.int32)
    split = np.array([splits[b % len(splits)] for b in block], np.int8)
    coverage = np.ones((H, W), bool)
    coverage[0, int(value) % W] = False
    noise = np.zeros((1, H, W), bool)
    noise[0, 1, int(value) % W] = True
    with StoreWriter(
        path,
        times,
        x0 + np.arange(W) * 3300.0,
        -np.arange(H) * 3300.0,
        {"grid_mapping_name": "polar_stereographic", "x0": x0},
        {**PRE, "input": {"variable": None}, "source_value": value, **pre},
    ) as w:
        w.write_frames(0, frames)
        w.finish(valid, block, split, [str(np.datetime64(day, "M"))], noise, coverage)
    return path


def test_merge_keeps_frames_blocks_and_splits_in_time_order(tmp_path):
    # given in reverse time order: the merged store is in time order
    b = _store(tmp_path / "b.nc", "2021-07-04", 100, splits=(2,))
    a = _store(tmp_path / "a.nc", "2016-09-28", 10, splits=(0, 1, 0, 0), missing=(3,))
    out = merge_stores([b, a], tmp_path / "m.nc")
    meta = read_meta(out)
    ma, mb = read_meta(a), read_meta(b)
    np.testing.assert_array_equal(meta.times, np.concatenate([ma.times, mb.times]))
    np.testing.assert_array_equal(meta.valid, np.concatenate([ma.valid, mb.valid]))
    np.testing.assert_array_equal(meta.split, np.concatenate([ma.split, mb.split]))
    frames = FrameReader(out).read(0, 48)
    np.testing.assert_array_equal(frames[:24, 0, 0], 10 + np.arange(24))
    np.testing.assert_array_equal(frames[24:, 2, 3], 100 + np.arange(24))
    # b came first in the list: its blocks keep ids 0..3, a's are shifted past them
    np.testing.assert_array_equal(meta.block[24:], np.arange(24) // 6)
    np.testing.assert_array_equal(meta.block[:24], 4 + np.arange(24) // 6)
    # windows: the same as in each source, never across a source boundary
    for split in ("train", "val", "test"):
        merged = window_starts(meta, split, 4)
        expected = np.concatenate([window_starts(ma, split, 4), 24 + window_starts(mb, split, 4)])
        np.testing.assert_array_equal(merged, expected)
    assert window_starts(meta, "test", 4).size == 4 * 3  # four 6-frame test blocks of b
    assert window_starts(meta, "train", 4).size == 6  # a: blocks 2 and 3 (block 0 has a gap)


def test_merge_masks_grid_and_preprocess(tmp_path):
    a = _store(tmp_path / "a.nc", "2016-09-28", 10, x0=0.0)
    b = _store(tmp_path / "b.nc", "2016-09-29", 11, x0=5e5, input={"variable": "RATE"})
    meta = read_meta(merge_stores([a, b], tmp_path / "m.nc"))
    ma, mb = read_meta(a), read_meta(b)
    np.testing.assert_array_equal(meta.coverage, ma.coverage & mb.coverage)
    assert meta.coverage.sum() == H * W - 2
    assert meta.months == ["2016-09"]  # one month in both: the union of their masks
    np.testing.assert_array_equal(meta.noise_mask[0], ma.noise_mask[0] | mb.noise_mask[0])
    # two radars' grids: centred offsets at the first source's spacing, no grid mapping
    np.testing.assert_allclose(meta.x, (np.arange(W) - 3.5) * 3300.0)
    np.testing.assert_allclose(meta.y, (2.5 - np.arange(H)) * 3300.0)
    assert meta.grid_mapping == {}
    pre = meta.preprocess
    assert {k: pre[k] for k in SHARED_KEYS} == PRE
    assert pre["input"] == {"variable": None}  # the sources read different fields
    assert [s["store"] for s in pre["merged_from"]] == ["a.nc", "b.nc"]
    assert [s["source_value"] for s in pre["merged_from"]] == [10, 11]
    assert pre["merged_from"][1]["input"] == {"variable": "RATE"}


def test_merge_of_one_radar_keeps_its_grid(tmp_path):
    a = _store(tmp_path / "a.nc", "2016-09-28", 10, input={"variable": "DBZH"})
    b = _store(tmp_path / "b.nc", "2016-10-02", 20, input={"variable": "DBZH"})
    meta = read_meta(merge_stores([a, b], tmp_path / "m.nc"))
    ma = read_meta(a)
    np.testing.assert_array_equal(meta.x, ma.x)
    np.testing.assert_array_equal(meta.y, ma.y)
    assert meta.grid_mapping == ma.grid_mapping
    assert meta.months == ["2016-09", "2016-10"]
    assert meta.preprocess["input"] == {"variable": "DBZH"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"interval_minutes": 6}, "preprocess.interval_minutes is 6 but"),
        ({"zr": {"a": 316.0, "b": 1.5}}, "preprocess.zr is"),
        ({"z_max": 70.0}, "preprocess.z_max is 70.0"),
    ],
)
def test_merge_refuses_stores_preprocessed_differently(tmp_path, change, message):
    a = _store(tmp_path / "a.nc", "2016-09-28", 10)
    b = _store(tmp_path / "b.nc", "2016-09-29", 11, **change)
    out = tmp_path / "m.nc"
    with pytest.raises(UserError, match=message) as err:
        merge_stores([a, b], out)
    assert str(b) in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_merge_refuses_a_shared_day_a_missing_store_and_overwriting_a_source(tmp_path):
    a = _store(tmp_path / "a.nc", "2016-09-28", 10)
    b = _store(tmp_path / "b.nc", "2016-09-28", 11)
    with pytest.raises(UserError, match="holds 2016-09-28T00:00:00Z as .* does"):
        merge_stores([a, b], tmp_path / "m.nc")
    with pytest.raises(UserError, match="no such dataset store"):
        merge_stores([a, tmp_path / "nope.nc"], tmp_path / "m.nc")
    with pytest.raises(UserError, match="cannot be one of its sources"):
        merge_stores([a, b], a)
    with pytest.raises(UserError, match="no dataset stores"):
        merge_stores([], tmp_path / "m.nc")
    assert not (tmp_path / "m.nc").exists()
