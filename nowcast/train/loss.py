"""Training losses over masked pixels: MSE and the HKO-7 balanced B-MSE.

Shapes: ``pred`` and ``target`` ``(B, T, 1, H, W)`` gray levels in [0, 1]; ``mask``
``(B, H, W)`` bool (pixels that count; see :mod:`nowcast.data.windows`).

Each sample's loss is its weighted squared error summed over the masked pixels of all its
frames, divided by ``T × (number of masked pixels)``; the batch loss is the mean over
samples. (The per-sample normalisation makes the loss of a batch the mean of the losses of
any split of it, so DDP ranks averaging their gradients reproduce one process on the whole
batch.)

B-MSE weights (HKO-7, docs/verification.md) come from the target rain rate R: 1 for R < 2 mm/h,
2 in [2, 5), 5 in [5, 10), 10 in [10, 30), 30 at ≥ 30.
"""

from __future__ import annotations

import torch

from nowcast.units import GrayScale
from nowcast.verification.metrics import BALANCE_EDGES_MMH, BALANCE_WEIGHTS


class BalancedWeights:
    """HKO-7 B-MSE weights from target gray levels, for one store's scale."""

    def __init__(self, scale: GrayScale):
        self.gray_thresholds = [float(g) for g in scale.mmh_to_gray(BALANCE_EDGES_MMH)]

    def __call__(self, target: torch.Tensor) -> torch.Tensor:
        """Weight of each target pixel, same shape as ``target`` (float32)."""
        w = torch.full_like(target, BALANCE_WEIGHTS[0], dtype=torch.float32)
        for g, weight in zip(self.gray_thresholds, BALANCE_WEIGHTS[1:]):
            w = torch.where(target >= g, torch.tensor(weight, dtype=w.dtype, device=w.device), w)
        return w


def masked_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    weights: BalancedWeights | None = None,
) -> torch.Tensor:
    """Scalar loss: per-sample (weighted) MSE over masked pixels, averaged over the batch."""
    err = (pred.float() - target.float()) ** 2
    if weights is not None:
        err = err * weights(target)
    m = mask[:, None, None].to(err.dtype)  # (B, 1, 1, H, W)
    per_sample = (err * m).flatten(1).sum(1)
    count = m.flatten(1).sum(1).clamp(min=1.0) * target.shape[1]
    return (per_sample / count).mean()


def make_loss(kind: str, scale: GrayScale):
    """``loss(pred, target, mask)`` for ``train.loss`` = 'mse' or 'bmse'."""
    weights = BalancedWeights(scale) if kind == "bmse" else None

    def loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_loss(pred, target, mask, weights)

    return loss
