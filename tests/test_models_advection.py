"""``model.advection``: a ConvLSTM forecasting on top of pysteps extrapolation."""

from __future__ import annotations

import pytest
import torch
from test_models_common import moving_blobs, tiny

from nowcast.errors import UserError
from nowcast.models import build
from nowcast.models.advection import MOTION_FRAMES, AdvectionPrior

pytest.importorskip("pysteps")
from nowcast.evaluate.baselines import build_baselines  # noqa: E402  (pysteps)
from nowcast.extrapolation.semilagrangian import Extrapolation  # noqa: E402


def _blobs() -> torch.Tensor:
    """(2, 5, 1, 32, 32): blobs moving 1 px a step, so LK finds a real motion."""
    return moving_blobs(2, 5, 32, 32, seed=1)


@pytest.mark.parametrize(
    ("motion", "baseline"), [("lk", "extrapolation"), ("proesmans", "extrapolation_proesmans")]
)
def test_prior_is_evaluates_extrapolation_baseline(motion, baseline):
    x = _blobs()
    want = build_baselines([baseline], n_frames=3)[baseline](x, 4)
    got = AdvectionPrior(motion)(x, 4)
    assert got.shape == (2, 4, 1, 32, 32) and got.dtype == x.dtype
    assert torch.equal(got, want)
    # the blob moved: the prior is not persistence
    assert (got[:, -1, 0] - x[:, -1, 0]).abs().max() > 0.2


@pytest.mark.parametrize("motion", ["lk", "proesmans"])
def test_untrained_residual_network_forecasts_exactly_the_extrapolation(motion):
    x = _blobs()
    cfg = tiny("convlstm", residual=True, advection=True, advection_motion=motion)
    model = build("convlstm", cfg).eval()
    with torch.no_grad():
        y = model(x, 4)
    frames = MOTION_FRAMES[motion]
    assert torch.equal(y, Extrapolation(frames, motion)(x, 4).clamp(0, 1))


def test_forecaster_reads_the_extrapolation():
    """Without ``residual`` the prior reaches the output only through the forecaster's new
    input conv, whose weights get a gradient only from a non-zero input."""
    x = _blobs()
    model = build("convlstm", tiny("convlstm", advection=True))
    conv_x = model.forecaster[0].conv_x
    assert conv_x is not None and conv_x.in_channels == model.frame_channels
    model(x, 3).square().mean().backward()
    assert conv_x.weight.grad is not None and conv_x.weight.grad.abs().sum() > 0
    plain = build("convlstm", tiny("convlstm"))
    assert plain.forecaster[0].conv_x is None


def test_cache_returns_the_same_and_stays_bounded():
    prior = AdvectionPrior(cache_windows=2)
    x = _blobs()
    first = prior(x, 3)
    assert len(prior._cache) == 2
    assert torch.equal(prior(x, 3), first)  # from the cache
    assert torch.equal(prior(x, 2), first[:, :2])  # n_out is part of the key
    prior(moving_blobs(1, 5, 32, 32, seed=7), 3)
    assert len(prior._cache) == 2


@pytest.mark.parametrize("name", ["predrnn", "mim"])
def test_only_convlstm_takes_advection(name):
    with pytest.raises(UserError, match=r"^model\.advection: only convlstm"):
        build(name, tiny(name, advection=True))


@pytest.mark.parametrize(("motion", "needs"), [("lk", 3), ("proesmans", 2)])
def test_too_few_inputs_name_the_key(motion, needs):
    cfg = tiny("convlstm", residual=True, advection=True, advection_motion=motion)
    model = build("convlstm", cfg)
    model(_blobs()[:, :needs], 1)  # enough
    with pytest.raises(
        UserError,
        match=rf"^model\.advection: the {motion} motion needs {needs} input frames, "
        rf"got {needs - 1} \(data\.n_in\)",
    ):
        model(_blobs()[:, : needs - 1], 2)


def test_advection_motion_without_advection_is_refused():
    with pytest.raises(UserError, match=r"^model\.advection_motion: 'proesmans' is only used"):
        build("convlstm", tiny("convlstm", advection_motion="proesmans"))


def test_matching_onto_the_advected_frames_keeps_each_leads_extrapolated_values():
    """``model.matching_reference: advected``: every forecast frame takes the value
    distribution of its own lead's extrapolated frame, not the last input's: its n wet
    pixels get that frame's n largest values, its dry ones (at its minimum) that frame's
    minimum. The untrained network is the extrapolation itself."""
    x = _blobs()
    cfg = tiny(
        "convlstm",
        residual=True,
        advection=True,
        advection_motion="proesmans",
        probability_matching=True,
        matching_reference="advected",
    )
    model = build("convlstm", cfg).eval()
    want = Extrapolation(2, "proesmans")(x, 4).clamp(0, 1)
    with torch.no_grad():
        assert torch.equal(model(x, 4), want)
        torch.manual_seed(0)
        for p in model.parameters():  # a network that changes the extrapolation
            p.add_(0.05 * torch.randn_like(p))
        y = model(x, 4)
    assert not torch.equal(y, want)
    ys, ws = y.reshape(2, 4, -1).sort(-1).values, want.reshape(2, 4, -1).sort(-1).values
    last = x[:, -1, 0].reshape(2, -1).sort(-1).values
    for i in range(2):
        for k in range(4):
            dry = int((y[i, k] == y[i, k].min()).sum())
            assert torch.equal(ys[i, k, dry:], ws[i, k, dry:])  # the wet pixels
            assert (ys[i, k, :dry] == ws[i, k, 0]).all()  # the dry ones
            assert not torch.equal(ys[i, k, dry:], last[i, dry:])


@pytest.mark.parametrize(
    "keys", [{"advection": False, "probability_matching": True}, {"probability_matching": False}]
)
def test_matching_onto_advected_frames_needs_advection_and_matching(keys):
    cfg = {"residual": True, "advection": True, "matching_reference": "advected", **keys}
    with pytest.raises(UserError, match=r"^model\.matching_reference: 'advected' matches onto"):
        build("convlstm", tiny("convlstm", **cfg))
