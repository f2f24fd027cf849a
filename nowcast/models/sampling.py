"""Scheduled sampling (Bengio et al. 2015) with PredRNN's linear schedule, built on-device.

During training the recurrent forecaster is fed, at each step, either the true previous
frame (teacher forcing) or its own prediction. With PredRNN's linear schedule the
teacher-forcing probability is ``max(0, 1 − step / iters)``: 1 at the first optimiser
step, 0 from step ``iters`` on (``iters = 0``: never). The mask is drawn in one vectorised
``torch.rand`` call on the model's device — no Python loops, no CPU round trip.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nowcast.config.model import ModelConfig


def teacher_forcing_prob(step: int, iters: int) -> float:
    """Probability of feeding the true frame at optimiser step ``step`` (linear 1 → 0 over ``iters``)."""
    if iters <= 0:
        return 0.0
    return max(0.0, 1.0 - step / iters)


def scheduled_sampling_mask(
    batch: int,
    n_out: int,
    step: int,
    iters: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Teacher-forcing mask (batch, n_out − 1), bool, on ``device``.

    Entry ``[b, k]`` is True with probability :func:`teacher_forcing_prob` ``(step, iters)``,
    independently per sample and step: then the true future frame ``k`` (not the model's
    prediction of it) is the input for predicting frame ``k + 1``. ``generator`` (on
    ``device``) makes draws reproducible.
    """
    p = teacher_forcing_prob(step, iters)
    shape = (batch, max(n_out - 1, 0))
    if p >= 1.0:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if p <= 0.0:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    return torch.rand(shape, device=device, generator=generator) < p


def sampling_mask_for(
    cfg: ModelConfig,
    batch: int,
    n_out: int,
    step: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """:func:`scheduled_sampling_mask` with the schedule length from ``cfg.sampling_iters``."""
    return scheduled_sampling_mask(batch, n_out, step, cfg.sampling_iters, device, generator)
