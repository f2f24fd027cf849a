"""Validation during training: the verification metrics over the whole validation split.

Scores (from :class:`nowcast.verification.metrics.MetricAccumulator`, HKO-7 conventions: gray
errors summed over the counting pixels of a frame and averaged over sequences; contingency
tables summed over the split before any score is computed; event = rate ≥ threshold)::

    mse, bmse    mean over lead times of the per-lead MSE / B-MSE
    csi@<thr>    CSI at each threshold [mm/h], from the tables summed over all lead times
    csi_mean     mean of the csi@ values (NaN ones left out)

Under DDP every process scores its share of the split (windows r, r + world, …) and the
sums are added over processes before any score is computed, so the scores are those of
the whole split (see :meth:`nowcast.train.trainer.Trainer.evaluate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

from nowcast.forecast import ForecastMethod
from nowcast.units import GrayScale
from nowcast.verification.metrics import MetricAccumulator, categorical_scores

HIGHER_IS_BETTER = {"csi_mean": True, "mse": False, "bmse": False}


def metric_name(threshold: float) -> str:
    """Name of the CSI score at ``threshold`` mm/h, e.g. ``csi@0.5``."""
    return f"csi@{threshold:g}"


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (CSI) or worse (MSE, B-MSE)."""
    return metric.startswith("csi") or HIGHER_IS_BETTER.get(metric, False)


def summarize(acc: MetricAccumulator) -> dict[str, float]:
    """The validation scores (module docstring) of a filled accumulator, as plain floats."""
    s = acc.result()
    tables = [np.sum(t, axis=0) for t in (s.hits, s.misses, s.false_alarms, s.correct_negatives)]
    csi = categorical_scores(*tables)["csi"]
    out = {"mse": float(np.mean(s.mse)), "bmse": float(np.mean(s.b_mse))}
    for t, c in zip(s.thresholds_mmh, csi):
        out[metric_name(t)] = float(c)
    finite = [float(c) for c in csi if not math.isnan(c)]
    out["csi_mean"] = float(np.mean(finite)) if finite else math.nan
    return out


@torch.no_grad()
def score(
    forecast: ForecastMethod,
    batches: Iterable,
    n_out: int,
    thresholds_mmh: list[float],
    scale: GrayScale,
    device: torch.device,
    combine: Callable[[list[torch.Tensor]], None] | None = None,
) -> dict[str, float]:
    """Scores of the forecast method ``forecast`` (:mod:`nowcast.forecast`) over ``batches``
    of ``(inputs, targets, mask)``, ``n_out`` leads. ``combine(sums)``: adds the accumulator's
    sums in place over processes that scored other shares (e.g.
    :func:`nowcast.train.ddp.all_sum_`)."""
    acc = MetricAccumulator(n_out, thresholds_mmh, scale, device)
    for inputs, targets, mask in batches:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        pred = forecast(inputs, n_out).float()
        acc.update(pred[:, :, 0].contiguous(), targets[:, :, 0].contiguous(), mask.to(device))
    if combine is not None:
        state = acc.state()
        combine(state)
        acc.load_state(state)
    return summarize(acc)
