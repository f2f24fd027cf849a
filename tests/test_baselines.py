"""Baselines: persistence of a static field is perfect; pysteps extrapolation moves a blob the
right way and beats persistence on real FMI radar frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.errors import UserError
from nowcast.evaluate.baselines import build_baselines
from nowcast.extrapolation.semilagrangian import Extrapolation
from nowcast.forecast import persistence
from nowcast.units import GrayScale, dbz_to_gray
from nowcast.verification.metrics import MetricAccumulator

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
    inputs = field.expand(2, 5, 1, 32, 32)
    forecast = persistence(inputs, 15)
    assert forecast.shape == (2, 15, 1, 32, 32)
    acc = MetricAccumulator(15, [0.5, 2, 5, 10, 30], MP)
    acc.update(forecast[:, :, 0], field.expand(2, 15, 32, 32), torch.ones(32, 32, dtype=torch.bool))
    r = acc.result()
    assert (r.hits > 0).all()  # every threshold does occur in the field
    np.testing.assert_array_equal(r.csi, 1.0)
    np.testing.assert_array_equal(r.mse, 0.0)


def test_persistence_repeats_the_last_input():
    inputs = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 1, 4, 4)
    out = persistence(inputs, 5)
    for k in range(5):
        torch.testing.assert_close(out[:, k], inputs[:, -1])


# Proesmans' smoothness term shortens the flow of a lone smooth blob a little (~5 %)
@pytest.mark.parametrize(("motion", "atol"), [("lk", 0.5), ("proesmans", 1.0)])
def test_extrapolation_advects_a_translated_blob_the_right_way(motion, atol):
    u, v = 2.0, -1.0  # pixels per frame, +x right, +y down (array rows)
    frames = np.stack([_blob(20 + u * t, 40 + v * t) for t in range(5)])
    ex = Extrapolation(n_frames=3, motion=motion)
    out = ex(torch.tensor(frames[None, :, None], dtype=torch.float32), 6)
    assert out.shape == (1, 6, 1, 64, 64) and out.dtype == torch.float32
    assert torch.isfinite(out).all()  # outval 0: no NaN border
    start = _centroid(frames[-1])
    for k in range(6):
        np.testing.assert_allclose(
            _centroid(out[0, k, 0].numpy()), start + (k + 1) * np.array([u, v]), atol=atol
        )


def test_extrapolation_of_an_empty_window_is_empty_and_too_few_inputs_is_an_error():
    ex = Extrapolation(n_frames=3)
    assert not ex(torch.zeros(1, 5, 1, 16, 16), 4).any()
    with pytest.raises(UserError, match="evaluate.extrapolation_frames"):
        Extrapolation(n_frames=4, key="evaluate.extrapolation_frames").forecast(
            np.zeros((3, 16, 16)), 2
        )
    with pytest.raises(UserError, match="unknown baseline 'nwp'"):
        build_baselines(["persistence", "nwp"])


def test_proesmans_baseline_is_pysteps_proesmans_flow_of_the_last_two_inputs():
    """Against a literal pysteps call: Proesmans flow of frames t−1, t, then advection."""
    from pysteps import motion, nowcasts

    rng = np.random.default_rng(3)
    frames = np.stack([_blob(20 + 1.5 * t, 30 + 0.5 * t) for t in range(4)])
    frames[:2] = rng.random((2, 64, 64))  # noise in the older inputs: must be ignored
    velocity = motion.get_method("proesmans")(frames[-2:])
    want = nowcasts.get_method("extrapolation")(
        frames[-1], velocity, 3, extrap_kwargs={"outval": 0.0}
    )
    got = build_baselines(["extrapolation_proesmans"])["extrapolation_proesmans"](
        torch.tensor(frames[None, :, None]), 3
    )
    np.testing.assert_allclose(got[0, :, 0].numpy(), want, rtol=0, atol=1e-6)
    with pytest.raises(
        UserError, match=r"^data\.n_in: the proesmans motion needs 2 input frames, got 1$"
    ):
        Extrapolation(motion="proesmans").forecast(frames[-1:], 2)


def test_a_flow_that_stays_non_finite_is_no_motion():
    """The guard against a non-finite pysteps flow (see ``Extrapolation._velocity``): a
    motion method that returns NaN on every try gives a forecast that does not move."""
    frames = np.stack([_blob(20 + t, 30) for t in range(3)])
    ex = Extrapolation(motion="proesmans")
    calls = []

    def nan_flow(f, verbose=False):
        calls.append(f.shape)
        return np.full((2, *f.shape[1:]), np.nan)

    ex._motion = nan_flow
    out = ex.forecast(frames, 2)
    assert len(calls) == 2 and calls[0] == (2, 64, 64)  # tried twice, on the last 2 frames
    np.testing.assert_allclose(out, np.stack([frames[-1]] * 2), atol=1e-12)


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


@pytest.mark.parametrize("name", ["extrapolation", "extrapolation_proesmans"])
def test_extrapolation_on_real_fmi_frames_beats_persistence_inside_the_domain(radar_dir, name):
    frames = _fmi_gray(radar_dir, 10, 8)  # 4 inputs, 4 to verify
    assert frames[:4].mean() > 0.2  # there is rain to move
    inputs = torch.tensor(frames[None, :4, None], dtype=torch.float32)
    ext = build_baselines([name], n_frames=3)[name](inputs, 4)[0, :, 0].numpy()
    per = persistence(inputs, 4)[0, :, 0].numpy()
    assert np.isfinite(ext).all() and ext.min() >= 0 and ext.max() <= 1 + 1e-6
    inner = (slice(40, -40), slice(40, -40))  # away from the inflow border (outval 0)
    for k in range(4):
        obs = frames[4 + k]
        mse_ext = np.mean((ext[k] - obs)[inner] ** 2)
        mse_per = np.mean((per[k] - obs)[inner] ** 2)
        assert mse_ext < 0.6 * mse_per, (k, mse_ext, mse_per)
