"""Probability matching (``model.probability_matching``) against pysteps' own function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models_common import NAMES, moving_blobs, tiny

from nowcast.models import build
from nowcast.models.probmatch import match_empirical_cdf

probmatching = pytest.importorskip("pysteps.postprocessing.probmatching")


def _pair(seed: int, wet_pred: float, wet_obs: float) -> tuple[np.ndarray, np.ndarray]:
    """(pred (2, 3, 1, 24, 20), obs (2, 1, 24, 20)): continuous values with dry (0) areas."""
    rng = np.random.default_rng(seed)
    pred = rng.random((2, 3, 1, 24, 20))
    pred[pred > wet_pred] = 0.0
    obs = rng.random((2, 1, 24, 20)) * 0.8 + 0.1
    obs[rng.random(obs.shape) > wet_obs] = 0.05  # a "dry" minimum that is not 0
    return pred, obs


@pytest.mark.parametrize(
    ("wet_pred", "wet_obs"),
    [(0.3, 0.7), (0.7, 0.3), (1.0, 1.0)],
    ids=["obs-wetter", "pred-wetter", "all-wet"],
)
def test_matches_pysteps_nonparam_match_empirical_cdf(wet_pred, wet_obs):
    pred, obs = _pair(3, wet_pred, wet_obs)
    out = match_empirical_cdf(torch.from_numpy(pred), torch.from_numpy(obs)).numpy()
    for b in range(2):
        for t in range(3):
            want = probmatching.nonparam_match_empirical_cdf(pred[b, t, 0], obs[b, 0])
            np.testing.assert_array_equal(out[b, t, 0], want)


def test_keeps_ranks_and_takes_the_observed_values():
    pred, obs = _pair(4, 1.0, 1.0)
    out = match_empirical_cdf(torch.from_numpy(pred), torch.from_numpy(obs)).numpy()
    for b in range(2):
        for t in range(3):
            np.testing.assert_array_equal(np.sort(out[b, t].ravel()), np.sort(obs[b].ravel()))
            assert np.array_equal(
                np.argsort(out[b, t].ravel(), kind="stable"),
                np.argsort(pred[b, t].ravel(), kind="stable"),
            )


def test_half_precision_is_matched_in_float32():
    pred, obs = _pair(5, 0.5, 0.8)
    p32, o32 = torch.from_numpy(pred).float(), torch.from_numpy(obs).float()
    out = match_empirical_cdf(p32.bfloat16(), o32)
    assert out.dtype == torch.bfloat16
    want = match_empirical_cdf(p32.bfloat16().float(), o32).bfloat16()
    assert torch.equal(out, want)


@pytest.mark.parametrize("name", NAMES)
def test_model_applies_it_in_eval_mode_only(name):
    torch.manual_seed(0)
    x = moving_blobs(2, 4, 8, 8, seed=2)
    plain = build(name, tiny(name))
    matched = build(name, tiny(name, probability_matching=True))
    matched.load_state_dict(plain.state_dict())
    with torch.no_grad():
        raw_eval = plain.eval()(x, 3)
        assert torch.equal(matched.eval()(x, 3), match_empirical_cdf(raw_eval, x[:, -1]))
        assert torch.equal(matched.train()(x, 3), plain.train()(x, 3))
