"""`preprocess` on the synthetic archive: the store's contents, the clutter mask against the
generator's answer key, a month without clutter, and parallel runs giving the same store."""

from __future__ import annotations

import datetime as dt
import json

import netCDF4
import numpy as np
import pytest
import xarray as xr

from nowcast.config import load_config
from nowcast.config.input import InputConfig
from nowcast.config.synth import SynthConfig
from nowcast.config.zr import ZRConfig
from nowcast.io import read_frame
from nowcast.preprocess import (
    TransformSettings,
    output_coordinates,
    run_preprocess,
    transform_frame,
)
from nowcast.preprocess.clutter import ClutterRule, month_mask
from nowcast.preprocess.crop import central_crop
from nowcast.preprocess.resize import area_resize
from nowcast.preprocess.splits import day_labels
from nowcast.preprocess.tasks import TaskSpec, process_chunk
from nowcast.progress import set_quiet
from nowcast.store import FrameReader, read_meta, window_starts
from nowcast.synth import grid_coordinates, synthesize


def _cfg(inputs, store, *sets):
    return load_config(
        None,
        [f"data.store={store}", "input.pattern=synth_*.nc", *sets],
        {"input.paths": [str(p) for p in inputs]},
    )


@pytest.fixture(scope="module")
def synth_store(synth_archive, tmp_path_factory):
    set_quiet(True)
    store = tmp_path_factory.mktemp("store") / "store.nc"
    summary = run_preprocess(_cfg([synth_archive.folder], store), show_summary=False)
    return store, summary


def _clutter_cells(archive) -> np.ndarray:
    """The generator's clutter pixels mapped to the 100×100 grid: share of each cell's area."""
    with netCDF4.Dataset(archive.clutter_file) as nc:
        clutter = nc["clutter"][:].astype(np.float64)
    share, _ = area_resize(central_crop(clutter, 330), (100, 100))
    return share


def test_store_layout(synth_store, synth_archive, synth_cfg):
    store, summary = synth_store
    meta = read_meta(store)
    assert meta.times.size == 2 * 240
    assert meta.times[0] == np.datetime64("2024-06-30T00:00:00")
    assert np.all(np.diff(meta.times) == np.timedelta64(6, "m"))
    assert meta.valid.sum() == len(synth_archive.files) == 476
    missing = {np.datetime64(t, "s") for t in synth_archive.missing}
    assert {t for t, v in zip(meta.times, meta.valid) if not v} == missing
    assert meta.months == ["2024-06", "2024-07"]
    assert meta.noise_mask.shape == (2, 100, 100) and meta.coverage.all()
    frames = FrameReader(store).read(0, meta.times.size)
    assert frames.dtype == np.uint8 and frames.shape == (480, 100, 100)
    assert not frames[~meta.valid].any()  # missing frames are zeros
    # coordinates: the cell centres inside the input grid, grid mapping copied
    x_in, y_in = grid_coordinates(synth_cfg.size, synth_cfg.pixel_km)
    x, y = output_coordinates(x_in, y_in, TransformSettings())
    np.testing.assert_array_equal(meta.x, x)
    np.testing.assert_array_equal(meta.y, y)
    assert meta.grid_mapping["grid_mapping_name"] == "azimuthal_equidistant"
    # the preprocessing settings, enough for predict to redo them
    p = meta.preprocess
    for key in (
        "z_min",
        "z_max",
        "crop",
        "disk_radius",
        "size",
        "interval_minutes",
        "block_frames",
    ):
        assert key in p
    assert p["zr"] == {"a": 200.0, "b": 1.6}
    assert (
        p["input"]["quantity"] == "reflectivity" and p["input"]["variable_read"] == "reflectivity"
    )
    assert p["grid"]["shape"] == [480, 480]
    assert (p["grid"]["x_first"], p["grid"]["x_last"]) == (x_in[0], x_in[-1])
    assert TransformSettings.from_dict(p) == TransformSettings()
    with xr.open_dataset(store) as ds:  # a plain netCDF that xarray reads
        assert json.loads(ds.attrs["preprocess"]) == p
        assert ds["frames"].attrs["grid_mapping"] == "crs"


def test_frames_are_the_transform_of_the_files(synth_store, synth_archive):
    store, _ = synth_store
    meta = read_meta(store)
    reader = FrameReader(store)
    settings = TransformSettings.from_dict(meta.preprocess)
    for path in synth_archive.files[::97]:
        frame = read_frame(path, InputConfig(), ZRConfig())
        i = int(np.flatnonzero(meta.times == frame.time)[0])
        np.testing.assert_array_equal(
            reader.read(i, i + 1)[0], transform_frame(frame.dbz, settings)
        )


def test_blocks_splits_windows_and_summary(synth_store, synth_archive):
    store, summary = synth_store
    meta = read_meta(store)
    missing_blocks = {
        (m - np.datetime64("2024-06-30T00:00")) // np.timedelta64(240, "m")
        for m in meta.times[~meta.valid]
    }
    assert summary.blocks_dropped == len(missing_blocks)
    assert sum(summary.blocks.values()) == 12 - len(missing_blocks)
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        starts = window_starts(meta, name, 20)
        assert starts.size == 21 * summary.blocks[name] == summary.windows[name]
        assert np.all(meta.split[starts] == code)
    assert summary.frames_found == 476 and summary.frames_missing == 4 and summary.days == 2
    assert summary.bad_files == [] and summary.duplicates == 0
    text = "\n".join(summary.lines())
    assert "476 found, 4 missing" in text and "2024-06" in text and "windows per split" in text


def test_clutter_mask_finds_the_synthetic_clutter(synth_store, synth_archive):
    store, summary = synth_store
    meta = read_meta(store)
    share = _clutter_cells(synth_archive)
    clutter, clean = share >= 0.5, share == 0
    assert clutter.sum() > 150
    for m, mask in zip(meta.months, meta.noise_mask):
        recall = mask[clutter].mean()
        false_rate = mask[clean].mean()
        assert recall >= 0.95, (m, recall)
        assert false_rate <= 0.01, (m, false_rate)
        assert summary.masked[m] == mask.sum()


def test_a_month_without_clutter_gets_an_empty_mask(tmp_path):
    cfg = SynthConfig(
        out=tmp_path / "clean", start=dt.date(2024, 8, 1), days=1, seed=4, clutter_patches=0
    )
    synthesize(cfg)
    summary = run_preprocess(_cfg([cfg.out], tmp_path / "s.nc"), show_summary=False)
    assert summary.masked == {"2024-08": 0}
    assert not read_meta(tmp_path / "s.nc").noise_mask.any()


def test_clutter_settings_change_the_mask(synth_archive):
    files = sorted(synth_archive.files)[240:360]  # half of the July day
    cfg = load_config()
    spec = TaskSpec(cfg.input, cfg.zr, TransformSettings(), 6)
    stats = process_chunk(list(enumerate(map(str, files))), spec).stats["2024-07"]
    share = _clutter_cells(synth_archive)

    def mask(*sets):
        return month_mask(
            stats, 100, ClutterRule.from_config(load_config(None, list(sets)).preprocess)
        )

    default = mask()
    assert default[share >= 0.5].mean() >= 0.95 and not default[share == 0].any()
    assert not mask("preprocess.clutter_clusters=0").any()
    assert not mask("preprocess.clutter_min_excess=0.99").any()  # nothing has echo 99 % more often
    assert not mask(
        "preprocess.clutter_max_cv=0.01"
    ).any()  # the clutter's ±3 dBZ is not that steady
    # a background window smaller than the clutter discs misses their insides
    assert mask("preprocess.clutter_window=3")[share >= 0.5].mean() < 0.9


def test_settings_reach_the_store(synth_archive, tmp_path):
    files = sorted(synth_archive.files)[:120]
    sets = [
        "preprocess.z_min=0",
        "preprocess.z_max=50",
        "preprocess.crop=200",
        "preprocess.disk_radius=3",
        "preprocess.size=50",
        "preprocess.block_frames=30",
        "preprocess.split_ratio=[1,0,1]",
        "preprocess.drop_gappy_blocks=false",
        "preprocess.tolerance_minutes=0.5",
        "preprocess.chunk_files=5",
        "zr.a=58.53",
        "preprocess.seed=3",
        "data.n_in=2",
        "data.n_out=8",
    ]
    summary = run_preprocess(_cfg(files, tmp_path / "s.nc", *sets), show_summary=False)
    meta = read_meta(tmp_path / "s.nc")
    assert meta.shape == (50, 50)
    s = TransformSettings(z_min=0, z_max=50, crop=200, disk_radius=3, size=50)
    assert TransformSettings.from_dict(meta.preprocess) == s
    frame = read_frame(files[7], InputConfig(), ZRConfig())
    i = int(np.flatnonzero(meta.times == frame.time)[0])
    np.testing.assert_array_equal(
        FrameReader(tmp_path / "s.nc").read(i, i + 1)[0], transform_frame(frame.dbz, s)
    )
    assert meta.preprocess["zr"]["a"] == 58.53 and meta.preprocess["tolerance_minutes"] == 0.5
    assert meta.block[meta.block >= 0].max() == 240 // 30 - 1
    assert set(np.unique(meta.split[meta.split >= 0])) <= {0, 2}  # no val blocks with 1/0/1
    # gappy blocks are kept: all 8 blocks of the day have a split (blocks 4–7 have no frame)
    assert summary.blocks["train"] + summary.blocks["test"] == 8 and summary.blocks_dropped == 0
    # the day's blocks are labelled by the seeded draw of that day
    labels = day_labels(meta.times[0], 8, [1, 0, 1], 3)
    np.testing.assert_array_equal(meta.split[meta.block >= 0][::30], labels)
    # windows of data.n_in + data.n_out frames are counted in the summary
    assert summary.window_frames == 10 and meta.preprocess["window_frames"] == 10
    for name in ("train", "val", "test"):
        assert summary.windows[name] == window_starts(meta, name, 10).size
    assert summary.windows["train"] + summary.windows["test"] > 0


@pytest.mark.slow
def test_parallel_run_gives_the_same_store(synth_archive, tmp_path):
    files = sorted(synth_archive.files)[:48]
    one = run_preprocess(
        _cfg(files, tmp_path / "one.nc", "preprocess.chunk_files=4"), show_summary=False
    )
    two = run_preprocess(
        _cfg(files, tmp_path / "two.nc", "preprocess.chunk_files=4", "preprocess.workers=2"),
        show_summary=False,
    )
    a, b = read_meta(one.store), read_meta(two.store)
    np.testing.assert_array_equal(
        FrameReader(one.store).read(0, 240), FrameReader(two.store).read(0, 240)
    )
    for field in ("valid", "block", "split", "noise_mask", "coverage", "x", "y"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.preprocess == b.preprocess


@pytest.mark.slow
def test_joins_an_existing_dask_cluster(synth_archive, tmp_path):
    from distributed import LocalCluster

    files = sorted(synth_archive.files)[:40]
    alone = run_preprocess(_cfg(files, tmp_path / "alone.nc"), show_summary=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        sets = (f"preprocess.scheduler={cluster.scheduler_address}", "preprocess.chunk_files=8")
        joined = run_preprocess(_cfg(files, tmp_path / "joined.nc", *sets), show_summary=False)
        assert cluster.scheduler_address.startswith("tcp://")
    np.testing.assert_array_equal(
        FrameReader(alone.store).read(0, 240), FrameReader(joined.store).read(0, 240)
    )
    assert read_meta(joined.store).valid.sum() == 40


@pytest.mark.slow
def test_unreachable_scheduler_is_a_user_error():
    from nowcast.errors import UserError
    from nowcast.preprocess.parallel import Runner

    with pytest.raises(UserError, match="preprocess.scheduler: cannot connect"):
        with Runner(0, "tcp://127.0.0.1:9"):
            pass


def _malloc_trim_setting(_item: object) -> str | None:
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_workers_keep_glibc_adaptive_malloc(monkeypatch):
    """dask sets MALLOC_TRIM_THRESHOLD_ in new workers; ours must start without it."""
    import dask
    import distributed  # noqa: F401  (loads dask's distributed.* settings)

    from nowcast.preprocess.parallel import Runner

    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with Runner(1) as runner:
        assert list(runner.map_unordered(_malloc_trim_setting, [0])) == [None]
