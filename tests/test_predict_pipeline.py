"""predict() on small CF-netCDF frames: the numbers against an independent computation, the
grid, the times, the masks and every predict config key; bad input through the CLI."""

from __future__ import annotations

import shutil

import h5py
import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image
from predict_support import (
    SIZE,
    START,
    TINY_MODEL,
    blob,
    cell_centres_reference,
    config,
    make_checkpoint,
    write_frames,
)
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.config import load_config
from nowcast.errors import UserError
from nowcast.models import build
from nowcast.predict import predict
from nowcast.predict.pictures import FIGSIZE
from nowcast.predict.pipeline import forecast
from nowcast.preprocess.transform import TransformSettings, transform_frame

runner = CliRunner()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Five frames 6 min apart (file names not in time order) and a checkpoint for them."""
    root = tmp_path_factory.mktemp("predict")
    names = [f"z_{k}.nc" for k in (3, 1, 4, 0, 2)]  # name order ≠ time order
    files = write_frames(root / "in", [0, 6, 12, 18, 24], names=names)
    ckpt = make_checkpoint(root / "ckpt.pt", files[0])
    return root, files, ckpt


def _expected_gray(files, ckpt_path):
    """The network run by hand on the stored (uint8) transform of the newest 3 frames."""
    cfg = config()
    ckpt = torch.load(ckpt_path, weights_only=True)
    model_cfg = load_config(None, [f"model.{k}={v}" for k, v in TINY_MODEL.items()]).model
    model = build("convlstm", model_cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    settings = TransformSettings.from_config(cfg.preprocess)
    stored = []
    for f in files[2:]:  # the newest: minutes 12, 18, 24, read back as xarray decodes them
        with xr.open_dataset(f) as raw:
            stored.append(transform_frame(raw.reflectivity.values[0], settings))
    x = torch.tensor(np.stack(stored), dtype=torch.float32)[None, :, None] / 255.0
    with torch.no_grad():
        return model(x, 4)[0, :, 0].double().numpy()


def test_nowcast_is_the_model_on_the_training_transform(case, tmp_path):
    root, files, ckpt = case
    out = predict(config("predict.amp=off"), ckpt, [root / "in"], tmp_path / "n.nc")
    gray = _expected_gray(files, ckpt)
    dbz = -10.0 + 70.0 * gray
    rate = np.where(np.rint(255 * gray) == 0, 0.0, (10 ** (dbz / 10) / 200.0) ** (1 / 1.6))
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds.reflectivity.values, dbz, rtol=0, atol=2e-5)
        np.testing.assert_allclose(ds.rainfall_rate.values, rate, rtol=2e-6, atol=1e-7)
        assert (ds.rainfall_rate.values == 0).any() and (ds.rainfall_rate.values > 1).any()
        # times: reference = the last input (minute 24), leads 6..24 min
        ref = np.datetime64(START, "ns") + np.timedelta64(24, "m")
        assert ds.forecast_reference_time.values == ref
        np.testing.assert_array_equal(
            ds.time.values, ref + np.array([6, 12, 18, 24], "m8[m]").astype("m8[ns]")
        )
        np.testing.assert_array_equal(ds.forecast_period.values, [6, 12, 18, 24])
        assert ds.reflectivity.units == "dBZ" and ds.rainfall_rate.units == "mm h-1"
        # the 100×100 cells sit inside the input grid where the centre crop was averaged
        with xr.open_dataset(files[0]) as raw:
            for name in ("x", "y"):
                exact, stepwise = cell_centres_reference(raw[name].values, 330, 100)
                np.testing.assert_allclose(ds[name].values, exact, rtol=0, atol=1e-6)
                assert np.abs(ds[name].values - stepwise).max() < 500.0  # half a 1 km pixel
            # the file's grid mapping, completed by pyproj (grid_mapping_name, crs_wkt)
            assert {k: ds.crs.attrs[k] for k in raw.crs.attrs} == raw.crs.attrs
            assert "crs_wkt" in ds.crs.attrs
        assert ds.attrs["model"] == "convlstm"
        assert (
            ds.attrs["checkpoint_sha256"]
            == __import__("hashlib").sha256(ckpt.read_bytes()).hexdigest()
        )
        # newest three frames, in time order, whatever the file names
        assert ds.attrs["input_files"] == (f'["{files[2]}", "{files[3]}", "{files[4]}"]')
        assert ds.attrs["nowcast_version"]


def test_same_input_gives_identical_bytes(case, tmp_path):
    root, files, ckpt = case
    a = predict(config(), ckpt, files, tmp_path / "a.nc")
    b = predict(config(), ckpt, [str(root / "in" / "*.nc")], tmp_path / "b.nc")
    assert a.read_bytes() == b.read_bytes()


def test_leads_key_sets_the_number_of_leads(case, tmp_path):
    root, _, ckpt = case
    out = predict(config("predict.leads=6"), ckpt, [root / "in"], tmp_path / "n.nc")
    with xr.open_dataset(out) as ds:
        np.testing.assert_array_equal(ds.forecast_period.values, [6, 12, 18, 24, 30, 36])
        assert ds.attrs["leads"] == 6 and ds.attrs["leads_trained"] == 4


def _rects():
    noise = np.zeros((2, 100, 100), bool)
    noise[0, 10:20, 10:20] = True  # 2024-05
    noise[1, 60:70, 30:40] = True  # 2024-06
    return noise


def test_noise_mask_nearest_month_and_union(case, tmp_path):
    root, files, _ = case
    coverage = np.ones((100, 100), bool)
    coverage[:, 95:] = False
    ckpt = make_checkpoint(
        tmp_path / "c.pt",
        files[0],
        months=["2024-05", "2024-06"],
        noise=_rects(),
        coverage=coverage,
    )
    # frames are from 20 July 2024: the nearest month with a mask is June
    near = predict(config(), ckpt, [root / "in"], tmp_path / "near.nc")
    union = predict(config("predict.noise_mask=union"), ckpt, [root / "in"], tmp_path / "u.nc")
    with xr.open_dataset(near) as a, xr.open_dataset(union) as b:
        off_a = np.isnan(a.reflectivity.values[0])
        off_b = np.isnan(b.rainfall_rate.values[0])
        expected = _rects()[1] | ~coverage
        np.testing.assert_array_equal(off_a, expected)
        np.testing.assert_array_equal(off_b, _rects().any(axis=0) | ~coverage)
        assert "2024-06" in a.attrs["mask"] and "union" in b.attrs["mask"]


def test_cells_outside_input_coverage_are_not_predicted(tmp_path):
    def holed(k):
        f = blob(k)
        f[:100, :] = np.nan  # the top rows are outside coverage (the crop starts at row 15)
        return f

    files = write_frames(tmp_path / "in", [0, 6, 12], field=holed)
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    out = predict(config(), ckpt, files, tmp_path / "n.nc")
    with xr.open_dataset(out) as ds:
        off = np.isnan(ds.reflectivity.values)
        # crop rows 15..344; input row 100 is crop row 85, inside output row 85/3.3 = 25.76
        assert off[:, :26].all() and not off[:, 26:].any()


def test_foreign_grid_skips_the_training_masks(case, tmp_path, capsys):
    root, _, _ = case
    # a 400 px grid around the same radar gives the same centre crop (same training grid);
    # 2 km pixels do not
    same = write_frames(tmp_path / "same", [0], field=lambda k: blob(k, SIZE + 40))
    ckpt = make_checkpoint(tmp_path / "s.pt", same[0], noise=np.ones((1, 100, 100), bool))
    out = predict(config(), ckpt, [root / "in"], tmp_path / "s.nc")
    with xr.open_dataset(out) as ds:
        assert np.isnan(ds.reflectivity.values).all()
    other = write_frames(tmp_path / "other", [0], pixel_km=2.0)
    noise = np.ones((1, 100, 100), bool)  # would blank everything on its own grid
    ckpt = make_checkpoint(tmp_path / "c.pt", other[0], noise=noise)
    out = predict(config(), ckpt, [root / "in"], tmp_path / "n.nc")
    with xr.open_dataset(out) as ds:
        assert not np.isnan(ds.reflectivity.values).any()
        assert ds.attrs["mask"].startswith("input coverage only")
    assert "not the grid c.pt was trained on" in " ".join(capsys.readouterr().err.split())


def test_time_tolerance_key(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6.5, 13])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    predict(config(), ckpt, files, tmp_path / "ok.nc")
    with pytest.raises(UserError, match="not consecutive: 6.5 min"):
        predict(config("predict.time_tolerance_minutes=0.25"), ckpt, files, tmp_path / "no.nc")
    assert not (tmp_path / "no.nc").exists()


def test_pictures_dpi_and_gif_frame_time(case, tmp_path):
    root, _, ckpt = case
    cfg = config("predict.dpi=40", "predict.gif_frame_ms=250")
    predict(
        cfg, ckpt, [root / "in"], tmp_path / "n.nc", png=tmp_path / "png", gif=tmp_path / "n.gif"
    )
    pngs = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in pngs] == [f"nowcast_+{m:03d}min.png" for m in (6, 12, 18, 24)]
    assert Image.open(pngs[0]).size == (round(FIGSIZE[0] * 40), round(FIGSIZE[1] * 40))
    gif = Image.open(tmp_path / "n.gif")
    assert gif.n_frames == 4 and gif.info["duration"] == 250


# ---------------------------------------------------------------- bad input, through the CLI


def _cli(ckpt, inputs, out, *extra):
    args = ["predict", "--checkpoint", str(ckpt), "--out", str(out), "--quiet", *extra]
    for p in inputs:
        args += ["--input", str(p)]
    return runner.invoke(app, args)


def _bad(tmp_path, ckpt, inputs, expected_start):
    out = tmp_path / "out" / "n.nc"
    result = _cli(ckpt, inputs, out, "--png", str(tmp_path / "out" / "png"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"nowcast: error: {expected_start}"), lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
    return lines[0]


def test_cli_success_writes_the_file(case, tmp_path):
    root, _, ckpt = case
    result = _cli(ckpt, [root / "in"], tmp_path / "n.nc")
    assert result.exit_code == 0, result.output
    with xr.open_dataset(tmp_path / "n.nc") as ds:
        assert ds.sizes == {"time": 4, "y": 100, "x": 100}


def test_cli_too_few_frames(case, tmp_path):
    _, files, ckpt = case
    d = tmp_path / "few"
    d.mkdir()
    for f in files[:2]:
        shutil.copy(f, d)
    line = _bad(tmp_path, ckpt, [d], f"{d}: 2 radar frames found")
    assert "needs 3" in line


def test_cli_time_gap(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6, 18])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    _bad(tmp_path, ckpt, [tmp_path / "in"], f"{files[2]}: not consecutive: 12 min")


def test_cli_duplicate(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    copy = tmp_path / "in" / "zz_copy.nc"
    shutil.copy(files[2], copy)
    line = _bad(tmp_path, ckpt, [tmp_path / "in"], "")
    assert "duplicate frame" in line and str(copy) in line and str(files[2]) in line


def test_cli_grid_smaller_than_crop(case, tmp_path):
    _, _, ckpt = case
    small = write_frames(tmp_path / "in", [0, 6, 12], field=lambda k: blob(k)[:300, :320])
    _bad(
        tmp_path,
        ckpt,
        small,
        f"{small[0]}: grid 300×320 is smaller than the checkpoint's 330×330 crop",
    )


def test_cli_corrupt_file(case, tmp_path):
    _, files, ckpt = case
    d = tmp_path / "in"
    d.mkdir()
    for f in files:
        shutil.copy(f, d)
    newest = d / files[4].name
    newest.write_bytes(newest.read_bytes()[:2000])  # a truncated download
    _bad(tmp_path, ckpt, [d], f"{newest}: cannot read")


def _corrupt_field(path):
    """Zero 300 bytes inside the compressed chunk of the file's field: the header still
    reads, decoding the field fails (netCDF "HDF error")."""
    with h5py.File(path) as f:
        offset = f["reflectivity"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 100 : offset + 400] = bytes(300)
    path.write_bytes(bytes(data))


def test_only_the_chosen_frames_are_decoded(tmp_path):
    """A folder is scanned by header; only the newest n_in fields are decoded, so a broken
    field in an older file does not matter, and one in a chosen file is still an error."""
    files = write_frames(tmp_path / "in", [0, 6, 12, 18])
    ckpt = make_checkpoint(tmp_path / "c.pt", files[1])  # n_in = 3
    _corrupt_field(files[0])
    ok = _cli(ckpt, [tmp_path / "in"], tmp_path / "ok" / "n.nc")
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "ok" / "n.nc").is_file()
    _corrupt_field(files[-1])
    _bad(tmp_path, ckpt, [tmp_path / "in"], f"{files[-1]}: cannot read")


def test_cli_all_nan_frame(tmp_path):
    files = write_frames(
        tmp_path / "in",
        [0, 6, 12],
        field=lambda k: blob(k) if k < 2 else np.full((SIZE, SIZE), np.nan),
    )
    ckpt = make_checkpoint(tmp_path / "c.pt", files[0])
    _bad(tmp_path, ckpt, [tmp_path / "in"], f"{files[2]}: all-NaN frame")


def test_cli_not_a_checkpoint(case, tmp_path):
    root, _, _ = case
    text = tmp_path / "best.pt"
    text.write_text("not a checkpoint\n")
    _bad(tmp_path, text, [root / "in"], f"{text}: not a nowcast checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    _bad(tmp_path, other, [root / "in"], f"{other}: not a nowcast checkpoint")
    _bad(
        tmp_path,
        tmp_path / "missing.pt",
        [root / "in"],
        f"{tmp_path / 'missing.pt'}: no such checkpoint",
    )


def _add_field(path, name, dbz):
    """Append a second reflectivity variable (no standard_name) to a frame file."""
    with netCDF4.Dataset(path, "a") as nc:
        v = nc.createVariable(name, "f4", ("time", "y", "x"), fill_value=np.float32(np.nan))
        v.units = "dBZ"
        v[0] = dbz


def test_field_named_at_training_is_read_again(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    for k, f in enumerate(files):
        _add_field(f, "dbz_corrected", blob(k + 5))  # another field, further along
    plain = make_checkpoint(tmp_path / "plain.pt", files[0])
    named = torch.load(plain, weights_only=True)
    named["preprocess"]["input"] = {"variable": "dbz_corrected"}
    torch.save(named, tmp_path / "named.pt")
    by_default = predict(config(), plain, files, tmp_path / "a.nc")
    by_ckpt = predict(config(), tmp_path / "named.pt", files, tmp_path / "b.nc")
    by_cfg = predict(config("input.variable=dbz_corrected"), plain, files, tmp_path / "c.nc")
    with xr.open_dataset(by_default) as a, xr.open_dataset(by_ckpt) as b:
        with xr.open_dataset(by_cfg) as c:
            np.testing.assert_array_equal(b.reflectivity.values, c.reflectivity.values)
            assert not np.array_equal(a.reflectivity.values, b.reflectivity.values)


class _ThreadProbe(torch.nn.Module):
    """Persistence that notes how many torch threads its forward ran with."""

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def forward(self, inputs, n_out):
        self.seen.append(torch.get_num_threads())
        return inputs[:, -1:].expand(-1, n_out, -1, -1, -1)


def test_threads_key_sets_torch_threads_for_the_call_only(case, tmp_path):
    before = torch.get_num_threads()
    probe = _ThreadProbe()
    frames = np.zeros((3, 8, 8), np.uint8)
    frames[-1] = 255
    gray = forecast(probe, frames, 2, threads=1)
    assert gray.shape == (2, 8, 8) and (gray == 1).all()
    forecast(probe, frames, 2, threads=0)
    assert probe.seen == [1, before] and torch.get_num_threads() == before
    # and through predict: the config key reaches the call, the setting is restored
    root, _, ckpt = case
    predict(config("predict.threads=1"), ckpt, [root / "in"], tmp_path / "n.nc")
    assert torch.get_num_threads() == before


def test_cli_unwritable_outputs_are_refused_before_any_work(case, tmp_path):
    root, _, ckpt = case
    (tmp_path / "dir.nc").mkdir()
    result = _cli(ckpt, [root / "in"], tmp_path / "dir.nc")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"nowcast: error: --out: {tmp_path / 'dir.nc'} is a directory, expected a file name"
    )
    (tmp_path / "pngs").write_text("")
    result = _cli(ckpt, [root / "in"], tmp_path / "n.nc", "--png", str(tmp_path / "pngs"))
    assert result.exit_code == 2 and "--png: " in result.stderr and "is a file" in result.stderr
    assert not (tmp_path / "n.nc").exists()


def test_cli_checkpoint_without_usable_contents(case, tmp_path):
    root, _, ckpt = case
    payload = torch.load(ckpt, weights_only=True)
    broken = dict(
        payload,
        preprocess={k: v for k, v in payload["preprocess"].items() if k != "interval_minutes"},
    )
    torch.save(broken, tmp_path / "noint.pt")
    line = _bad(
        tmp_path,
        tmp_path / "noint.pt",
        [root / "in"],
        f"{tmp_path / 'noint.pt'}: unusable nowcast checkpoint",
    )
    assert "interval_minutes" in line
    wrong = dict(payload, state_dict={k: v[..., :1] for k, v in payload["state_dict"].items()})
    torch.save(wrong, tmp_path / "weights.pt")
    _bad(
        tmp_path,
        tmp_path / "weights.pt",
        [root / "in"],
        f"{tmp_path / 'weights.pt'}: the weights do not fit a convlstm",
    )
