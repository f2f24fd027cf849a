"""`nowcast preprocess` on the command line: bad input → one line naming the file, exit 2,
no store; --skip-bad skips and counts; options reach the config."""

from __future__ import annotations

import shutil

import netCDF4
import numpy as np
import pytest
from cli_support import SMALL_PREPROCESS
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.store import read_meta

runner = CliRunner()
SMALL = SMALL_PREPROCESS


def _frame(
    path, minutes, *, shift=0.0, units="dBZ", std="equivalent_reflectivity_factor", time_units=None
):
    """A 64×64 CF reflectivity file valid ``minutes`` after 2024-05-01 00:00."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("y", 64)
        nc.createDimension("x", 64)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = time_units or "minutes since 2024-05-01 00:00:00"
        t[:] = [minutes]
        x = nc.createVariable("x", "f8", ("x",))
        x.standard_name, x.units = "projection_x_coordinate", "m"
        x[:] = np.arange(64) * 1000.0 + shift
        y = nc.createVariable("y", "f8", ("y",))
        y.standard_name, y.units = "projection_y_coordinate", "m"
        y[:] = 64000.0 - np.arange(64) * 1000.0
        v = nc.createVariable("dbz", "f4", ("time", "y", "x"))
        if std:
            v.standard_name = std
        v.units = units
        v[:] = np.random.default_rng(int(minutes)).uniform(-20, 55, (1, 64, 64))
    return path


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        _frame(folder / f"a_{k}.nc", 6 * k)
    return folder


def _run(*args):
    return runner.invoke(app, ["preprocess", "-q", *SMALL, *args])


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert err.startswith("nowcast: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def _corrupt(path):
    good = _frame(path.with_name("tmp_good.nc"), 18)
    path.write_bytes(good.read_bytes()[:700])
    good.unlink()


BAD = {
    "corrupt": (_corrupt, "cannot read"),
    "no_field": (lambda p: _frame(p, 18, std=None, units="K"), "no recognisable radar field"),
    "units": (lambda p: _frame(p, 18, units="inches"), "unknown units 'inches'"),
    "grid": (lambda p: _frame(p, 18, shift=10_000.0), "mixed grids"),
    "time": (lambda p: _frame(p, 18, time_units="minutes since teatime"), "cannot parse time"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_stops_with_one_line_and_no_store(archive, tmp_path, case):
    make, message = BAD[case]
    bad = archive / f"b_{case}.nc"
    make(bad)
    out = tmp_path / "out" / "store.nc"
    result = _run("--input", str(archive), "--output", str(out))
    _assert_one_line_error(result, str(bad), message)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temp, no spool


@pytest.mark.parametrize("case", list(BAD))
def test_skip_bad_skips_and_counts(archive, tmp_path, case):
    make, message = BAD[case]
    make(archive / f"b_{case}.nc")
    out = tmp_path / "store.nc"
    result = _run("--input", str(archive), "--output", str(out), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "files: 4 found, 1 bad" in result.output and message in result.output
    assert read_meta(out).valid.sum() == 3


def test_empty_input(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _run("--input", str(tmp_path / "empty"), "--output", str(tmp_path / "s.nc"))
    _assert_one_line_error(result, str(tmp_path / "empty"), "empty input")
    assert not (tmp_path / "s.nc").exists()
    # files that exist but none usable (skipped) are an empty input too
    (tmp_path / "empty" / "x.nc").write_text("not radar")
    result = _run(
        "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "s.nc"), "--skip-bad"
    )
    _assert_one_line_error(result, "empty input")


def test_grid_smaller_than_the_crop(archive, tmp_path):
    result = runner.invoke(
        app,
        [
            "preprocess",
            "-q",
            "--input",
            str(archive),
            "-o",
            str(tmp_path / "s.nc"),
            "--set",
            "preprocess.crop=100",
        ],
    )
    _assert_one_line_error(result, str(archive / "a_0.nc"), "smaller than the crop (100×100")


@pytest.mark.parametrize(
    "setting, message",
    [
        ("preprocess.z_max=-20", "preprocess.z_max: must be greater than preprocess.z_min (-10)"),
        ("preprocess.size=50", "preprocess.size: must not exceed preprocess.crop (40)"),
        ("preprocess.interval_minutes=7", "preprocess.interval_minutes: must divide a day"),
        ("preprocess.tolerance_minutes=3", "preprocess.tolerance_minutes: must be less than half"),
        ("preprocess.split_ratio=[0,0,0]", "preprocess.split_ratio"),
        ("preprocess.block_frames=241", "preprocess.block_frames: must fit in a day"),
        ("preprocess.clutter_clusters=1", "preprocess.clutter_clusters"),
    ],
)
def test_settings_that_contradict_each_other(archive, tmp_path, setting, message):
    result = _run("-i", str(archive), "-o", str(tmp_path / "s.nc"), "--set", setting)
    _assert_one_line_error(result, message)
    assert not (tmp_path / "s.nc").exists()


def test_inputs_output_and_duplicates(archive, tmp_path):
    shutil.copy(archive / "a_1.nc", tmp_path / "again.nc")  # same valid time as a_1.nc
    out = tmp_path / "o" / "s.nc"
    # --input is repeatable; extra paths after the options are inputs too; a glob works
    result = _run(
        "--input",
        str(archive / "a_0.nc"),
        "--output",
        str(out),
        str(archive / "a_[12].nc"),
        str(tmp_path / "again.nc"),
    )
    assert result.exit_code == 0, result.output
    assert "duplicate" in result.output and "files: 4 found" in result.output
    meta = read_meta(out)
    assert meta.valid.sum() == 3 and meta.shape == (20, 20)
    assert meta.preprocess["crop"] == 40


def test_config_file_paths_and_store(archive, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"input:\n  paths: [{archive}]\n  pattern: 'a_*.nc'\ndata:\n  store: {tmp_path / 'cfg_store.nc'}\n"
        "preprocess:\n  crop: 40\n  size: 20\n  disk_radius: 2\n  clutter_clusters: 0\n"
    )
    (archive / "b_other.nc").write_text("ignored: does not match input.pattern")
    result = runner.invoke(app, ["preprocess", "-q", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert read_meta(tmp_path / "cfg_store.nc").valid.sum() == 3


def test_output_where_nothing_can_be_written(archive, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = _run("--input", str(archive), "--output", str(blocker / "s.nc"))
    _assert_one_line_error(result, str(blocker / "s.nc"), "cannot write there")
