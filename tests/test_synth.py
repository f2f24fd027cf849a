"""The synthetic radar archive: determinism, ranges, coverage, clutter, timing, missing frames."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import xarray as xr

from nowcast.config.synth import SynthConfig
from nowcast.synth import (
    NO_ECHO_DBZ,
    clutter_mask,
    coverage_mask,
    frame_filename,
    frame_times,
    iter_frames,
    synthesize,
)


def _open(path):
    with xr.open_dataset(path) as ds:
        return ds.load()


def test_files_are_cf_reflectivity(synth_archive, synth_cfg):
    ds = _open(synth_archive.files[100])
    var = ds["reflectivity"]
    assert var.dims == ("time", "y", "x")
    assert var.shape == (1, synth_cfg.size, synth_cfg.size)
    assert var.attrs["standard_name"] == "equivalent_reflectivity_factor"
    assert var.attrs["units"] == "dBZ"
    assert ds["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert ds["y"].attrs["standard_name"] == "projection_y_coordinate"
    assert np.allclose(np.diff(ds["x"].values), 1000.0)  # 1 km
    assert np.allclose(np.diff(ds["y"].values), -1000.0)
    assert ds[var.attrs["grid_mapping"]].attrs["grid_mapping_name"] == "azimuthal_equidistant"


def test_determinism(tmp_path):
    a = SynthConfig(out=tmp_path / "a", days=1, size=96, seed=5)
    b = a.model_copy(update={"out": tmp_path / "b"})
    c = a.model_copy(update={"out": tmp_path / "c", "seed": 6})
    fa, fb, fc = (synthesize(cfg).files for cfg in (a, b, c))
    assert [p.name for p in fa] == [p.name for p in fb]
    for pa, pb in zip(fa[::17], fb[::17]):
        np.testing.assert_array_equal(
            _open(pa)["reflectivity"].values, _open(pb)["reflectivity"].values
        )
    diffs = [
        not np.array_equal(
            _open(pa)["reflectivity"].values, _open(pc)["reflectivity"].values, equal_nan=True
        )
        for pa, pc in zip(fa[::17], fc[::17])
    ]
    assert any(diffs)


def test_a_day_does_not_depend_on_the_start(tmp_path):
    one = SynthConfig(out=tmp_path, start=dt.date(2024, 6, 2), days=1, size=64)
    two = one.model_copy(update={"start": dt.date(2024, 6, 1), "days": 2})
    first = dict(iter_frames(one))
    second = dict(iter_frames(two))
    for t in list(first)[::40]:
        if first[t] is not None:
            np.testing.assert_array_equal(first[t], second[t])


def test_dbz_range_and_nan_outside_coverage(synth_archive, synth_cfg):
    cover = coverage_mask(synth_cfg.size)
    assert not cover[0, 0] and cover[synth_cfg.size // 2, synth_cfg.size // 2]
    wet_fractions = []
    for path in synth_archive.files[::12]:
        dbz = _open(path)["reflectivity"].values[0]
        assert np.isnan(dbz[~cover]).all()
        inside = dbz[cover]
        assert np.isfinite(inside).all()
        assert inside.min() >= NO_ECHO_DBZ and inside.max() <= 75.0
        rain = inside[inside > NO_ECHO_DBZ]
        if rain.size:
            assert rain.min() >= 0.0  # echo is never weaker than 0 dBZ, no echo is exactly −32
        wet_fractions.append(np.mean(inside >= 20.0))
    # rain that comes and goes: a dry spell and a wet spell
    assert min(wet_fractions) < 0.02
    assert max(wet_fractions) > 0.15


def test_rain_moves_between_frames(synth_archive):
    a, b = (_open(p)["reflectivity"].values[0] for p in synth_archive.files[60:62])
    assert not np.array_equal(a, b, equal_nan=True)


def test_clutter_positions(synth_archive, synth_cfg):
    with xr.open_dataset(synth_archive.clutter_file) as ds:
        mask = ds["clutter"].values.astype(bool)
    np.testing.assert_array_equal(mask, clutter_mask(synth_cfg))
    assert 0.002 < mask.mean() < 0.03
    # persistent strong echo on the clutter pixels: ≥ 40 dBZ on most of them in most frames
    strong = [
        np.mean(_open(p)["reflectivity"].values[0][mask] >= 40.0) for p in synth_archive.files[::10]
    ]
    assert np.mean(np.array(strong) > 0.9) >= 0.75
    # every patch lies inside the central 70 % of the grid (so a 330-px crop of 480 keeps it)
    rows, cols = np.nonzero(mask)
    half = 0.35 * synth_cfg.size
    c = (synth_cfg.size - 1) / 2
    assert np.abs(rows - c).max() < half and np.abs(cols - c).max() < half


def test_no_clutter_when_asked(tmp_path):
    assert not clutter_mask(SynthConfig(out=tmp_path, clutter_patches=0)).any()


def test_time_stamps_six_minutes_apart(synth_archive, synth_cfg):
    times = []
    for path in synth_archive.files:
        t = _open(path)["time"].values[0].astype("datetime64[s]").astype(dt.datetime)
        assert path.name == frame_filename(t)
        times.append(t)
    steps = np.diff(np.array(times, dtype="datetime64[s]")).astype(int)
    assert set(steps) <= {360, 720}  # 6 min, or 12 min across a missing frame
    nominal = frame_times(synth_cfg)
    assert len(nominal) == 2 * 240
    assert all(t.minute % 6 == 0 and t.second == 0 for t in times)


def test_missing_frames_are_really_missing(synth_archive, synth_cfg):
    manifest = json.loads(synth_archive.manifest_file.read_text())
    missing = [dt.datetime.fromisoformat(s) for s in manifest["missing"]]
    assert len(missing) == synth_cfg.missing_per_day * synth_cfg.days
    assert missing == synth_archive.missing
    for t in missing:
        assert not (synth_cfg.out / frame_filename(t)).exists()
    present = {p.name for p in synth_cfg.out.glob("synth_*.nc")}
    assert len(present) == len(frame_times(synth_cfg)) - len(missing)
    assert manifest["frames_written"] == len(present)


def test_spans_two_calendar_months(synth_archive):
    months = {
        (_open(p)["time"].values[0].astype("datetime64[M]")) for p in synth_archive.files[::60]
    }
    assert len(months) >= 2


@pytest.mark.parametrize("interval", [5, 10])
def test_other_intervals(tmp_path, interval):
    cfg = SynthConfig(out=tmp_path, days=1, size=64, interval_minutes=interval, missing_per_day=3)
    frames = list(iter_frames(cfg))
    assert len(frames) == 24 * 60 // interval
    assert sum(f is None for _, f in frames) == 3
    assert frames[1][0] - frames[0][0] == dt.timedelta(minutes=interval)


def test_grid_spacing_and_size(tmp_path):
    cfg = SynthConfig(out=tmp_path, days=1, size=80, pixel_km=2.0, missing_per_day=0)
    archive = synthesize(cfg)
    ds = _open(archive.files[0])
    assert ds["reflectivity"].shape == (1, 80, 80)
    assert np.allclose(np.diff(ds["x"].values), 2000.0)
    assert len(archive.files) == 240
