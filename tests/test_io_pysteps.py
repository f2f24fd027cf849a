"""Radar formats read through pysteps' importers (``input.format: pysteps``): native files
give the same stores as their CF-netCDF conversions, and every failure is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from cli_support import assert_one_line_error, checksums
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.config.input import InputConfig
from nowcast.config.zr import ZRConfig
from nowcast.io import read_frame
from nowcast.io.pysteps_reader import _frame
from nowcast.store import FrameReader, read_meta
from nowcast.units import rate_to_dbz

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "data"
runner = CliRunner()
N_FILES = 4  # a handful of consecutive frames keeps each preprocess run to seconds
QUICK = ["--set", "preprocess.block_frames=2", "--set", "preprocess.clutter_clusters=4"]

# product: (native folder, native config, CF folder, CF config)
PAIRS = {
    "fmi": ("fmi_20160928_5min_pgm", "fmi_pgm.yaml", "fmi_20160928_5min", "fmi.yaml"),
    "mch": ("mch_20150515_5min_gif", "mch_gif.yaml", "mch_20150515_5min", "mch.yaml"),
}


def _first_files(folder: Path, n: int = N_FILES) -> list[str]:
    return [str(p) for p in sorted(folder.iterdir()) if not p.name.startswith(".")][:n]


def _preprocess(config: Path, files: list[str], store: Path, *extra: str):
    inputs = [a for f in files for a in ("-i", f)]
    return runner.invoke(
        app, ["preprocess", "-q", "-c", str(config), *inputs, "-o", str(store), *QUICK, *extra]
    )


@pytest.mark.parametrize("product", list(PAIRS))
def test_native_files_and_their_cf_conversion_give_identical_stores(radar_dir, tmp_path, product):
    native_dir, native_cfg, cf_dir, cf_cfg = PAIRS[product]
    stores = {}
    for kind, folder, cfg in (("native", native_dir, native_cfg), ("cf", cf_dir, cf_cfg)):
        stores[kind] = tmp_path / f"{kind}.nc"
        result = _preprocess(CONFIGS / cfg, _first_files(radar_dir / folder), stores[kind])
        assert result.exit_code == 0, (result.output, result.stderr)
    a, b = read_meta(stores["native"]), read_meta(stores["cf"])
    assert a.valid.sum() == b.valid.sum() == N_FILES
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_array_equal(a.block, b.block)
    np.testing.assert_array_equal(a.split, b.split)
    np.testing.assert_array_equal(a.coverage, b.coverage)
    np.testing.assert_array_equal(a.noise_mask, b.noise_mask)
    # pixel centres from the importer's corners agree with the converted file's to a mm
    np.testing.assert_allclose(a.x, b.x, rtol=0, atol=1e-3)
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-3)
    assert a.grid_mapping.keys() == b.grid_mapping.keys()
    for key, value in a.grid_mapping.items():  # CF attributes: strings, numbers or arrays
        np.testing.assert_array_equal(value, b.grid_mapping[key], err_msg=key)
    valid = np.flatnonzero(a.valid)
    frames_a = FrameReader(stores["native"]).read(int(valid[0]), int(valid[-1]) + 1)
    frames_b = FrameReader(stores["cf"]).read(int(valid[0]), int(valid[-1]) + 1)
    assert frames_a.any()  # a rainy event: the comparison is not of empty frames
    np.testing.assert_array_equal(frames_a, frames_b)
    assert a.preprocess["input"]["format"] == f"pysteps:{PAIRS[product][1][:-5]}"
    assert b.preprocess["input"]["format"] == "cf-netcdf"


def test_opera_composite_preprocesses_through_the_pysteps_importer(radar_dir, tmp_path):
    store = tmp_path / "opera.nc"
    files = _first_files(radar_dir / "opera_20180824_15min_odim", 3)
    result = _preprocess(CONFIGS / "opera.yaml", files, store)
    assert result.exit_code == 0, (result.output, result.stderr)
    meta = read_meta(store)
    p = meta.preprocess
    assert meta.valid.sum() == 3 and meta.times.size == 1440 // 15
    assert p["grid"]["shape"] == [2200, 1900] and p["input"]["quantity"] == "rate"
    assert "+proj=laea" in meta.grid_mapping["proj4_params"]
    # the 2 km grid: 330 input pixels are 100 cells 6.6 km apart, y from north to south
    np.testing.assert_allclose(np.diff(meta.x), 6600.0, rtol=1e-6)
    np.testing.assert_allclose(np.diff(meta.y), -6600.0, rtol=1e-6)


def test_mrms_lat_lon_grid_preprocesses_in_degrees(radar_dir, tmp_path):
    """MRMS GRIB2 (0.01° longitude/latitude) end to end: the store keeps degrees, a
    latitude_longitude grid mapping and 2-D lat/lon equal to its x/y."""
    store = tmp_path / "mrms.nc"
    files = _first_files(radar_dir / "mrms_20190610_2min_grib2", 2)
    before = checksums(*files)
    result = _preprocess(CONFIGS / "mrms.yaml", files, store)
    assert result.exit_code == 0, (result.output, result.stderr)
    meta = read_meta(store)
    assert meta.valid.sum() == 2 and meta.grid_mapping["grid_mapping_name"] == "latitude_longitude"
    # 330 pixels of 0.01° resized to 100 cells: 0.033° a cell, rows from north to south
    np.testing.assert_allclose(np.diff(meta.x), 0.033, rtol=1e-6)
    np.testing.assert_allclose(np.diff(meta.y), -0.033, rtol=1e-6)
    assert -130 < meta.x[0] < meta.x[-1] < -60 and 20 < meta.y[-1] < meta.y[0] < 55
    with netCDF4.Dataset(store) as nc:
        assert nc["x"].units == "degrees_east" and nc["y"].units == "degrees_north"
        np.testing.assert_allclose(nc["lon"][0, :], meta.x)
        np.testing.assert_allclose(nc["lat"][:, 0], meta.y)
    assert checksums(*files) == before


@pytest.mark.parametrize(
    ("folder", "count", "ext", "importer"),
    [
        ("mrms_20190610_2min_grib2", 36, ".grib2", "mrms_grib"),
        ("fmi_20160928_5min_pgm", 40, ".pgm.gz", "fmi_pgm"),
        ("mch_20150515_5min_gif", 40, ".gif", "mch_gif"),
    ],
)
def test_folder_of_other_formats_says_which_importer_reads_it(
    radar_dir, tmp_path, folder, count, ext, importer
):
    store = tmp_path / "store.nc"
    store.write_bytes(b"an older store")
    before = checksums(radar_dir / folder, store)
    result = runner.invoke(
        app, ["preprocess", "-q", "-i", str(radar_dir / folder), "-o", str(store)]
    )
    assert_one_line_error(
        result,
        "empty input: no radar files found",
        f"{count} files in other formats are there ({count} {ext})",
        f"read {ext} with input.format: pysteps, input.importer: {importer}, "
        f"input.pattern: '*{ext}'",
    )
    assert checksums(radar_dir / folder, store) == before


def test_folder_of_unknown_files_lists_what_pysteps_reads(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("not radar")
    (folder / "b.txt").write_text("not radar")
    result = runner.invoke(
        app, ["preprocess", "-q", "-i", str(folder), "-o", str(tmp_path / "s.nc")]
    )
    assert_one_line_error(
        result, "2 files in other formats are there (2 .txt)", ".grib2 (mrms_grib)"
    )
    assert not (tmp_path / "s.nc").exists()


def test_gif_given_to_the_default_reader_names_the_importer(radar_dir, tmp_path):
    gif = _first_files(radar_dir / "mch_20150515_5min_gif", 1)[0]
    result = runner.invoke(app, ["preprocess", "-q", "-i", gif, "-o", str(tmp_path / "s.nc")])
    assert_one_line_error(
        result, gif, "not a netCDF or HDF5", "input.format: pysteps, input.importer: mch_gif"
    )
    assert not (tmp_path / "s.nc").exists()


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        (["input.importer=bom_nc"], ["input.importer: unknown pysteps importer 'bom_nc'",
                                     "valid: bom_rf3", "fmi_pgm", "mch_gif", "mrms_grib",
                                     "opera_hdf5", "odim_hdf5", "knmi_hdf5", "dwd_hdf5",
                                     "saf_crri", "mch_hdf5"]),
        (["input.importer=null"], ["input.importer: required with input.format: pysteps"]),
        (["input.time_format=null"], ["input.time_format: required"]),
        (["input.time_format=%Y%q"], ["input.time_format: '%Y%q': %q is not supported"]),
        (["input.importer=mch_gif", "input.importer_kwargs={}"],
         ["input.importer_kwargs: the pysteps importer 'mch_gif' needs product, unit, accutime"]),
    ],
)  # fmt: skip
def test_importer_config_problems_are_one_line(radar_dir, tmp_path, sets, fragments):
    files = _first_files(radar_dir / "fmi_20160928_5min_pgm", 2)
    store = tmp_path / "store.nc"
    store.write_bytes(b"an older store")
    before = checksums(*files, store)
    extra = [a for s in sets for a in ("--set", s)]
    result = _preprocess(CONFIGS / "fmi_pgm.yaml", files, store, *extra)
    assert_one_line_error(result, *fragments)
    assert checksums(*files, store) == before


def test_file_name_without_the_time_is_one_line_naming_it(radar_dir, tmp_path):
    src = _first_files(radar_dir / "fmi_20160928_5min_pgm", 1)[0]
    renamed = tmp_path / "latest_fmi.pgm.gz"
    renamed.write_bytes(Path(src).read_bytes())
    result = _preprocess(CONFIGS / "fmi_pgm.yaml", [str(renamed)], tmp_path / "s.nc")
    assert_one_line_error(result, str(renamed), "cannot parse time", "'%Y%m%d%H%M'")
    assert not (tmp_path / "s.nc").exists()


def test_corrupt_native_file_is_one_line_and_skip_bad_counts_it(radar_dir, tmp_path):
    files = _first_files(radar_dir / "fmi_20160928_5min_pgm", 3)
    broken = tmp_path / "201609281500_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz"
    broken.write_bytes(Path(files[2]).read_bytes()[:300])  # a truncated gzip stream
    inputs = [*files[:2], str(broken)]
    before = checksums(*inputs)
    result = _preprocess(CONFIGS / "fmi_pgm.yaml", inputs, tmp_path / "s.nc")
    assert_one_line_error(result, str(broken), "cannot read with the pysteps importer 'fmi_pgm'")
    assert not (tmp_path / "s.nc").exists()
    result = _preprocess(CONFIGS / "fmi_pgm.yaml", inputs, tmp_path / "s.nc", "--skip-bad")
    assert result.exit_code == 0, (result.output, result.stderr)
    assert read_meta(tmp_path / "s.nc").valid.sum() == 2
    assert checksums(*inputs) == before


def test_missing_optional_library_names_the_package(radar_dir, tmp_path):
    """pygrib made unimportable in a real process (``sys.modules['pygrib'] = None`` makes
    ``import pygrib`` raise ImportError, as when it is not installed)."""
    grib = _first_files(radar_dir / "mrms_20190610_2min_grib2", 1)[0]
    store = tmp_path / "s.nc"
    code = (
        "import sys, runpy; sys.modules['pygrib'] = None; "
        "sys.argv = ['nowcast', *sys.argv[1:]]; runpy.run_module('nowcast', run_name='__main__')"
    )
    args = ["preprocess", "-q", "-c", str(CONFIGS / "mrms.yaml"), "-i", grib, "-o", str(store)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert_one_line_error(
        result, "input.importer 'mrms_grib' needs the Python package pygrib", "pip install pygrib"
    )
    assert not store.exists()


def test_importer_metadata_becomes_the_frame_as_documented(tmp_path):
    """A rate in dB on a km grid whose row 0 is the southern edge (yorigin lower)."""
    db = np.array([[10.0, -15.0, np.nan], [0.0, 3.0, 20.0]], dtype=np.float32)
    meta = {
        "unit": "mm/h", "transform": "dB", "zerovalue": -15.0, "projection": "+proj=stere",
        "x1": 100.0, "x2": 103.0, "y1": 50.0, "y2": 52.0, "xpixelsize": 1.0,
        "ypixelsize": 1.0, "cartesian_unit": "km", "yorigin": "lower", "accutime": 5.0,
    }  # fmt: skip
    t = np.datetime64("2024-05-01T00:00:00", "s")
    fr = _frame(tmp_path / "f", "test", db, meta, 200.0, 1.6, 5, None, t)
    np.testing.assert_allclose(fr.x, [100500.0, 101500.0, 102500.0])
    np.testing.assert_allclose(fr.y, [50500.0, 51500.0])  # ascending: row 0 is the south
    rate = 10.0 ** (db.astype(np.float64) / 10.0)
    rate[0, 1] = 0.0  # the zerovalue is no rain
    np.testing.assert_allclose(fr.dbz, rate_to_dbz(rate, 200.0, 1.6), rtol=1e-6)
    assert fr.dbz[0, 1] == -np.inf and np.isnan(fr.dbz[0, 2])
    assert fr.grid_mapping == {"proj4_params": "+proj=stere"} and fr.quantity == "rate"


def test_predict_reads_native_files_like_preprocessing(radar_dir):
    """``read_frame`` (what predict uses) gives the native file's frame equal to the CF one."""
    native = _first_files(radar_dir / "mch_20150515_5min_gif", 1)[0]
    cf = _first_files(radar_dir / "mch_20150515_5min", 1)[0]
    zr = ZRConfig(a=316.0, b=1.5)
    cfg = InputConfig(
        format="pysteps",
        importer="mch_gif",
        importer_kwargs={"product": "AQC", "unit": "mm/h", "accutime": 5.0},
        time_format="AQC%y%j%H%M",
    )
    a, b = read_frame(native, cfg, zr, 5), read_frame(cf, InputConfig(), zr, 5)
    assert a.time == b.time and a.grid_key() == b.grid_key()
    np.testing.assert_array_equal(a.dbz, b.dbz)
