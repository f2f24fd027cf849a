"""Training losses: HKO-7 B-MSE weights against hand-computed levels, masking, batch splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.train.loss import BalancedWeights, make_loss, masked_loss
from nowcast.units import GrayScale

HKO = GrayScale(z_min=-10.0, z_max=60.0, a=58.53, b=1.56)


def test_bmse_weights_step_at_the_hko7_gray_levels():
    # docs/verification.md: 2, 5, 10, 30 mm/h ≈ 22.37, 28.58, 33.27, 40.72 dBZ with a=58.53, b=1.56;
    # gray = (dBZ + 10)/70 → stored levels 255·gray = 117.92, 140.54, 157.63, 184.77
    levels = torch.arange(256, dtype=torch.float32) / 255
    w = BalancedWeights(HKO)(levels)
    expected = {0: 1, 117: 1, 118: 2, 140: 2, 141: 5, 157: 5, 158: 10, 184: 10, 185: 30, 255: 30}
    for level, weight in expected.items():
        assert float(w[level]) == weight, level


def test_bmse_weights_match_a_literal_rate_table():
    # every stored level: gray → dBZ → mm/h in float64 (REFERENCE formulas), then the table
    levels = np.arange(256) / 255.0
    dbz = -10.0 + levels * 70.0
    rate = (10 ** (dbz / 10) / 58.53) ** (1 / 1.56)
    table = np.select([rate >= 30, rate >= 10, rate >= 5, rate >= 2], [30, 10, 5, 2], default=1)
    w = BalancedWeights(HKO)(torch.from_numpy(levels.astype(np.float32)))
    np.testing.assert_array_equal(w.numpy(), table)


def _literal_loss(pred, target, mask, weights=None):
    """Loop over samples: Σ w·(p − y)² over masked pixels of all frames / (T · #masked)."""
    out = []
    for b in range(pred.shape[0]):
        num, count = 0.0, 0
        for t in range(pred.shape[1]):
            for i in range(pred.shape[3]):
                for j in range(pred.shape[4]):
                    if mask[b, i, j]:
                        y = float(target[b, t, 0, i, j])
                        w = 1.0 if weights is None else float(weights(target[b, t, 0, i, j]))
                        num += w * (float(pred[b, t, 0, i, j]) - y) ** 2
                        count += 1
        out.append(num / count)
    return sum(out) / len(out)


@pytest.mark.parametrize("kind", ["mse", "bmse"])
def test_masked_loss_matches_a_literal_loop(kind):
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 4, 1, 5, 6, generator=g)
    target = (torch.rand(3, 4, 1, 5, 6, generator=g) * 255).round() / 255
    mask = torch.rand(3, 5, 6, generator=g) > 0.3
    loss = make_loss(kind, HKO)(pred, target, mask)
    weights = BalancedWeights(HKO) if kind == "bmse" else None
    assert float(loss) == pytest.approx(_literal_loss(pred, target, mask, weights), rel=1e-5)


def test_masked_pixels_do_not_count():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 3, 1, 4, 4, generator=g, requires_grad=True)
    target = torch.rand(2, 3, 1, 4, 4, generator=g)
    mask = torch.ones(2, 4, 4, dtype=torch.bool)
    mask[:, 0, :] = False
    loss = masked_loss(pred, target, mask)
    loss.backward()
    assert torch.all(pred.grad[:, :, :, 0, :] == 0) and torch.all(pred.grad[:, :, :, 1:, :] != 0)
    changed = pred.detach().clone()
    changed[:, :, :, 0, :] = 1e3  # anything at masked pixels
    assert float(masked_loss(changed, target, mask)) == pytest.approx(
        float(loss.detach()), rel=1e-7
    )


def test_loss_of_a_batch_is_the_mean_of_its_halves():
    # what makes DDP (gradients averaged over ranks) equal one process on the whole batch
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(4, 3, 1, 6, 6, generator=g), torch.rand(4, 3, 1, 6, 6, generator=g)
    mask = torch.rand(4, 6, 6, generator=g) > torch.tensor([0.1, 0.5, 0.7, 0.9]).view(4, 1, 1)
    whole = masked_loss(pred, target, mask)
    halves = (
        masked_loss(pred[0::2], target[0::2], mask[0::2])
        + masked_loss(pred[1::2], target[1::2], mask[1::2])
    ) / 2
    assert float(whole) == pytest.approx(float(halves), rel=1e-6)
