"""The shipped model (models/convlstm_radar5min.pt, see models/README.md): it loads, it is a
nowcast checkpoint for 5-minute radar, and `nowcast predict` runs it out of the box on a
real ODIM_H5 folder (../shared, skipped where absent) and on synthetic CF-netCDF files at a
5-minute spacing (so the test also runs in a clone without ../shared). Its 5-minute
forecast of the held-out RMI event matches the next observed frame about as well as
persistence does, and its per-lead correction scales are those the recipe's folds chose."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from nowcast.checkpoint import load_checkpoint
from nowcast.cli import app
from nowcast.config import load_config
from nowcast.config.synth import SynthConfig
from nowcast.io import expand_inputs, read_frame
from nowcast.predict import predict
from nowcast.predict.trained import TrainedModel
from nowcast.preprocess import TransformSettings, transform_frame
from nowcast.synth import synthesize
from nowcast.units import dbz_to_rate, uint8_to_gray

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "convlstm_radar5min.pt"
N_IN, N_OUT = 5, 12


def test_shipped_checkpoint_is_a_small_5_minute_nowcast_checkpoint():
    assert SHIPPED.stat().st_size < 4e6  # "at most a few MB"
    ckpt = load_checkpoint(SHIPPED)  # the contract's checks: format tag, required keys
    assert ckpt["model_name"] == "convlstm"
    assert ckpt["preprocess"]["interval_minutes"] == 5
    assert ckpt["config"]["data"]["n_in"] == N_IN and ckpt["config"]["data"]["n_out"] == N_OUT
    assert ckpt["config"]["model"]["probability_matching"] is True  # as the card says
    assert ckpt["config"]["model"]["advection"] is True  # on top of pysteps extrapolation
    assert ckpt["config"]["model"]["advection_motion"] == "proesmans"
    assert ckpt["config"]["model"]["matching_reference"] == "advected"
    # nothing that only a resume needs
    assert not {"optimizer", "scheduler", "rng"} & ckpt.keys()
    # one shrinkage per lead, as the recipe's folds decided (models/eval/folds.json)
    scales = ckpt["config"]["model"]["correction_scale"]
    assert len(scales) == N_OUT and all(0.0 <= s <= 1.0 for s in scales)
    folds = json.loads((REPO / "models" / "eval" / "folds.json").read_text())
    assert folds["shipped"]["scales"] == scales
    trained = TrainedModel.load(SHIPPED)
    assert trained.interval_minutes == 5.0 and trained.input_variable is None
    assert (trained.zr.a, trained.zr.b) == (200.0, 1.6)
    model = trained.build_model()  # the weights fit the network the config describes
    assert sum(p.numel() for p in model.parameters()) > 10_000


def test_model_card_states_the_shipped_files_sha256():
    digest = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert digest in (REPO / "models" / "README.md").read_text()
    assert load_checkpoint(SHIPPED)["format"] == "nowcast-checkpoint/2"


def _check_nowcast(path: Path, last_time: np.datetime64) -> xr.Dataset:
    ds = xr.open_dataset(path).load()
    ds.close()
    np.testing.assert_array_equal(ds["forecast_period"].values, 5.0 * np.arange(1, N_OUT + 1))
    assert np.datetime64(ds["forecast_reference_time"].values, "s") == last_time
    assert ds["rainfall_rate"].shape == (N_OUT, 100, 100)
    rate = ds["rainfall_rate"].values
    assert np.isfinite(rate).mean() > 0.9 and np.nanmin(rate) >= 0
    return ds


@pytest.fixture(scope="module")
def synth_5min(tmp_path_factory) -> list[Path]:
    """The newest frames of one synthetic day at a 5-minute spacing."""
    out = tmp_path_factory.mktemp("synth5")
    synthesize(SynthConfig(out=out, start=dt.date(2024, 8, 3), days=1, seed=2, interval_minutes=5))
    return sorted(out.glob("synth_*.nc"))[-N_IN - 2 :]


def test_predict_on_synthetic_5_minute_files(synth_5min, tmp_path):
    cfg = load_config(None)
    out = predict(cfg, SHIPPED, [str(p) for p in synth_5min], tmp_path / "n.nc")
    last = read_frame(synth_5min[-1], cfg.input, cfg.zr).time
    ds = _check_nowcast(out, np.datetime64(last, "s"))
    assert ds.attrs["checkpoint_sha256"] and ds.attrs["leads_trained"] == N_OUT
    assert np.nanmax(ds["rainfall_rate"].values) > 1.0  # rain is forecast, not wiped out


def test_cli_predict_on_the_real_odim_folder(radar_dir, tmp_path):
    folder = radar_dir / "rmi_20210704_5min_odim"
    out = tmp_path / "rmi.nc"
    result = CliRunner().invoke(
        app,
        ["predict", "--checkpoint", str(SHIPPED), "--input", str(folder), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(None)
    files = expand_inputs([str(folder)], cfg.input.pattern)
    _check_nowcast(out, np.datetime64(read_frame(files[-1], cfg.input, cfg.zr).time, "s"))


def test_six_minute_folder_is_refused_by_default(radar_dir, tmp_path):
    """BOM's 6-minute frames would pass as 5-minute ones (leads mislabelled): refused by the
    default time tolerance (± 0.5 min), run when the user widens it on purpose."""
    folder = radar_dir / "bom-melbourne_20180616_6min"
    args = ["predict", "--checkpoint", str(SHIPPED), "--input", str(folder)]
    refused = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "no.nc")])
    assert refused.exit_code == 2
    assert "not consecutive: 6 min after the previous frame" in " ".join(refused.output.split())
    assert not (tmp_path / "no.nc").exists()
    widened = [
        *args,
        "--out",
        str(tmp_path / "yes.nc"),
        "--set",
        "predict.time_tolerance_minutes=1",
    ]
    assert CliRunner().invoke(app, widened).exit_code == 0
    assert (tmp_path / "yes.nc").is_file()


def _csi(forecast: np.ndarray, observed: np.ndarray, threshold: float) -> float:
    f, o = forecast >= threshold, observed >= threshold
    hits = np.sum(f & o)
    return float(hits / (hits + np.sum(f & ~o) + np.sum(~f & o)))


def test_five_minute_forecast_of_the_held_out_event_is_skilful(radar_dir, tmp_path):
    """RMI (held out from training): from frames 6–10, the 5-minute forecast against frame
    11 as the preprocessing makes it, at 1 mm/h — near persistence (the last input)."""
    cfg = load_config(None)
    files = expand_inputs([str(radar_dir / "rmi_20210704_5min_odim")], cfg.input.pattern)
    out = predict(cfg, SHIPPED, [str(p) for p in files[5:10]], tmp_path / "n.nc")
    trained = TrainedModel.load(SHIPPED)
    settings = TransformSettings.from_dict(trained.preprocess)
    s = trained.scale

    def observed_rate(path: Path) -> np.ndarray:
        gray = uint8_to_gray(transform_frame(read_frame(path, cfg.input, trained.zr).dbz, settings))
        dbz = s.z_min + gray.astype(np.float64) * (s.z_max - s.z_min)
        return np.where(gray == 0, 0.0, dbz_to_rate(dbz, s.a, s.b))

    forecast = xr.open_dataset(out)["rainfall_rate"].values[0]
    truth, last = observed_rate(files[10]), observed_rate(files[9])
    csi_model, csi_persistence = _csi(forecast, truth, 1.0), _csi(last, truth, 1.0)
    assert csi_persistence > 0.5  # the event rains at 1 mm/h here
    assert csi_model > 0.8 * csi_persistence, (csi_model, csi_persistence)
