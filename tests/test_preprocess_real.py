"""The four real radar folders preprocess with only their config (configs/data/*.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nowcast.config import load_config
from nowcast.io import expand_inputs, read_frame
from nowcast.preprocess import TransformSettings, run_preprocess, transform_frame
from nowcast.progress import set_quiet
from nowcast.store import FrameReader, read_meta

REPO = Path(__file__).resolve().parents[1]

# folder, config, frames, grid (H, W), quantity, interval
CASES = {
    "bom": ("bom-melbourne_20180616_6min", 61, (512, 512), "accumulation", 6),
    "fmi": ("fmi_20160928_5min", 40, (1226, 760), "reflectivity", 5),
    "mch": ("mch_20150515_5min", 40, (640, 710), "rate", 5),
    "rmi": ("rmi_20210704_5min_odim", 39, (700, 700), "rate", 5),
}


@pytest.fixture(scope="module")
def stores(radar_dir, tmp_path_factory):
    set_quiet(True)
    out = {}
    for name, (folder, *_rest) in CASES.items():
        store = tmp_path_factory.mktemp(name) / "store.nc"
        cfg = load_config(
            REPO / "configs" / "data" / f"{name}.yaml",
            [f"data.store={store}"],
            {"input.paths": [str(radar_dir / folder)]},
        )
        out[name] = (cfg, run_preprocess(cfg, show_summary=False))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_real_folder_gives_a_valid_store(stores, radar_dir, name):
    folder, n_files, shape, quantity, interval = CASES[name]
    cfg, summary = stores[name]
    meta = read_meta(summary.store)
    assert summary.files == n_files and summary.frames_found == n_files and not summary.bad_files
    assert meta.valid.sum() == n_files and meta.times.size == 1440 // interval
    assert np.all(np.diff(meta.times) == np.timedelta64(interval, "m"))
    p = meta.preprocess
    assert p["grid"]["shape"] == list(shape) and p["input"]["quantity"] == quantity
    assert p["interval_minutes"] == interval
    # the 100 × 100 cells sit in the middle of the input grid, 3.3 input pixels apart
    files = expand_inputs([radar_dir / folder], cfg.input.pattern)
    first = read_frame(files[0], cfg.input, cfg.zr, interval)
    r0, c0 = (shape[0] - 330) // 2, (shape[1] - 330) // 2
    dx, dy = first.x[1] - first.x[0], first.y[1] - first.y[0]
    assert meta.x[0] == pytest.approx(first.x[c0] + 1.15 * dx)
    assert meta.y[0] == pytest.approx(first.y[r0] + 1.15 * dy)
    np.testing.assert_allclose(np.diff(meta.x), 3.3 * dx)
    # the input's grid mapping is copied into the store's crs variable, completed by pyproj's
    # CF attributes (grid_mapping_name, crs_wkt, …)
    assert set(first.grid_mapping) <= set(meta.grid_mapping)
    assert {"grid_mapping_name", "crs_wkt"} <= set(meta.grid_mapping)
    for key, value in first.grid_mapping.items():
        if isinstance(value, str):
            assert meta.grid_mapping[key] == value
        else:
            np.testing.assert_allclose(meta.grid_mapping[key], value)
    # stored frames are the transform of the files, read with the same config
    i = int(np.flatnonzero(meta.times == first.time)[0])
    stored = FrameReader(summary.store).read(i, i + 1)[0]
    np.testing.assert_array_equal(
        stored, transform_frame(first.dbz, TransformSettings.from_dict(p))
    )
    assert stored.any()  # these are rainy events
    assert meta.coverage.mean() > 0.9


def test_melbourne_spoke_is_masked_north_of_the_radar(stores):
    _, summary = stores["bom"]
    meta = read_meta(summary.store)
    mask = meta.noise_mask[0]
    assert 10 <= mask.sum() <= 200
    rows, cols = np.nonzero(mask)
    # the radar is at the grid centre (x = y = 0 m): every mask cell lies north of it,
    # in a narrow sector (a spoke), not scattered over the rain
    ys, xs = meta.y[rows], meta.x[cols]
    assert np.all(ys > 10_000.0)
    azimuth = np.degrees(np.arctan2(xs, ys))
    assert np.all(np.abs(azimuth) < 30.0) and np.ptp(azimuth) < 20.0


def test_rainy_events_without_clutter_keep_their_rain(stores):
    for name in ("fmi", "mch", "rmi"):
        _, summary = stores[name]
        assert sum(summary.masked.values()) <= 100, (name, summary.masked)


def test_short_events_give_blocks_only_where_whole(stores):
    # Melbourne 10:00–16:00 at 6 min fills block 3 of the day (12:00–15:54): 21 windows
    assert sum(stores["bom"][1].windows.values()) == 21
    # the 5-minute events (≤ 40 frames, not aligned on a block) fill no whole 40-frame block
    for name in ("fmi", "mch", "rmi"):
        assert sum(stores[name][1].windows.values()) == 0
