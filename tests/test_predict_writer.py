"""The CF-1.8 nowcast file: decoded by xarray, units, times, grid mapping, atomicity, bytes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from nowcast.predict.writer import write_nowcast

REF = np.datetime64("2024-06-30T23:54:00")
MAPPING = {
    "grid_mapping_name": "albers_conical_equal_area",
    "standard_parallel": np.array([-18.0, -36.0]),
    "longitude_of_central_meridian": 144.752,
    "latitude_of_projection_origin": -37.852,
}


def _fields(n=3, h=4, w=5):
    rng = np.random.default_rng(1)
    dbz = rng.uniform(-10, 60, (n, h, w)).astype(np.float32)
    dbz[:, 0, 0] = np.nan
    rate = (10 ** (dbz / 10) / 200) ** (1 / 1.6)
    return dbz, rate


def _write(path, **kw):
    dbz, rate = _fields()
    args = dict(
        reflectivity=dbz,
        rainfall_rate=rate,
        reference_time=REF,
        lead_minutes=np.array([6.0, 12.0, 18.0]),
        x=np.arange(5) * 3300.0 + 1650.0,
        y=np.arange(4)[::-1] * 3300.0 - 1650.0,
        grid_mapping=MAPPING,
        attrs={
            "model": "convlstm",
            "input_files": ["/a/f1.nc", "/a/f2.nc"],
            "checkpoint_sha256": "ab",
        },
    )
    args.update(kw)
    return write_nowcast(path, **args), dbz, rate


def test_opens_in_xarray_with_decoded_times_and_units(tmp_path):
    path, dbz, rate = _write(tmp_path / "n.nc")
    with xr.open_dataset(path) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        # valid times cross midnight and a month boundary: 30 June 23:54 + 6, 12, 18 min
        expected = np.array(["2024-07-01T00:00", "2024-07-01T00:06", "2024-07-01T00:12"], "M8[ns]")
        np.testing.assert_array_equal(ds.time.values, expected)
        assert ds.forecast_reference_time.values == np.datetime64("2024-06-30T23:54", "ns")
        np.testing.assert_array_equal(ds.forecast_period.values, [6, 12, 18])
        assert ds.forecast_period.attrs["units"] == "minutes"
        assert ds.forecast_period.attrs["standard_name"] == "forecast_period"
        assert ds.reflectivity.dims == ("time", "y", "x")
        assert ds.reflectivity.attrs["units"] == "dBZ"
        assert ds.reflectivity.attrs["standard_name"] == "equivalent_reflectivity_factor"
        assert ds.rainfall_rate.attrs["units"] == "mm h-1"
        assert ds.rainfall_rate.attrs["standard_name"] == "rainfall_rate"
        assert ds.x.attrs == {
            "standard_name": "projection_x_coordinate",
            "long_name": "x of the grid-cell centre",
            "units": "m",
            "axis": "X",
        }
        assert ds.y.attrs["units"] == "m"
        np.testing.assert_array_equal(ds.x.values, np.arange(5) * 3300.0 + 1650.0)
        np.testing.assert_array_equal(ds.y.values, np.arange(4)[::-1] * 3300.0 - 1650.0)
        # NaN round-trips through the fill value; the rest is float32-exact
        np.testing.assert_array_equal(ds.reflectivity.values, dbz)
        np.testing.assert_allclose(ds.rainfall_rate.values, rate.astype(np.float32), rtol=0)
        assert np.isnan(ds.reflectivity.values[:, 0, 0]).all()
        # grid mapping copied, attached to both fields
        assert ds.reflectivity.attrs["grid_mapping"] == "crs"
        crs = ds.crs.attrs
        assert crs["grid_mapping_name"] == "albers_conical_equal_area"
        np.testing.assert_array_equal(crs["standard_parallel"], [-18.0, -36.0])
        assert crs["longitude_of_central_meridian"] == 144.752
        assert ds.attrs["model"] == "convlstm"
        assert ds.attrs["input_files"] == '["/a/f1.nc", "/a/f2.nc"]'


def test_same_content_gives_the_same_bytes(tmp_path):
    a, _, _ = _write(tmp_path / "a.nc")
    b, _, _ = _write(tmp_path / "b.nc")
    assert a.read_bytes() == b.read_bytes()


def test_failure_leaves_no_file(tmp_path):
    out = tmp_path / "n.nc"
    with pytest.raises(TypeError):
        _write(out, attrs={"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_shape_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="grid 4×6"):
        _write(tmp_path / "n.nc", x=np.arange(6.0))
    assert list(tmp_path.iterdir()) == []
