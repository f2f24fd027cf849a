"""Readers: CF-netCDF and ODIM_H5 files → Frame in dBZ, checked against the files' raw values
decoded independently (xarray / h5py) and the Z–R formula written out here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from nowcast.config.input import InputConfig
from nowcast.config.zr import ZRConfig
from nowcast.errors import UserError
from nowcast.io import BadInputFile, expand_inputs, read_frame, read_frames, sniff_format
from nowcast.io.frame import no_pixels

ZR = ZRConfig()


def _zr_dbz(rate_mmh, a=200.0, b=1.6):
    """Z = a·R^b in dBZ, written out independently of nowcast.units."""
    return 10.0 * np.log10(a * np.asarray(rate_mmh, dtype=np.float64) ** b)


# --------------------------------------------------------------------------- real folders


def test_bom_accumulation_to_dbz(radar_dir):
    path = radar_dir / "bom-melbourne_20180616_6min" / "2_20180616_120000.prcp-cscn.nc"
    frame = read_frame(path, InputConfig(), ZR, interval_minutes=6)
    with xr.open_dataset(path) as ds:
        mm = ds["precipitation"].values  # kg m-2 = mm in the 6 minutes before valid_time
        assert frame.time == np.datetime64(ds["valid_time"].values, "s")
    assert frame.time == np.datetime64("2018-06-16T12:00:00")
    assert frame.quantity == "accumulation" and frame.units == "kg m-2"
    assert frame.shape == (512, 512)
    # 6-minute accumulation → mean rate over the 6 minutes (× 60/6), then Z–R
    wet = mm > 0
    np.testing.assert_allclose(frame.dbz[wet], _zr_dbz(mm[wet] * 10.0), atol=1e-4)
    assert np.all(np.isneginf(frame.dbz[mm == 0]))  # rate 0 → no echo
    assert frame.dbz[198, 231] == pytest.approx(_zr_dbz(1.95 * 10.0), abs=1e-4)
    # coordinates in km in the file → metres; pixel centres, 0.5 km apart, north up
    assert frame.x[0] == -128000.0 and frame.x[1] - frame.x[0] == 500.0
    assert frame.y[0] == 128000.0 and frame.y[1] - frame.y[0] == -500.0
    assert frame.grid_mapping["grid_mapping_name"] == "albers_conical_equal_area"


def test_fmi_reflectivity_with_time_dimension(radar_dir):
    path = radar_dir / "fmi_20160928_5min" / "fmi_201609281500.nc"
    frame = read_frame(path, InputConfig(), ZR, interval_minutes=5)
    with xr.open_dataset(path) as ds:
        ref = ds["reflectivity"].values[0]
    assert frame.time == np.datetime64("2016-09-28T15:00:00")
    assert frame.quantity == "reflectivity" and frame.shape == (1226, 760)
    np.testing.assert_array_equal(np.isnan(frame.dbz), np.isnan(ref))
    np.testing.assert_array_equal(frame.dbz[~np.isnan(ref)], ref[~np.isnan(ref)])
    assert "proj4_params" in frame.grid_mapping


def test_mch_rain_rate_scalar_time(radar_dir):
    path = radar_dir / "mch_20150515_5min" / "mch_201505151700.nc"
    zr = ZRConfig(a=316.0, b=1.5)
    frame = read_frame(path, InputConfig(), zr, interval_minutes=5)
    with xr.open_dataset(path) as ds:
        rate = ds["precipitation_rate"].values
    assert frame.time == np.datetime64("2015-05-15T17:00:00")
    assert frame.quantity == "rate"
    wet = rate > 0
    np.testing.assert_allclose(frame.dbz[wet], _zr_dbz(rate[wet], 316.0, 1.5), atol=1e-4)
    np.testing.assert_array_equal(np.isnan(frame.dbz), np.isnan(rate))  # outside coverage
    assert np.all(np.isneginf(frame.dbz[rate == 0]))


def test_rmi_odim_rate(radar_dir):
    path = radar_dir / "rmi_20210704_5min_odim" / "20210704170000.rad.best.comp.rate.qpe.hdf"
    frame = read_frame(path, InputConfig(), ZR, interval_minutes=5)
    with h5py.File(path) as f:
        raw = f["dataset1/data1/data"][...]
    assert frame.time == np.datetime64("2021-07-04T17:00:00")
    assert frame.format == "odim_h5" and frame.variable == "RATE"
    wet = raw > 0
    np.testing.assert_allclose(frame.dbz[wet], _zr_dbz(raw[wet]), atol=1e-4)
    np.testing.assert_array_equal(np.isnan(frame.dbz), np.isnan(raw))
    # UL corner (300 km, 1000 km) of the upper-left pixel, 1 km pixels → centres
    assert frame.x[0] == 300500.0 and frame.x[-1] == 999500.0
    assert frame.y[0] == 999500.0 and frame.y[-1] == 300500.0
    assert frame.grid_mapping["proj4_params"].startswith("+proj=lcc")


# --------------------------------------------------------------------------- CF layouts


def _cf_file(
    path,
    values,
    *,
    dims=("y", "x"),
    units="dBZ",
    standard_name="equivalent_reflectivity_factor",
    name="field",
    time_units="minutes since 2024-01-01 00:00:00",
    times=(0.0,),
    coord_units="m",
    bounds=None,
):
    """A small CF file: ``values`` with dimensions ``dims`` (any of time/y/x)."""
    values = np.asarray(values, dtype=np.float32)
    with netCDF4.Dataset(path, "w") as nc:
        sizes = dict(zip(dims, values.shape))
        ny, nx = sizes["y"], sizes["x"]
        for d in dims:
            nc.createDimension(d, sizes[d])
        if "time" not in dims:
            nc.createDimension("time", len(times))
        t = nc.createVariable("time", "f8", ("time",))
        t.units = time_units
        t[:] = times
        if bounds is not None:
            nc.createDimension("nv", 2)
            b = nc.createVariable("time_bnds", "f8", ("time", "nv"))
            b[:] = np.asarray(bounds, dtype=float).reshape(len(times), 2)
            t.bounds = "time_bnds"
        x = nc.createVariable("x", "f8", ("x",))
        x.standard_name, x.units = "projection_x_coordinate", coord_units
        x[:] = np.arange(nx) * 2.0 + 1.0
        y = nc.createVariable("y", "f8", ("y",))
        y.standard_name, y.units = "projection_y_coordinate", coord_units
        y[:] = 100.0 - np.arange(ny) * 2.0
        crs = nc.createVariable("crs", "i4")
        crs.grid_mapping_name = "transverse_mercator"
        v = nc.createVariable(name, "f4", dims, fill_value=np.float32(-999.0))
        if standard_name:
            v.standard_name = standard_name
        if units is not None:
            v.units = units
        v.grid_mapping = "crs"
        v[:] = np.where(np.isnan(values), -999.0, values)
    return path


def test_cf_time_series_file_gives_one_frame_per_step(tmp_path):
    data = np.stack([np.full((4, 6), 10.0 * k) for k in range(3)])
    data[1, 0, 0] = np.nan
    path = _cf_file(tmp_path / "s.nc", data, dims=("time", "y", "x"), times=(0, 6, 12))
    frames = read_frames(path, InputConfig(), ZR)
    assert [str(f.time) for f in frames] == [
        "2024-01-01T00:00:00",
        "2024-01-01T00:06:00",
        "2024-01-01T00:12:00",
    ]
    assert frames[2].dbz[0, 0] == 20.0 and np.isnan(frames[1].dbz[0, 0])  # fill value → NaN
    with pytest.raises(BadInputFile, match="expected one radar frame, the file holds 3"):
        read_frame(path, InputConfig(), ZR)


def test_cf_x_y_order_and_km_coordinates(tmp_path):
    field = np.arange(24, dtype=np.float32).reshape(4, 6)  # (y, x)
    path = _cf_file(tmp_path / "t.nc", field.T, dims=("x", "y"), coord_units="km")
    frame = read_frame(path, InputConfig(), ZR)
    np.testing.assert_array_equal(frame.dbz, field)  # transposed back to (y, x)
    np.testing.assert_array_equal(frame.x, (np.arange(6) * 2.0 + 1.0) * 1000.0)
    assert frame.grid_mapping == {"grid_mapping_name": "transverse_mercator"}


def test_cf_rate_units_and_accumulation_period(tmp_path):
    rate = np.array([[0.0, 1.0], [10.0, 100.0]])
    p = _cf_file(
        tmp_path / "r.nc", rate / 3600.0, units="kg m-2 s-1", standard_name="rainfall_rate"
    )
    np.testing.assert_allclose(
        read_frame(p, InputConfig(), ZR).dbz[0, 1:], _zr_dbz([1.0]), atol=1e-3
    )
    # 5 mm in a 30-minute accumulation (time bounds) = 10 mm/h, whatever interval is passed
    acc = np.full((2, 2), 5.0)
    p = _cf_file(
        tmp_path / "a.nc",
        acc,
        units="mm",
        standard_name="precipitation_amount",
        times=(30,),
        bounds=(0, 30),
    )
    frame = read_frame(p, InputConfig(), ZR, interval_minutes=6)
    np.testing.assert_allclose(frame.dbz, _zr_dbz(np.full((2, 2), 10.0)), atol=1e-4)
    # no bounds: the caller's interval (the archive's frame interval)
    p = _cf_file(tmp_path / "b.nc", acc, units="mm", standard_name="precipitation_amount")
    frame = read_frame(p, InputConfig(), ZR, interval_minutes=6)
    np.testing.assert_allclose(frame.dbz, _zr_dbz(np.full((2, 2), 50.0)), atol=1e-4)


def test_input_variable_picks_the_field(tmp_path):
    path = tmp_path / "v.nc"
    _cf_file(path, np.full((3, 3), 7.0), name="dbzh", standard_name=None, units="dBZ")
    with pytest.raises(BadInputFile, match="no recognisable radar field"):
        read_frame(path, InputConfig(), ZR)
    frame = read_frame(path, InputConfig(variable="dbzh"), ZR)  # quantity from its units
    assert frame.variable == "dbzh" and np.all(frame.dbz == 7.0)
    with pytest.raises(BadInputFile, match="no variable 'rain'"):
        read_frame(path, InputConfig(variable="rain"), ZR)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": "furlongs"}, "unknown units 'furlongs' for reflectivity"),
        ({"units": None}, "no units attribute"),
        ({"standard_name": "air_temperature", "units": "K"}, "no recognisable radar field"),
        ({"time_units": "minutes since the beginning"}, "cannot parse time 'time'"),
        ({"time_units": "fortnights"}, "cannot parse time"),
    ],
)
def test_cf_bad_files_name_the_file(tmp_path, kwargs, message):
    path = _cf_file(tmp_path / "bad.nc", np.zeros((3, 3)), **kwargs)
    with pytest.raises(BadInputFile, match=message) as info:
        read_frame(path, InputConfig(), ZR)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_corrupt_and_foreign_files(tmp_path):
    good = _cf_file(tmp_path / "good.nc", np.zeros((3, 3)))
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:600])
    for path, message in (
        (truncated, "cannot read"),
        (tmp_path / "empty.nc", "the file is empty"),
        (tmp_path / "notes.nc", "not a netCDF or HDF5"),
    ):
        if not path.exists():
            path.write_bytes(b"" if "empty" in path.name else b"just some text\n")
        with pytest.raises(BadInputFile, match=message):
            read_frame(path, InputConfig(), ZR)
    assert sniff_format(good) == "hdf5"


# --------------------------------------------------------------------------- ODIM


def _odim_file(
    path,
    raw,
    *,
    quantity="DBZH",
    gain=0.5,
    offset=-32.0,
    nodata=255,
    undetect=0,
    date="20240102",
    time="030600",
    where=True,
    acc=None,
):
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_3")
        w = f.create_group("what")
        w.attrs["date"], w.attrs["time"] = np.bytes_(date), np.bytes_(time)
        if where:
            g = f.create_group("where")
            g.attrs["projdef"] = np.bytes_("+proj=stere +lat_0=90 +lon_0=10")
            g.attrs.update({"UL_x": -1000.0, "UL_y": 5000.0, "xscale": 500.0, "yscale": 500.0})
        ds = f.create_group("dataset1")
        dw = ds.create_group("what")
        # gain/offset at dataset level: inherited by data1
        dw.attrs.update(
            {"gain": gain, "offset": offset, "nodata": float(nodata), "undetect": float(undetect)}
        )
        if acc is not None:
            dw.attrs.update(
                {
                    "startdate": np.bytes_(acc[0][:8]),
                    "starttime": np.bytes_(acc[0][8:]),
                    "enddate": np.bytes_(acc[1][:8]),
                    "endtime": np.bytes_(acc[1][8:]),
                }
            )
        d1 = ds.create_group("data1")
        d1.create_group("what").attrs["quantity"] = np.bytes_(quantity)
        d1.create_dataset("data", data=np.asarray(raw, dtype=np.uint8))
    return path


def test_odim_decoding(tmp_path):
    raw = np.array([[0, 255, 84], [100, 164, 1]])
    frame = read_frame(_odim_file(tmp_path / "a.h5", raw), InputConfig(), ZR)
    assert frame.time == np.datetime64("2024-01-02T03:06:00")
    assert np.isneginf(frame.dbz[0, 0])  # undetect → no echo
    assert np.isnan(frame.dbz[0, 1])  # nodata → outside coverage
    np.testing.assert_allclose(frame.dbz[0, 2], -32.0 + 0.5 * 84)
    np.testing.assert_allclose(frame.dbz[1], -32.0 + 0.5 * np.array([100, 164, 1]))
    np.testing.assert_array_equal(frame.x, [-750.0, -250.0, 250.0])
    np.testing.assert_array_equal(frame.y, [4750.0, 4250.0])
    assert frame.grid_mapping == {"proj4_params": "+proj=stere +lat_0=90 +lon_0=10"}


def test_odim_accumulation_uses_its_period(tmp_path):
    raw = np.full((2, 2), 10)  # 10 × 0.1 mm = 1 mm in 15 minutes = 4 mm/h
    path = _odim_file(
        tmp_path / "acc.h5",
        raw,
        quantity="ACRR",
        gain=0.1,
        offset=0.0,
        acc=("20240102025100", "20240102030600"),
    )
    np.testing.assert_allclose(
        read_frame(path, InputConfig(), ZR, 5).dbz, _zr_dbz(np.full((2, 2), 4.0)), atol=1e-4
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"quantity": "VRAD"},
            r"no recognisable radar field: no ODIM quantity .*\(quantities in the file: VRAD\)",
        ),
        ({"date": "2024-01-02"}, "cannot parse time"),
        ({"where": False}, "no projected grid"),
    ],
)
def test_odim_bad_files(tmp_path, kwargs, message):
    path = _odim_file(tmp_path / "b.h5", np.zeros((2, 2)), **kwargs)
    with pytest.raises(BadInputFile, match=message):
        read_frame(path, InputConfig(), ZR)


def test_odim_unknown_quantity_named_by_input_variable(tmp_path):
    path = _odim_file(tmp_path / "v.h5", np.zeros((2, 2)), quantity="VRAD")
    with pytest.raises(BadInputFile, match="ODIM quantity 'VRAD': unknown units"):
        read_frame(path, InputConfig(variable="VRAD"), ZR)


# --------------------------------------------------------------------------- inputs


def test_expand_inputs(tmp_path):
    (tmp_path / "a" / "2024" / "01").mkdir(parents=True)
    files = [
        tmp_path / "a" / "2024" / "01" / n for n in ("x_1.nc", "x_2.h5", ".hidden.nc", "README.md")
    ]
    for f in files:
        f.write_text("x")
    (tmp_path / "b.hdf").write_text("x")
    got = expand_inputs([tmp_path / "a"])
    assert got == files[:2]  # recursive, radar suffixes only, no hidden files
    assert expand_inputs([tmp_path / "a"], pattern="*.h5") == [files[1]]
    assert expand_inputs([str(tmp_path / "*.hdf"), tmp_path / "b.hdf"]) == [tmp_path / "b.hdf"]
    with pytest.raises(UserError, match="no such file or directory"):
        expand_inputs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty input"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(UserError, match="empty input"):
        expand_inputs([])


def test_naive_utc_times():
    from nowcast.io.netcdf import _naive

    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert _naive(aware) == dt.datetime(2024, 1, 1, 10)


# --------------------------------------------------------------------------- windowed reads


def _window(rows, cols):
    """A reader window that also records the grid shape it was asked about."""
    asked = []

    def window(shape):
        asked.append(tuple(shape))
        return rows, cols

    return window, asked


@pytest.mark.parametrize("dims", [("y", "x"), ("x", "y"), ("time", "y", "x")])
def test_cf_window_reads_part_of_the_grid(tmp_path, dims):
    field = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)  # (y, x)
    field[3, 4] = np.nan
    values = {("y", "x"): field, ("x", "y"): field.T, ("time", "y", "x"): field[None]}[dims]
    path = _cf_file(tmp_path / "w.nc", values, dims=dims)
    whole = read_frame(path, InputConfig(), ZR)
    window, asked = _window(slice(2, 6), slice(1, 8))
    part = read_frame(path, InputConfig(), ZR, window=window)
    assert asked == [(7, 9)]  # the window is chosen on the (y, x) grid shape
    assert part.origin == (2, 1) and whole.origin == (0, 0)
    assert part.shape == whole.shape == (7, 9)  # the grid, not the part read
    assert part.grid_key() == whole.grid_key()
    np.testing.assert_array_equal(part.dbz, whole.dbz[2:6, 1:8])
    np.testing.assert_array_equal(part.x, whole.x)


def test_odim_window_reads_part_of_the_grid(tmp_path):
    raw = np.arange(30).reshape(5, 6) % 256
    path = _odim_file(tmp_path / "w.h5", raw)
    whole = read_frame(path, InputConfig(), ZR)
    window, asked = _window(slice(1, 4), slice(0, 5))
    part = read_frame(path, InputConfig(), ZR, window=window)
    assert asked == [(5, 6)] and part.origin == (1, 0)
    assert part.shape == whole.shape and part.grid_key() == whole.grid_key()
    np.testing.assert_array_equal(part.dbz, whole.dbz[1:4, 0:5])


def test_window_on_real_folders(radar_dir):
    """Each real product read through a window equals the same part of the whole read."""
    window, _ = _window(slice(100, 450), slice(50, 400))
    for folder, interval in [
        ("bom-melbourne_20180616_6min", 6),
        ("fmi_20160928_5min", 5),
        ("mch_20150515_5min", 5),
        ("rmi_20210704_5min_odim", 5),
    ]:
        path = sorted((radar_dir / folder).iterdir())[0]
        whole = read_frame(path, InputConfig(), ZR, interval)
        part = read_frame(path, InputConfig(), ZR, interval, window=window)
        np.testing.assert_array_equal(part.dbz, whole.dbz[100:450, 50:400], err_msg=folder)


def _same_header(path: Path, interval: float | None = None) -> None:
    whole = read_frame(path, InputConfig(), ZR, interval)
    head = read_frame(path, InputConfig(), ZR, interval, window=no_pixels)
    assert head.dbz.shape == (0, 0), path
    assert (head.time, head.shape, head.grid_key()) == (
        whole.time,
        whole.shape,
        whole.grid_key(),
    ), path


def test_no_pixels_reads_the_header_only(tmp_path):
    """``no_pixels`` (what predict scans folders with): the same time, grid and metadata as
    the whole read, and an empty field — CF 2-D and 3-D, ODIM."""
    _same_header(_cf_file(tmp_path / "a.nc", np.ones((7, 9), np.float32)))
    _same_header(
        _cf_file(tmp_path / "b.nc", np.ones((1, 7, 9), np.float32), dims=("time", "y", "x"))
    )
    _same_header(_odim_file(tmp_path / "c.h5", np.arange(30).reshape(5, 6) % 256))


def test_no_pixels_on_real_folders(radar_dir):
    for folder, interval in [
        ("bom-melbourne_20180616_6min", 6),
        ("fmi_20160928_5min", 5),
        ("mch_20150515_5min", 5),
        ("rmi_20210704_5min_odim", 5),
    ]:
        _same_header(sorted((radar_dir / folder).iterdir())[-1], interval)
