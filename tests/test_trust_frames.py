"""Dry, empty and absurd radar frames, and input files the operating system makes awkward
(bad time stamps, names that are not UTF-8, broken links), through the command line.

A dry frame (rain rate 0 or below, reflectivity below the gray scale) is data; only NaN
means "no data". A frame without data in preprocess is left out (valid = 0) with a warning;
a store where no pixel counts is refused by train and evaluate. A frame outside physical
range as a whole, an unreadable time, a broken link or a special file is a bad file: one
line naming it (exit 2, nothing written), or skipped and listed with --skip-bad.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr
from cli_support import SMALL_PREPROCESS, assert_one_line_error, checksums, nowcast_process
from predict_support import SIZE, START, blob, make_checkpoint, write_frames
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.config import load_config
from nowcast.config.input import InputConfig
from nowcast.config.zr import ZRConfig
from nowcast.io import read_frame
from nowcast.store import read_meta
from nowcast.units import dbz_to_gray_float32 as gray_level
from nowcast.units import rate_to_dbz

runner = CliRunner()
SMALL = SMALL_PREPROCESS
N = 64  # preprocess test grid (N × N, 1 km)
RATE = {"units": "mm h-1", "std": "rainfall_rate"}


def _cf(
    path,
    field,
    minutes=0.0,
    *,
    units="dBZ",
    std="equivalent_reflectivity_factor",
    time=None,
    start="2024-05-01 00:00:00",
    xy=None,
):
    """A CF file holding the 2-D ``field`` (NaN written as the fill value) valid ``minutes``
    after ``start`` (or at the raw ``time`` value, in seconds since 1970), on the grid
    ``xy`` = (x, y) [m] (default: 1 km pixels from 0)."""
    field = np.asarray(field, dtype=np.float32)
    ny, nx = field.shape
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("y", ny)
        nc.createDimension("x", nx)
        t = nc.createVariable("time", "f8", ("time",))
        if time is None:
            t.units, t[:] = f"minutes since {start}", [minutes]
        else:
            t.units, t[:] = "seconds since 1970-01-01 00:00:00", [time]
        x = nc.createVariable("x", "f8", ("x",))
        x.standard_name, x.units = "projection_x_coordinate", "m"
        x[:] = np.arange(nx) * 1000.0 if xy is None else xy[0]
        y = nc.createVariable("y", "f8", ("y",))
        y.standard_name, y.units = "projection_y_coordinate", "m"
        y[:] = ny * 1000.0 - np.arange(ny) * 1000.0 if xy is None else xy[1]
        v = nc.createVariable("field", "f4", ("time", "y", "x"), fill_value=np.float32(-999.0))
        v.standard_name, v.units = std, units
        v[:] = np.where(np.isnan(field), np.float32(-999.0), field)[None]
    return Path(path)


def _rain(k: int, n: int = N) -> np.ndarray:
    """A rain field (n, n) in mm/h: a cell of up to ~20 mm/h, 0 elsewhere."""
    yy, xx = np.mgrid[0:n, 0:n]
    r2 = (xx - n / 2 - k) ** 2 + (yy - n / 2) ** 2
    return np.where(r2 < (n / 4) ** 2, 20.0 - np.sqrt(r2), 0.0).astype(np.float32)


def _dbz(k: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(k).uniform(-20, 55, (n, n)).astype(np.float32)


def _odim(path, raw, *, gain=0.5, xscale=1000.0, minute=0):
    """An ODIM_H5 DBZH composite (n, n) with the given gain and pixel width."""
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_3")
        w = f.create_group("what")
        w.attrs["date"], w.attrs["time"] = np.bytes_("20240501"), np.bytes_(f"00{minute:02d}00")
        g = f.create_group("where")
        g.attrs["projdef"] = np.bytes_("+proj=stere +lat_0=90 +lon_0=10")
        g.attrs.update({"UL_x": 0.0, "UL_y": 64000.0, "xscale": xscale, "yscale": 1000.0})
        ds = f.create_group("dataset1")
        ds.create_group("what").attrs.update(
            {"gain": gain, "offset": -32.0, "nodata": 255.0, "undetect": 0.0}
        )
        d1 = ds.create_group("data1")
        d1.create_group("what").attrs["quantity"] = np.bytes_("DBZH")
        d1.create_dataset("data", data=np.asarray(raw, dtype=np.uint8))
    return Path(path)


def _odim_raw(k: int) -> np.ndarray:
    return np.random.default_rng(k).integers(1, 200, (N, N))


def _preprocess(*args):
    return runner.invoke(app, ["preprocess", "-q", *SMALL, *args])


def _archive(folder: Path, odim: bool = False) -> list[Path]:
    """Three good reflectivity files 6 minutes apart (CF, or ODIM_H5)."""
    folder.mkdir(parents=True, exist_ok=True)
    if odim:
        return [_odim(folder / f"a_{k}.h5", _odim_raw(k), minute=6 * k) for k in range(3)]
    return [_cf(folder / f"a_{k}.nc", _dbz(k), 6 * k) for k in range(3)]


def _refused(result, folder: Path, before: dict[str, str], out: Path, *fragments) -> str:
    """Exit 2, one line with every fragment, inputs unchanged, no store and no leftovers."""
    line = assert_one_line_error(result, *fragments)
    assert checksums(folder) == before
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    return line


def _skipped(folder: Path, out: Path, *fragments: str) -> None:
    """preprocess --skip-bad on the 4-file ``folder``: exit 0, one bad file listed (every
    fragment in the output), the 3 good frames stored."""
    result = runner.invoke(
        app,
        ["preprocess", *SMALL, "--input", str(folder), "--output", str(out), "--skip-bad"],
    )
    assert result.exit_code == 0, result.output
    assert "files: 4 found, 1 bad" in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)
    assert read_meta(out).valid.sum() == 3


# --------------------------------------------------------------------------- dry frames


def test_zero_and_negative_rates_are_the_lowest_gray_level():
    """R ≤ 0 is no rain (−inf dBZ, gray level 0); only NaN stays "no data"."""
    dbz = rate_to_dbz(np.array([0.0, -1.0, -1e30, np.nan, 1.0]), 200.0, 1.6)
    assert np.isneginf(dbz[:3]).all() and np.isnan(dbz[3])
    assert dbz[4] == pytest.approx(10 * np.log10(200.0))
    gray = gray_level(dbz, -10.0, 60.0)
    np.testing.assert_array_equal(gray[:3], 0.0)
    assert np.isnan(gray[3]) and 0 < gray[4] < 1


@pytest.fixture(scope="module")
def rate_case(tmp_path_factory):
    """Three rain-rate files 6 min apart on a 360² grid, and a checkpoint for them."""
    root = tmp_path_factory.mktemp("dry")
    folder = root / "in"
    folder.mkdir()
    files = [_cf(folder / f"r_{k}.nc", _rain(k, SIZE), 6 * k, **RATE) for k in range(3)]
    return root, files, make_checkpoint(root / "c.pt", files[0])


@pytest.mark.parametrize("dry", ["zero", "negative", "zero_with_nan_edge"])
def test_predict_accepts_a_dry_newest_frame(rate_case, tmp_path, dry):
    root, files, ckpt = rate_case
    folder = tmp_path / "in"
    shutil.copytree(files[0].parent, folder)
    field = np.zeros((SIZE, SIZE), np.float32)
    if dry == "negative":
        field[:] = -1.0  # "no rain" in several products
    if dry == "zero_with_nan_edge":
        field[:, :5] = np.nan
    _cf(folder / files[2].name, field, 12, **RATE)
    before = checksums(folder)
    out = tmp_path / "n.nc"
    result = runner.invoke(
        app, ["predict", "--checkpoint", str(ckpt), "--input", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert checksums(folder) == before
    with xr.open_dataset(out) as ds:
        assert ds.sizes["time"] == 4 and np.isfinite(ds["rainfall_rate"].values).any()


def test_predict_on_real_meteoswiss_frames_whose_newest_is_dry(radar_dir, tmp_path):
    """The newest three MeteoSwiss frames with the newest made dry (0 mm/h wherever the
    file has data; NaN outside coverage kept): a nowcast, not an "all-NaN" refusal."""
    src = sorted((radar_dir / "mch_20150515_5min").glob("*.nc"))[-3:]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in src:
        shutil.copy(f, folder)
    newest = folder / src[-1].name
    with netCDF4.Dataset(newest, "a") as nc:
        var = next(v for v in nc.variables.values() if v.ndim >= 2)
        data = var[:]
        var[:] = np.ma.where(np.ma.getmaskarray(data), data, 0.0)
    frame = read_frame(newest, InputConfig(), ZRConfig())
    assert np.isneginf(frame.dbz).any() and not np.isfinite(frame.dbz).any()
    cfg = load_config(None, ["preprocess.interval_minutes=5"])
    ckpt = make_checkpoint(tmp_path / "c.pt", folder / src[0].name, cfg)
    before = checksums(folder)
    out = tmp_path / "n.nc"
    result = runner.invoke(
        app, ["predict", "--checkpoint", str(ckpt), "--input", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert checksums(folder) == before
    with xr.open_dataset(out) as ds:
        assert json.loads(ds.attrs["input_files"])[-1] == str(newest)


@pytest.mark.parametrize("dry", ["rate_zero", "rate_negative", "dbz_below_scale"])
def test_preprocess_keeps_a_dry_frame_as_a_valid_frame(tmp_path, dry):
    folder = tmp_path / "in"
    folder.mkdir()
    kind = RATE if dry.startswith("rate") else {}
    fields = {
        "rate_zero": np.zeros((N, N)),
        "rate_negative": np.full((N, N), -1.0),
        "dbz_below_scale": np.full((N, N), -32.0),
    }
    for k in range(3):
        field = fields[dry] if k == 1 else (_rain(k) if kind else _dbz(k))
        _cf(folder / f"a_{k}.nc", field, 6 * k, **kind)
    out = tmp_path / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta.valid.sum() == 3 and meta.coverage.all()
    with netCDF4.Dataset(out) as nc:
        frames = nc["frames"][:]
    assert (frames[np.flatnonzero(meta.valid)[1]] == 0).all()  # the lowest gray level


# --------------------------------------------------------------------------- frames without data


def _nan_frame(folder: Path, kind: str) -> Path:
    if kind == "cf_all_nan":
        return _cf(folder / "a_1.nc", np.full((N, N), np.nan), 6)
    return _odim(folder / "a_1.h5", _odim_raw(1), gain=float("nan"), minute=6)


@pytest.mark.parametrize("kind", ["cf_all_nan", "odim_gain_nan"])
def test_preprocess_leaves_a_frame_without_data_out(tmp_path, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    odim = kind.startswith("odim")
    for k in (0, 2):
        if odim:
            _odim(folder / f"a_{k}.h5", _odim_raw(k), minute=6 * k)
        else:
            _cf(folder / f"a_{k}.nc", _dbz(k), 6 * k)
    empty = _nan_frame(folder, kind)
    out = tmp_path / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert f"{empty}: no radar data inside the 40×40 crop" in result.stderr
    assert "valid = 0" in result.stderr
    meta = read_meta(out)
    day0 = np.datetime64("2024-05-01T00:00:00")
    slot = {int((t - day0) / np.timedelta64(6, "m")): v for t, v in zip(meta.times, meta.valid)}
    assert slot[0] and not slot[1] and slot[2]
    assert meta.coverage.all()  # the coverage of the two frames with data


def test_preprocess_refuses_input_where_no_frame_has_data(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(2):
        _cf(folder / f"a_{k}.nc", np.full((N, N), np.nan), 6 * k)
    before = checksums(folder)
    out = tmp_path / "out" / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    _refused(result, folder, before, out, str(folder), "none of the 2 frames has radar data")


@pytest.fixture(scope="module")
def uncounted_store(tmp_path_factory):
    """A store made by preprocess where no cell is covered in every frame: the first
    frame has data only in the left half of the grid, the second only in the right."""
    root = tmp_path_factory.mktemp("uncounted")
    folder = root / "in"
    folder.mkdir()
    for k in range(2):
        field = _dbz(k)
        if k == 0:
            field[:, N // 2 :] = np.nan
        else:
            field[:, : N // 2] = np.nan
        _cf(folder / f"a_{k}.nc", field, 6 * k)
    out = root / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta.valid.sum() == 2 and not meta.coverage.any()
    return out


def test_train_refuses_a_store_where_no_pixel_counts(uncounted_store, tmp_path):
    before = checksums(uncounted_store)
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", "--set", f"data.store={uncounted_store}", "--set", f"train.out_dir={run}"],
    )
    assert_one_line_error(result, str(uncounted_store), "no pixel counts")
    assert checksums(uncounted_store) == before
    assert not run.exists()


def test_evaluate_refuses_a_store_where_no_pixel_counts(uncounted_store, tmp_path):
    before = checksums(uncounted_store)
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--baselines",
            "persistence",
            "--out",
            str(report),
            "--set",
            f"data.store={uncounted_store}",
        ],
    )
    assert_one_line_error(result, str(uncounted_store), "no pixel counts")
    assert checksums(uncounted_store) == before
    assert not report.exists()


# --------------------------------------------------------------------------- absurd frames


def _absurd(folder: Path, case: str) -> Path:
    field = _dbz(9)
    if case == "dbz_1e30":
        return _cf(folder / "b.nc", np.full((N, N), 1e30), 18)
    if case == "dbz_inf":
        return _cf(folder / "b.nc", np.full((N, N), np.inf), 18)
    if case == "dbz_mixed_absurd":  # some NaN, the rest absurdly low or high
        field[:] = np.where(np.arange(N) % 2, -1e30, 1e30)[None, :]
        field[:4] = np.nan
        return _cf(folder / "b.nc", field, 18)
    if case == "rate_1e6":
        return _cf(folder / "b.nc", np.full((N, N), 1e6), 18, **RATE)
    if case == "odim_xscale_nan":
        return _odim(folder / "b.h5", _odim_raw(9), xscale=float("nan"), minute=18)
    raise AssertionError(case)


ABSURD = {
    "dbz_1e30": "outside physical range",
    "dbz_inf": "outside physical range",
    "dbz_mixed_absurd": "outside physical range",
    "rate_1e6": "outside physical range",
    "odim_xscale_nan": "xscale=nan",
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_preprocess_refuses_a_frame_outside_physical_range(tmp_path, case):
    folder = tmp_path / "in"
    _archive(folder, odim=case.startswith("odim"))
    bad = _absurd(folder, case)
    before = checksums(folder)
    out = tmp_path / "out" / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    _refused(result, folder, before, out, str(bad), ABSURD[case])


@pytest.mark.parametrize("case", list(ABSURD))
def test_preprocess_skip_bad_skips_and_lists_a_frame_outside_physical_range(tmp_path, case):
    folder = tmp_path / "in"
    _archive(folder, odim=case.startswith("odim"))
    bad = _absurd(folder, case)
    _skipped(folder, tmp_path / "store.nc", f"bad file: {bad}", ABSURD[case])


def test_single_absurd_pixels_stay_data(tmp_path):
    """One pixel at 1e30 dBZ and one at +inf in an otherwise sound frame: clipped, kept."""
    folder = tmp_path / "in"
    _archive(folder)
    field = _dbz(3)
    field[30, 30], field[31, 31] = 1e30, np.inf
    _cf(folder / "a_3.nc", field, 18)
    out = tmp_path / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert read_meta(out).valid.sum() == 4


@pytest.mark.parametrize("case", ["dbz_1e30", "rate_1e6"])
def test_predict_refuses_a_newest_frame_outside_physical_range(tmp_path, case):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    value, kind = (1e30, {}) if case == "dbz_1e30" else (1e6, RATE)
    grid = read_frame(files[0], InputConfig(), ZRConfig())
    start = f"{START:%Y-%m-%d %H:%M:%S}"
    _cf(files[2], np.full((SIZE, SIZE), value), 12, start=start, xy=(grid.x, grid.y), **kind)
    before = checksums(tmp_path / "in")
    out = tmp_path / "out" / "n.nc"
    result = runner.invoke(
        app,
        ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in"), "--out", str(out)],
    )
    _refused(result, tmp_path / "in", before, out, str(files[2]), "outside physical range")


# --------------------------------------------------------------------------- awkward input files


def test_time_beyond_64_bits_is_a_bad_file(tmp_path):
    folder = tmp_path / "in"
    _archive(folder)
    bad = _cf(folder / "b.nc", _dbz(5), time=1e300)
    before = checksums(folder)
    out = tmp_path / "out" / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    _refused(result, folder, before, out, str(bad), "cannot parse time")
    skipped = _preprocess("--input", str(folder), "--output", str(out), "--skip-bad")
    assert skipped.exit_code == 0, skipped.output
    assert read_meta(out).valid.sum() == 3


def test_predict_names_a_file_with_a_time_beyond_64_bits(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    bad = _cf(tmp_path / "in" / "b.nc", blob(3), time=-1e300)
    before = checksums(tmp_path / "in")
    out = tmp_path / "out" / "n.nc"
    result = runner.invoke(
        app,
        ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in"), "--out", str(out)],
    )
    _refused(result, tmp_path / "in", before, out, str(bad), "cannot parse time")


def _bytes_name(folder: Path, src: Path) -> bytes:
    """Move ``src`` to a name in ``folder`` that is not valid UTF-8; returns the name."""
    name = os.fsencode(folder) + b"/\xff\xfe_radar.nc"
    os.rename(src, name)
    return name


def test_preprocess_reads_a_file_whose_name_is_not_utf8(tmp_path):
    folder = tmp_path / "in"
    files = _archive(folder)
    _bytes_name(folder, files[1])
    out = tmp_path / "store.nc"
    result = nowcast_process(
        "preprocess", "-q", *SMALL, "--input", str(folder), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert read_meta(out).valid.sum() == 3


def test_predict_reads_a_file_whose_name_is_not_utf8(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    name = _bytes_name(tmp_path / "in", files[2])  # the newest frame
    out = tmp_path / "n.nc"
    result = nowcast_process(
        "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in"), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    with xr.open_dataset(out) as ds:
        assert json.loads(ds.attrs["input_files"])[-1] == name.decode("utf-8", "backslashreplace")
    named = [a for p in (files[0], files[1], name) for a in ("--input", os.fsdecode(p))]
    direct = nowcast_process(  # the files named on the command line (as bytes)
        "predict", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.nc"), *named
    )
    assert direct.returncode == 0, direct.stderr


def _odd_entry(folder: Path, kind: str) -> Path:
    path = folder / f"odd_{kind}.nc"
    if kind == "broken_link":
        path.symlink_to(folder / "gone.nc")
    elif kind == "link_loop":
        path.symlink_to(path.name)
    elif kind == "fifo":
        os.mkfifo(path)
    return path


ODD = {
    "broken_link": "broken symbolic link",
    "link_loop": "symbolic link loop",
    "fifo": "not a regular file",
}


@pytest.mark.parametrize("kind", list(ODD))
def test_preprocess_lists_a_broken_link_or_special_file(tmp_path, kind):
    folder = tmp_path / "in"
    _archive(folder)
    odd = _odd_entry(folder, kind)
    before = checksums(folder)
    out = tmp_path / "out" / "store.nc"
    result = _preprocess("--input", str(folder), "--output", str(out))
    _refused(result, folder, before, out, str(odd), ODD[kind])
    _skipped(folder, out, str(odd))


@pytest.mark.parametrize("kind", list(ODD))
def test_predict_names_a_broken_link_or_special_file(tmp_path, kind):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    odd = _odd_entry(tmp_path / "in", kind)
    before = checksums(tmp_path / "in")
    out = tmp_path / "out" / "n.nc"
    result = runner.invoke(
        app,
        ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in"), "--out", str(out)],
    )
    _refused(result, tmp_path / "in", before, out, str(odd), ODD[kind])
