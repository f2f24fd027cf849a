"""Baselines: persistence of a static field is perfect; pysteps extrapolation moves a blob the
right way and beats persistence on real FMI radar frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.errors import UserError
from nowcast.evaluate.baselines import Extrapolation, build_baselines, persistence
from nowcast.evaluate.metrics import MetricAccumulator
from nowcast.evaluate.scale import GrayScale
from nowcast.units import dbz_to_gray

MP = GrayScale(z_min=-10.0, z_max=60.0, a=200.0, b=1.6)


def _blob(cx: float, cy: float, size: int = 64, sigma: float = 5.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return 0.7 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))


def _centroid(field: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0 : field.shape[0], 0 : field.shape[1]]
    w = np.clip(field, 0, None)
    return np.array([(xx * w).sum() / w.sum(), (yy * w).sum() / w.sum()])


def test_persistence_of_a_static_field_scores_csi_one():
    rng = np.random.default_rng(0)
    field = torch.tensor(np.round(rng.random((32, 32)) * 255) / 255, dtype=torch.float32)
    inputs = field.expand(2, 5, 32, 32)
    forecast = persistence(inputs, 15)
    assert forecast.shape == (2, 15, 32, 32)
    acc = MetricAccumulator(15, [0.5, 2, 5, 10, 30], MP)
    acc.update(forecast, field.expand(2, 15, 32, 32), torch.ones(32, 32, dtype=torch.bool))
    r = acc.result()
    assert (r.hits > 0).all()  # every threshold does occur in the field
    np.testing.assert_array_equal(r.csi, 1.0)
    np.testing.assert_array_equal(r.mse, 0.0)


def test_persistence_repeats_the_last_input():
    inputs = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = persistence(inputs, 5)
    for k in range(5):
        torch.testing.assert_close(out[:, k], inputs[:, -1])


def test_extrapolation_advects_a_translated_blob_the_right_way():
    u, v = 2.0, -1.0  # pixels per frame, +x right, +y down (array rows)
    frames = np.stack([_blob(20 + u * t, 40 + v * t) for t in range(5)])
    ex = Extrapolation(n_frames=3)
    out = ex(torch.tensor(frames[None], dtype=torch.float32), 6)
    assert out.shape == (1, 6, 64, 64) and out.dtype == torch.float32
    assert torch.isfinite(out).all()  # outval 0: no NaN border
    start = _centroid(frames[-1])
    for k in range(6):
        np.testing.assert_allclose(
            _centroid(out[0, k].numpy()), start + (k + 1) * np.array([u, v]), atol=0.5
        )


def test_extrapolation_of_an_empty_window_is_empty_and_too_few_inputs_is_an_error():
    ex = Extrapolation(n_frames=3)
    assert not ex(torch.zeros(1, 5, 16, 16), 4).any()
    with pytest.raises(UserError, match="evaluate.extrapolation_frames"):
        Extrapolation(n_frames=4).forecast(np.zeros((3, 16, 16)), 2)
    with pytest.raises(UserError, match="unknown baseline 'nwp'"):
        build_baselines(["persistence", "nwp"])


def _fmi_gray(radar_dir, first: int, n: int) -> np.ndarray:
    """n consecutive FMI frames (dBZ, 5 min) → gray levels (HKO bounds), a rainy 200×200 crop."""
    import netCDF4

    files = sorted((radar_dir / "fmi_20160928_5min").glob("*.nc"))[first : first + n]
    frames = []
    for f in files:
        with netCDF4.Dataset(f) as nc:
            nc.set_auto_mask(False)
            dbz = np.asarray(nc["reflectivity"][0], dtype=np.float64)
        frames.append(np.nan_to_num(dbz_to_gray(dbz, -10.0, 60.0), nan=0.0))
    return np.stack(frames)[:, 600:800, 280:480]


def test_extrapolation_on_real_fmi_frames_beats_persistence_inside_the_domain(radar_dir):
    frames = _fmi_gray(radar_dir, 10, 8)  # 4 inputs, 4 to verify
    assert frames[:4].mean() > 0.2  # there is rain to move
    inputs = torch.tensor(frames[None, :4], dtype=torch.float32)
    ext = build_baselines(["extrapolation"], n_frames=3)["extrapolation"](inputs, 4)[0].numpy()
    per = persistence(inputs, 4)[0].numpy()
    assert np.isfinite(ext).all() and ext.min() >= 0 and ext.max() <= 1 + 1e-6
    inner = (slice(40, -40), slice(40, -40))  # away from the inflow border (outval 0)
    for k in range(4):
        obs = frames[4 + k]
        mse_ext = np.mean((ext[k] - obs)[inner] ** 2)
        mse_per = np.mean((per[k] - obs)[inner] ** 2)
        assert mse_ext < 0.6 * mse_per, (k, mse_ext, mse_per)
