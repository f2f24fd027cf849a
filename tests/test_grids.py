"""Grids through pyproj: ODIM composites whose /where gives only projdef and corner
coordinates (OPERA), latitude/longitude CF grids kept in degrees, and the CF grid mapping
(grid_mapping_name, crs_wkt) with 2-D lat/lon in the store and in the nowcast file, which
passes the IOOS compliance checker (CF-1.8) on a real folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pyproj
import pytest
from cli_support import SMALL_PREPROCESS, assert_one_line_error, checksums
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.config.input import InputConfig
from nowcast.config.zr import ZRConfig
from nowcast.io import read_frame
from nowcast.io.crs import cf_grid_mapping, same_crs
from nowcast.store import read_meta

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "convlstm_radar5min.pt"
runner = CliRunner()
ZR = ZRConfig()
LAEA = "+proj=laea +lat_0=55.0 +lon_0=10.0 +x_0=1950000.0 +y_0=-2100000.0 +units=m +ellps=WGS84"
SMALL = [*SMALL_PREPROCESS, "--set", "preprocess.interval_minutes=5"]
N = 48


def _lonlat(x: float, y: float) -> tuple[float, float]:
    crs = pyproj.CRS.from_proj4(LAEA)
    lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _odim_corners(path, minute=0, *, where=None, projdef=LAEA, n=N, seed=0):
    """An ODIM_H5 RATE composite (n × n, 2 km) on the OPERA projection whose /where holds
    projdef and the LL/UR/UL/LR corners (outer pixel corners, degrees) but no UL_x/UL_y."""
    x0, y1 = 1_000_000.0, -1_000_000.0  # upper-left corner [m]
    step = 2000.0
    corners = {
        "LL": _lonlat(x0, y1 - n * step),
        "UR": _lonlat(x0 + n * step, y1),
        "UL": _lonlat(x0, y1),
        "LR": _lonlat(x0 + n * step, y1 - n * step),
    }
    attrs = {"projdef": np.bytes_(projdef), "xsize": n, "ysize": n}
    for name, (lon, lat) in corners.items():
        attrs[f"{name}_lon"], attrs[f"{name}_lat"] = lon, lat
    attrs.update(where or {})
    attrs = {k: v for k, v in attrs.items() if v is not None}
    rain = np.random.default_rng(seed + minute).gamma(0.5, 2.0, (n, n))
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_2")
        w = f.create_group("what")
        w.attrs["date"], w.attrs["time"] = np.bytes_("20180824"), np.bytes_(f"18{minute:02d}00")
        f.create_group("where").attrs.update(attrs)
        ds = f.create_group("dataset1")
        ds.create_group("what").attrs.update(
            {"gain": 1.0, "offset": 0.0, "nodata": -9999000.0, "undetect": -8888000.0}
        )
        d1 = ds.create_group("data1")
        d1.create_group("what").attrs["quantity"] = np.bytes_("RATE")
        d1.create_dataset("data", data=rain)
    return Path(path), (x0, y1, step)


def test_odim_grid_from_projdef_and_corners(tmp_path):
    path, (x0, y1, step) = _odim_corners(tmp_path / "c.h5")
    frame = read_frame(path, InputConfig(), ZR, 5)
    np.testing.assert_allclose(frame.x, x0 + (np.arange(N) + 0.5) * step, atol=0.01)
    np.testing.assert_allclose(frame.y, y1 - (np.arange(N) + 0.5) * step, atol=0.01)
    assert frame.grid_mapping == {"proj4_params": LAEA}
    # xscale/yscale, when given (within 1 % of the corners' spacing), are the pixel sizes
    path, _ = _odim_corners(tmp_path / "s.h5", where={"xscale": 2010.0, "yscale": 1995.0})
    frame = read_frame(path, InputConfig(), ZR, 5)
    np.testing.assert_allclose(np.diff(frame.x), 2010.0)
    np.testing.assert_allclose(np.diff(frame.y), -1995.0)


@pytest.mark.parametrize(
    ("where", "projdef", "fragments"),
    [
        ({"LL_lon": None, "UR_lat": None}, LAEA, ["no projected grid in /where", "LL_lon, UR_lat"]),
        ({}, "", ["no projected grid in /where", "missing: projdef"]),
        ({}, "+proj=nonsense +lat_0=55", ["/where projdef", "not a projection pyproj knows"]),
        ({"xscale": 1000.0}, LAEA, ["/where xscale=1000 disagrees with the corners", "2000"]),
        ({"UR_lon": 0.0, "UR_lat": 40.0}, LAEA, ["/where: the corners LL", "do not span a grid"]),
    ],
    ids=["no-corners", "no-projdef", "bad-projdef", "scale-vs-corners", "crossed-corners"],
)
def test_odim_corner_grid_faults_are_one_line_through_the_cli(tmp_path, where, projdef, fragments):
    folder = tmp_path / "in"
    folder.mkdir()
    for minute in range(3):
        _odim_corners(folder / f"f{minute}.h5", minute * 5)
    bad, _ = _odim_corners(folder / "f1.h5", 5, where=where, projdef=projdef)
    old_store = tmp_path / "store.nc"
    old_store.write_bytes(b"an earlier store")
    before = checksums(folder, old_store)
    result = runner.invoke(
        app,
        ["preprocess", "-q", "--input", str(folder), "--set", f"data.store={old_store}"]
        + ["--set", "input.pattern=*.h5", *SMALL],
    )
    assert_one_line_error(result, str(bad), *fragments)
    assert checksums(folder, old_store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "store.nc"]


def _latlon_file(path, minute, *, lon_units="degrees_east", n=N):
    """A CF file on a 0.01° latitude/longitude grid (1-D latitude/longitude coordinates,
    latitude decreasing, no grid mapping), rain rate in mm h-1."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("latitude", n)
        nc.createDimension("longitude", n)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.standard_name = "minutes since 2019-06-10 00:00:00", "time"
        t[:] = [minute]
        lat = nc.createVariable("latitude", "f8", ("latitude",))
        lat.setncatts({"standard_name": "latitude", "units": "degrees_north"})
        lat[:] = 40.0 - 0.01 * np.arange(n)
        lon = nc.createVariable("longitude", "f8", ("longitude",))
        lon.setncatts({"standard_name": "longitude", "units": lon_units})
        lon[:] = -100.0 + 0.01 * np.arange(n)
        v = nc.createVariable("rate", "f4", ("time", "latitude", "longitude"))
        v.setncatts({"standard_name": "rainfall_rate", "units": "mm h-1"})
        v[:] = np.random.default_rng(minute).gamma(0.5, 2.0, (1, n, n))
    return Path(path)


def test_latlon_grid_is_stored_in_degrees_with_a_latitude_longitude_grid_mapping(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(4):
        _latlon_file(folder / f"m{k}.nc", 5 * k)
    frame = read_frame(folder / "m0.nc", InputConfig(), ZR, 5)
    assert frame.grid_mapping == {"grid_mapping_name": "latitude_longitude"}
    np.testing.assert_allclose(frame.x[:2], [-100.0, -99.99])  # degrees, not "metres"
    store = tmp_path / "store.nc"
    result = runner.invoke(
        app,
        ["preprocess", "-q", "--input", str(folder), "--set", f"data.store={store}", *SMALL],
    )
    assert result.exit_code == 0, result.output
    meta = read_meta(store)
    # crop 40 of 48 pixels from column/row 4, averaged 2×2 into 20 cells (pixels, not metres)
    np.testing.assert_allclose(meta.x, -100.0 + 0.01 * (4 + 0.5 + 2 * np.arange(20)), atol=1e-9)
    np.testing.assert_allclose(meta.y, 40.0 - 0.01 * (4 + 0.5 + 2 * np.arange(20)), atol=1e-9)
    assert meta.grid_mapping["grid_mapping_name"] == "latitude_longitude"
    assert pyproj.CRS.from_wkt(meta.grid_mapping["crs_wkt"]).is_geographic
    with netCDF4.Dataset(store) as nc:
        assert (nc["x"].standard_name, nc["x"].units) == ("longitude", "degrees_east")
        assert (nc["y"].standard_name, nc["y"].units) == ("latitude", "degrees_north")
        assert nc["frames"].coordinates == "lat lon" and nc["frames"].grid_mapping == "crs"
        np.testing.assert_allclose(nc["lon"][:], np.broadcast_to(meta.x, (20, 20)))
        np.testing.assert_allclose(nc["lat"][:], np.broadcast_to(meta.y[:, None], (20, 20)))


def test_latlon_coordinates_in_unknown_units_are_one_line_through_the_cli(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        _latlon_file(folder / f"m{k}.nc", 5 * k, lon_units="degrees_east" if k else "radians")
    before = checksums(folder)
    store = tmp_path / "store.nc"
    result = runner.invoke(
        app,
        ["preprocess", "-q", "--input", str(folder), "--set", f"data.store={store}", *SMALL],
    )
    assert_one_line_error(result, str(folder / "m0.nc"), "coordinate 'longitude'", "radians")
    assert checksums(folder) == before and not store.exists()


def test_the_same_crs_written_two_ways_is_the_same_grid():
    """A checkpoint's grid mapping (as the store wrote it, completed by pyproj) and the
    input file's (a bare PROJ string) describe one CRS: predict applies the training masks."""
    bare = {"proj4_params": LAEA}
    full = cf_grid_mapping(bare)
    assert full["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert full["proj4_params"] == LAEA and "crs_wkt" in full
    assert same_crs(bare, full) and same_crs(
        full, {k: v for k, v in full.items() if k != "crs_wkt"}
    )
    assert not same_crs(bare, {"proj4_params": LAEA.replace("lon_0=10.0", "lon_0=11.0")})
    assert same_crs({}, {}) and not same_crs({}, bare)


def test_opera_composite_preprocesses_with_its_laea_grid(radar_dir, tmp_path):
    """Three frames of the real OPERA composite (2200 × 1900, 2 km LAEA, /where without
    UL_x/UL_y): the grid comes from projdef + corners, and the store says where it is."""
    source = radar_dir / "opera_20180824_15min_odim"
    folder = tmp_path / "in"
    folder.mkdir()
    for f in sorted(source.glob("*.hdf"))[:3]:
        (folder / f.name).symlink_to(f)
    frame = read_frame(folder / sorted(p.name for p in folder.iterdir())[0], InputConfig(), ZR, 15)
    assert frame.shape == (2200, 1900)
    np.testing.assert_allclose(frame.x[[0, -1]], [1000.0, 3_799_000.0], atol=0.5)
    np.testing.assert_allclose(frame.y[[0, -1]], [-1000.0, -4_399_000.0], atol=0.5)
    store = tmp_path / "opera.nc"
    result = runner.invoke(
        app,
        ["preprocess", "-q", "--input", str(folder), "--set", f"data.store={store}"]
        + ["--set", "input.pattern=*.hdf", "--set", "preprocess.interval_minutes=15"],
    )
    assert result.exit_code == 0, result.output
    meta = read_meta(store)
    assert meta.valid.sum() == 3
    assert meta.grid_mapping["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert pyproj.CRS.from_wkt(meta.grid_mapping["crs_wkt"]) == pyproj.CRS.from_proj4(LAEA)
    np.testing.assert_allclose(np.diff(meta.x), 6600.0)  # 330 px × 2 km in 100 cells
    with netCDF4.Dataset(store) as nc:
        lat, lon = nc["lat"][:], nc["lon"][:]
        assert nc["lat"].units == "degrees_north" and nc["lon"].standard_name == "longitude"
    # the centre crop of a grid centred on (55° N, 10° E) lies around there
    assert 50 < lat[50, 50] < 58 and 5 < lon[50, 50] < 14


def _compliance(path: Path, tmp_path: Path) -> dict:
    exe = Path(sys.executable).with_name("compliance-checker")
    if not exe.exists():
        found = shutil.which("compliance-checker")
        if found is None:
            pytest.fail("compliance-checker is not installed (pip install -e '.[dev]')")
        exe = Path(found)
    report = tmp_path / "cf.json"
    subprocess.run(
        [str(exe), "--test=cf:1.8", "-f", "json", "-o", str(report), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(report.read_text())["cf:1.8"]


def test_predict_output_on_a_real_folder_passes_the_cf_compliance_checker(radar_dir, tmp_path):
    """The shipped model on the MeteoSwiss event (Swiss oblique Mercator): the nowcast file
    has a grid mapping with grid_mapping_name and crs_wkt, 2-D lat/lon, and no CF-1.8
    error from the IOOS compliance checker."""
    out = tmp_path / "nowcast.nc"
    result = runner.invoke(
        app,
        ["predict", "-q", "--checkpoint", str(SHIPPED), "--out", str(out)]
        + ["--input", str(radar_dir / "mch_20150515_5min")],
    )
    assert result.exit_code == 0, result.output
    with netCDF4.Dataset(out) as nc:
        crs = nc["crs"]
        assert crs.grid_mapping_name == "oblique_mercator"
        assert pyproj.CRS.from_wkt(crs.crs_wkt) == pyproj.CRS.from_proj4(crs.proj4_params)
        assert nc["reflectivity"].coordinates.split()[-2:] == ["lat", "lon"]
        lat, lon = nc["lat"][:], nc["lon"][:]
        assert lat.shape == lon.shape == nc["reflectivity"].shape[1:]
        j = int(np.argmin(np.abs(nc["y"][:] - 200_000.0)))
        i = int(np.argmin(np.abs(nc["x"][:] - 600_000.0)))
    # the Swiss grid's origin (600 km E, 200 km N) is the old observatory of Bern
    assert abs(lat[j, i] - 46.9524) < 0.03 and abs(lon[j, i] - 7.4396) < 0.05
    report = _compliance(out, tmp_path)
    errors = [m for p in report["high_priorities"] for m in p["msgs"]]
    assert report["high_count"] == 0 and not errors, errors
