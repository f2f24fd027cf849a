"""predict on each real radar folder of ../shared/data/radar, with a tiny model trained in the
test by the real trainer on a store made by the real preprocess from that folder.

Checked: the nowcast is the trained network run on the store's last frames (so predict's
reading and preprocessing reproduce training's bit for bit); the times, units and
coordinates (the store's grid, and for CF files the centres of the area-averaged centre
crop of the file's own x/y); the masks; identical bytes for the same input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from predict_support import cell_centres_reference

from nowcast.config import load_config
from nowcast.io import expand_inputs, read_frame
from nowcast.models import build
from nowcast.predict import predict
from nowcast.preprocess import preprocess
from nowcast.preprocess.splits import day_labels
from nowcast.store import FrameReader, read_meta
from nowcast.train import train

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "mch_20150515_5min": "mch",
    "bom-melbourne_20180616_6min": "bom",
    "fmi_20160928_5min": "fmi",
    "rmi_20210704_5min_odim": "rmi",
}
N_IN, N_OUT, BLOCK = 3, 4, 10
TINY = {"name": "convlstm", "layers": 1, "hidden": 4, "kernel": 3, "patch": 4}


def _split_seed(cfg, files) -> int:
    """A preprocess seed that puts the event's whole blocks into both train and val
    (split ratio 1/1/0), so that the trainer has windows of both."""
    pre = cfg.preprocess
    first = read_frame(files[0], cfg.input, cfg.zr, pre.interval_minutes).time
    last = read_frame(files[-1], cfg.input, cfg.zr, pre.interval_minutes).time
    day = np.datetime64(first, "D")
    block_min = pre.interval_minutes * BLOCK
    lo = int(np.ceil((first - day) / np.timedelta64(block_min, "m")))  # first whole block
    hi = int((last - day) / np.timedelta64(block_min, "m"))  # blocks lo..hi-1 are whole
    n_blocks = 24 * 60 // pre.interval_minutes // BLOCK
    for seed in range(100):
        labels = day_labels(day, n_blocks, [1, 1, 0], seed)[lo:hi]
        if {0, 1} <= set(labels.tolist()):
            return seed
    raise AssertionError("no seed gives train and val blocks")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=() if name.startswith("mch") else pytest.mark.slow)
        for name in FOLDERS
    ],
)
def trained(request, radar_dir, tmp_path_factory):
    """(folder, config, store, best.pt) for one real folder."""
    folder = radar_dir / request.param
    tmp = tmp_path_factory.mktemp(FOLDERS[request.param])
    sets = [
        f"input.paths=['{folder}']",
        f"data.store={tmp / 'store.nc'}",
        f"data.n_in={N_IN}",
        f"data.n_out={N_OUT}",
        f"preprocess.block_frames={BLOCK}",
        "preprocess.split_ratio=[1,1,0]",
        "preprocess.drop_gappy_blocks=false",
        *(f"model.{k}={v}" for k, v in TINY.items()),
        f"train.out_dir={tmp / 'run'}",
        "train.steps=3",
        "train.batch_size=2",
        "train.val_every=3",
        "train.checkpoint_every=3",
        "train.device=cpu",
        "train.lr=0.01",
        "train.amp=off",  # float32 throughout: the reference below runs the network in float32
        "predict.amp=off",
    ]
    yaml = REPO / "configs" / "data" / f"{FOLDERS[request.param]}.yaml"
    cfg = load_config(yaml, sets)
    files = expand_inputs([folder], cfg.input.pattern)
    cfg = load_config(yaml, [*sets, f"preprocess.seed={_split_seed(cfg, files)}"])
    store = preprocess(cfg)
    return folder, cfg, store, train(cfg).best_checkpoint


def _expected(cfg, store, ckpt_path):
    """The trained network on the store's last N_IN frames: gray (N_OUT, h, w), and the store."""
    meta = read_meta(store)
    last = np.flatnonzero(meta.valid)[-N_IN:]
    assert np.all(np.diff(last) == 1)
    frames = FrameReader(store).read(last[0], last[-1] + 1)
    if cfg.predict.noise_mask == "nearest_month":  # the inputs' clutter is no echo
        frames[:, meta.noise_mask[meta.month_index(meta.times[last[-1]])]] = 0
    else:
        frames[:, meta.noise_mask.any(axis=0)] = 0
    ckpt = torch.load(ckpt_path, weights_only=True)
    model = build(ckpt["model_name"], cfg.model)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    x = torch.from_numpy(frames.astype(np.float32) / np.float32(255))[None, :, None]
    with torch.no_grad():
        gray = model(x, N_OUT)[0, :, 0].double().numpy()
    return gray, meta, meta.times[last[-1]]


def test_predict_on_real_folder(trained, tmp_path):
    folder, cfg, store, ckpt = trained
    out = predict(cfg, ckpt, [folder], tmp_path / "nowcast.nc", gif=tmp_path / "n.gif")
    gray, meta, t_last = _expected(cfg, store, ckpt)
    with xr.open_dataset(out) as ds:
        # times: reference = the newest frame; valid = reference + k · interval
        ref = np.datetime64(t_last, "ns")
        assert ds.forecast_reference_time.values == ref
        step = cfg.preprocess.interval_minutes
        leads = step * np.arange(1, N_OUT + 1)
        np.testing.assert_array_equal(ds.forecast_period.values, leads)
        np.testing.assert_array_equal(ds.time.values, ref + leads.astype("m8[m]").astype("m8[ns]"))
        assert ds.forecast_period.units == "minutes"
        assert ds.reflectivity.units == "dBZ" and ds.rainfall_rate.units == "mm h-1"
        assert ds.x.units == "m" and ds.y.units == "m"
        # coordinates: the store's grid, i.e. where training's cells were
        np.testing.assert_allclose(ds.x.values, meta.x, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ds.y.values, meta.y, rtol=0, atol=1e-6)
        # the values: the network on the store's frames, masked by coverage and noise
        usable = meta.pixel_mask(t_last)
        got = ds.reflectivity.values
        assert np.isnan(got[:, ~usable]).all()
        predicted = ~np.isnan(got)
        assert predicted.sum() > 0.5 * usable.size * N_OUT
        dbz = meta.preprocess["z_min"] + gray * (
            meta.preprocess["z_max"] - meta.preprocess["z_min"]
        )
        np.testing.assert_allclose(got[predicted], dbz[predicted], rtol=0, atol=2e-5)
        assert ds.attrs["checkpoint_sha256"] and ds.attrs["model"] == "convlstm"
        assert str(folder) in ds.attrs["input_files"]
        mapping = {k: v for k, v in ds.crs.attrs.items()}
        assert mapping, "grid mapping copied"
    # CF files: the cells are the centres of the area-averaged centre crop of the file's x/y
    first = sorted(folder.iterdir())[0]
    if first.suffix == ".nc":
        with xr.open_dataset(first) as raw, xr.open_dataset(out) as ds:
            factor = 1000.0 if raw.x.attrs.get("units") == "km" else 1.0
            for name in ("x", "y"):
                exact, _ = cell_centres_reference(
                    raw[name].values.astype(np.float64) * factor, 330, 100
                )
                np.testing.assert_allclose(ds[name].values, exact, rtol=0, atol=0.01)
    # the same frames give the same bytes (here named as the newest files of a glob)
    newest = sorted(folder.glob("*"))[-N_IN - 1 :]
    again = predict(cfg, ckpt, [str(p) for p in newest], tmp_path / "again.nc")
    assert again.read_bytes() == out.read_bytes()
    assert (tmp_path / "n.gif").stat().st_size > 0
