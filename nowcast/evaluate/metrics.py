"""Streaming verification metrics (HKO-7 protocol), vectorised in torch on the model's device.

A :class:`MetricAccumulator` is fed batches of forecasts and observations and keeps only
sums: contingency tables (hits H, misses M, false alarms F, correct negatives R) per
(lead time, threshold), and error sums per lead time. Scores are computed once, from the
summed tables (:func:`categorical_scores`), never averaged over batches.

Conventions
- Values are gray levels P in [0, 1] (``uint8 / 255`` for stored frames). Thresholds are
  given in mm/h and converted to gray levels through the store's Z–R relation and gray
  mapping (:class:`~nowcast.evaluate.scale.GrayScale`). An event is value ≥ threshold.
- A pixel counts where the mask is true (inside ``coverage``, not in that month's
  ``noise_mask``) and both forecast and observation are finite; so H + M + F + R equals the
  number of such pixels.
- Gray-space errors follow HKO-7: per frame, summed over the counting pixels, then averaged
  over sequences (``mse``, ``mae``); ``b_mse`` / ``b_mae`` weight each pixel by the observed
  rain rate: 1 below 2 mm/h, 2 in [2, 5), 5 in [5, 10), 10 in [10, 30), 30 at ≥ 30.
- Rain-rate errors (``mse_rate`` [(mm/h)²], ``mae_rate`` [mm/h]) are per-pixel means over the
  counting pixels (the ConvLSTM paper's "rainfall MSE"); the forecast is clipped to the gray
  range [0, 1] before conversion.
- A division by zero gives NaN (e.g. CSI at a threshold that never occurs), kept as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nowcast.evaluate.scale import GrayScale

BALANCE_EDGES_MMH = (2.0, 5.0, 10.0, 30.0)
"""Observed rain rates [mm/h] at which the B-MSE / B-MAE weight steps up (HKO-7)."""
BALANCE_WEIGHTS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""B-MSE / B-MAE weights below the first edge, then from each edge on (HKO-7)."""

CATEGORICAL = ("csi", "hss", "pod", "far", "ets", "bias")


def categorical_scores(hits, misses, false_alarms, correct_negatives) -> dict[str, np.ndarray]:
    """CSI, HSS, POD, FAR, ETS (= GSS) and BIAS from contingency counts (any equal shapes).

    Formulas (REFERENCE.md): POD = H/(H+M); FAR = F/(H+F); CSI = H/(H+M+F);
    BIAS = (H+F)/(H+M); HSS = 2(HR − MF)/((H+M)(M+R) + (H+F)(F+R));
    ETS = (H − H_r)/(H+M+F − H_r) with H_r = (H+M)(H+F)/N. 0/0 gives NaN. float64 arrays.
    """
    h, m, f, r = (
        np.asarray(v, dtype=np.float64) for v in (hits, misses, false_alarms, correct_negatives)
    )
    n = h + m + f + r
    with np.errstate(divide="ignore", invalid="ignore"):
        h_random = (h + m) * (h + f) / n
        return {
            "csi": h / (h + m + f),
            "hss": 2.0 * (h * r - m * f) / ((h + m) * (m + r) + (h + f) * (f + r)),
            "pod": h / (h + m),
            "far": f / (h + f),
            "ets": (h - h_random) / (h + m + f - h_random),
            "bias": (h + f) / (h + m),
        }


@dataclass
class Scores:
    """Scores of one method over the whole split. L lead times, K thresholds.

    ``hits`` … ``correct_negatives``: int64 (L, K); ``csi`` … ``bias``: float64 (L, K);
    ``mse``, ``mae``, ``b_mse``, ``b_mae``: float64 (L,) gray-level errors summed over the
    counting pixels of a frame and averaged over sequences; ``mse_rate`` [(mm/h)²] and
    ``mae_rate`` [mm/h]: float64 (L,) per-pixel means; ``pixels``: int64 (L,) counting pixels.
    """

    thresholds_mmh: list[float]
    n_sequences: int
    hits: np.ndarray
    misses: np.ndarray
    false_alarms: np.ndarray
    correct_negatives: np.ndarray
    pixels: np.ndarray
    mse: np.ndarray
    mae: np.ndarray
    b_mse: np.ndarray
    b_mae: np.ndarray
    mse_rate: np.ndarray
    mae_rate: np.ndarray
    csi: np.ndarray
    hss: np.ndarray
    pod: np.ndarray
    far: np.ndarray
    ets: np.ndarray
    bias: np.ndarray


class MetricAccumulator:
    """Running sums for one method over a split (nothing per sample is kept).

    Args:
        n_leads: L, forecast steps per window.
        thresholds_mmh: K event thresholds in mm/h (each converted to a gray level).
        scale: the store's gray scale.
        device: where the sums live (the model's device; batches are moved there).
    """

    def __init__(
        self,
        n_leads: int,
        thresholds_mmh: Sequence[float],
        scale: GrayScale,
        device: torch.device | str = "cpu",
    ):
        self.n_leads = int(n_leads)
        self.thresholds_mmh = [float(t) for t in thresholds_mmh]
        self.scale = scale
        self.device = torch.device(device)
        self.thr_gray = torch.as_tensor(
            scale.mmh_to_gray(self.thresholds_mmh), dtype=torch.float64, device=self.device
        )
        edges = torch.as_tensor(scale.mmh_to_gray(BALANCE_EDGES_MMH), dtype=torch.float64)
        steps = torch.diff(torch.as_tensor(BALANCE_WEIGHTS, dtype=torch.float64))
        self._edges = edges.to(self.device)
        self._steps = steps.to(self.device)
        L, K = self.n_leads, len(self.thresholds_mmh)
        i64 = {"dtype": torch.int64, "device": self.device}
        f64 = {"dtype": torch.float64, "device": self.device}
        self._hits = torch.zeros(L, K, **i64)
        self._misses = torch.zeros(L, K, **i64)
        self._false = torch.zeros(L, K, **i64)
        self._pixels = torch.zeros(L, **i64)
        self._sums = torch.zeros(6, L, **f64)  # se, ae, w·se, w·ae, se_rate, ae_rate
        self.n_sequences = 0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, obs: torch.Tensor, mask: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: forecast gray levels (B, L, H, W) float (NaN = no forecast there).
            obs: observed gray levels (B, L, H, W) float (NaN = no observation there).
            mask: pixels that count, bool (B, H, W) — or (H, W) for the whole batch.
        """
        if pred.shape != obs.shape or pred.ndim != 4 or pred.shape[1] != self.n_leads:
            raise ValueError(
                f"expected pred and obs of shape (B, {self.n_leads}, H, W), got "
                f"{tuple(pred.shape)} and {tuple(obs.shape)}"
            )
        dev = self.device
        pred = pred.to(dev)
        obs = obs.to(dev, dtype=pred.dtype)
        mask = mask.to(dev, dtype=torch.bool)
        mask = mask[:, None] if mask.ndim == 3 else mask[None, None]
        valid = mask & torch.isfinite(pred) & torch.isfinite(obs)  # (B, L, H, W)

        thr = self.thr_gray.to(pred.dtype)
        p_evt = pred[..., None] >= thr  # (B, L, H, W, K); NaN compares False
        o_evt = obs[..., None] >= thr
        v = valid[..., None]
        dims = (0, 2, 3)
        self._hits += (p_evt & o_evt & v).sum(dims)
        self._misses += (~p_evt & o_evt & v).sum(dims)
        self._false += (p_evt & ~o_evt & v).sum(dims)
        self._pixels += valid.sum(dims)

        zero = torch.zeros((), dtype=pred.dtype, device=dev)
        diff = torch.where(valid, pred - obs, zero)
        weight = 1.0 + (
            (obs[..., None] >= self._edges.to(pred.dtype)) * self._steps.to(pred.dtype)
        ).sum(-1)
        rate_diff = torch.where(
            valid, self.scale.gray_to_mmh(pred.clamp(0.0, 1.0)) - self.scale.gray_to_mmh(obs), zero
        )
        se, ae = diff.square(), diff.abs()
        terms = torch.stack((se, ae, weight * se, weight * ae, rate_diff.square(), rate_diff.abs()))
        self._sums += terms.sum(dim=(1, 3, 4), dtype=torch.float64)
        self.n_sequences += int(pred.shape[0])

    def result(self) -> Scores:
        """Scores from the summed tables (float64 numpy, NaN where undefined)."""
        hits, misses, false = (t.cpu().numpy() for t in (self._hits, self._misses, self._false))
        pixels = self._pixels.cpu().numpy()
        cn = pixels[:, None] - hits - misses - false
        sums = self._sums.cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            per_seq = sums[:4] / np.float64(self.n_sequences)
            per_pix = sums[4:] / pixels.astype(np.float64)
        return Scores(
            thresholds_mmh=list(self.thresholds_mmh),
            n_sequences=self.n_sequences,
            hits=hits,
            misses=misses,
            false_alarms=false,
            correct_negatives=cn,
            pixels=pixels,
            mse=per_seq[0],
            mae=per_seq[1],
            b_mse=per_seq[2],
            b_mae=per_seq[3],
            mse_rate=per_pix[0],
            mae_rate=per_pix[1],
            **categorical_scores(hits, misses, false, cn),
        )
