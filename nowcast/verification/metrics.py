"""Streaming verification metrics (HKO-7 protocol), vectorised in torch on the model's device.

A :class:`MetricAccumulator` is fed batches of forecasts and observations and keeps only
sums: contingency tables (hits H, misses M, false alarms F, correct negatives R) per
(lead time, threshold), and error sums per lead time. Scores are computed once, from the
summed tables (:func:`categorical_scores`), never averaged over batches.

Conventions
- Values are gray levels P in [0, 1] (``uint8 / 255`` for stored frames). Thresholds are
  given in mm/h and converted to gray levels through the store's Z–R relation and gray
  mapping (:class:`~nowcast.units.GrayScale`). An event is value ≥ threshold.
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

from nowcast.units import GrayScale

BALANCE_EDGES_MMH = (2.0, 5.0, 10.0, 30.0)
"""Observed rain rates [mm/h] at which the B-MSE / B-MAE weight steps up (HKO-7)."""
BALANCE_WEIGHTS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""B-MSE / B-MAE weights below the first edge, then from each edge on (HKO-7)."""

CATEGORICAL = ("csi", "hss", "pod", "far", "ets", "bias")


def categorical_scores(hits, misses, false_alarms, correct_negatives) -> dict[str, np.ndarray]:
    """CSI, HSS, POD, FAR, ETS (= GSS) and BIAS from contingency counts (any equal shapes).

    Formulas (docs/verification.md): POD = H/(H+M); FAR = F/(H+F); CSI = H/(H+M+F);
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


def _count_reached(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """How many of the increasing ``levels`` each value reaches (value ≥ level), int32, same
    shape as ``values``; NaN reaches none. Levels are compared in the values' dtype."""
    levels = levels.to(values.dtype)
    count = (values >= levels[0]).to(torch.int32)
    for level in levels[1:]:
        count += values >= level
    return count


@dataclass
class ObservedBatch:
    """A batch of observations prepared once and shared by every method scored against it.

    ``obs`` and ``rate`` (B·L, P) with P = H·W pixels, NaN replaced by 0; ``code`` int32
    (B, L, H, W): the joint-histogram bin of each pixel before the forecast's level is added
    (lead·(K+1)² + observed level, or the discard block for pixels that do not count);
    ``weights`` (B·L, P, 2): 1 and the B-MSE weight where a pixel counts, 0 elsewhere.
    """

    shape: tuple[int, int, int, int]
    obs: torch.Tensor
    rate: torch.Tensor
    code: torch.Tensor
    weights: torch.Tensor


class MetricAccumulator:
    """Running sums for one method over a split (nothing per sample is kept).

    The contingency tables are kept as one joint histogram per lead time of
    (number of thresholds the forecast reaches, number the observation reaches), a
    (K+1)×(K+1) table filled with one ``bincount`` per batch; since events are nested
    (≥ a higher threshold implies ≥ every lower one), H, M, F and R at threshold k are sums of
    its blocks. Error sums are per-frame dot products of the error terms with the
    (mask, mask·weight) columns, one batched matmul per batch.

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
        f64 = {"dtype": torch.float64, "device": self.device}
        self.thr_gray = torch.as_tensor(scale.mmh_to_gray(self.thresholds_mmh), **f64)
        self._edges = torch.as_tensor(scale.mmh_to_gray(BALANCE_EDGES_MMH), **f64)
        self._weights = torch.as_tensor(BALANCE_WEIGHTS, **f64)
        self._bins = len(self.thresholds_mmh) + 1
        block = self._bins * self._bins
        self._discard = self.n_leads * block  # one extra block for pixels that do not count
        self._joint = torch.zeros(self._discard + block, dtype=torch.int64, device=self.device)
        self._sums = torch.zeros(6, self.n_leads, **f64)  # se, ae, w·se, w·ae, se_rate, ae_rate
        self.n_sequences = 0

    @torch.no_grad()
    def observe(
        self, obs: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype | None = None
    ) -> ObservedBatch:
        """Prepare observed gray levels (B, L, H, W) and a pixel mask (B, H, W) or (H, W)
        for :meth:`update_observed` (NaN observations do not count). ``dtype``: that of
        the forecasts (default: the observations')."""
        if obs.ndim != 4 or obs.shape[1] != self.n_leads:
            raise ValueError(
                f"expected observations of shape (B, {self.n_leads}, H, W), got {tuple(obs.shape)}"
            )
        B, L, H, W = obs.shape
        obs = obs.to(self.device, dtype=dtype or obs.dtype)
        mask = mask.to(self.device, dtype=torch.bool)
        mask = mask[:, None] if mask.ndim == 3 else mask[None, None]
        valid = mask & torch.isfinite(obs)
        obs = torch.where(valid, obs, 0.0)
        lead = torch.arange(L, device=self.device, dtype=torch.int32).view(1, -1, 1, 1)
        code = torch.where(valid, lead * self._bins**2, self._discard)
        code += torch.where(valid, _count_reached(obs, self.thr_gray), 0)
        weight = self._weights.to(obs.dtype)[_count_reached(obs, self._edges)]
        weights = torch.stack((valid.to(obs.dtype), valid * weight), dim=-1)
        return ObservedBatch(
            shape=(B, L, H, W),
            obs=obs.view(B * L, H * W),
            rate=self.scale.gray_to_mmh(obs).view(B * L, H * W),
            code=code,
            weights=weights.view(B * L, H * W, 2),
        )

    def update(self, pred: torch.Tensor, obs: torch.Tensor, mask: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: forecast gray levels (B, L, H, W) float (NaN = no forecast there).
            obs: observed gray levels (B, L, H, W) float (NaN = no observation there).
            mask: pixels that count, bool (B, H, W) — or (H, W) for the whole batch.
        """
        self.update_observed(pred, self.observe(obs, mask, dtype=pred.dtype))

    @torch.no_grad()
    def update_observed(self, pred: torch.Tensor, ob: ObservedBatch) -> None:
        """Add a batch of forecasts (B, L, H, W) against prepared observations."""
        if tuple(pred.shape) != ob.shape:
            raise ValueError(f"forecast shape {tuple(pred.shape)} ≠ observation shape {ob.shape}")
        B, L, H, W = ob.shape
        pred = pred.to(self.device, dtype=ob.obs.dtype)
        code, weights = ob.code, ob.weights
        if bool(torch.isnan(pred).any()):  # rare: leave those pixels out for this method
            finite = torch.isfinite(pred)
            pred = torch.where(finite, pred, 0.0)
            code = torch.where(finite, code, self._discard)
            weights = weights * finite.view(B * L, H * W, 1)
        level = _count_reached(pred, self.thr_gray)
        code = torch.add(code, level, alpha=self._bins)
        self._joint += torch.bincount(code.view(-1), minlength=self._joint.numel())

        pred = pred.reshape(B * L, H * W)
        diff = pred - ob.obs
        rate_diff = self.scale.gray_to_mmh(pred.clamp(0.0, 1.0)) - ob.rate
        terms = torch.stack((diff.square(), diff.abs(), rate_diff.square(), rate_diff.abs()), dim=1)
        sums = torch.bmm(terms, weights).view(B, L, 4, 2).to(torch.float64).sum(0)  # (L, 4, 2)
        self._sums += torch.stack(
            (
                sums[:, 0, 0],
                sums[:, 1, 0],
                sums[:, 0, 1],
                sums[:, 1, 1],
                sums[:, 2, 0],
                sums[:, 3, 0],
            )
        )
        self.n_sequences += B

    def state(self) -> list[torch.Tensor]:
        """The running sums as tensors on ``device`` (joint histogram, error sums, and the
        number of sequences): summing them element-wise over accumulators of the same
        settings — e.g. ``torch.distributed.all_reduce`` over processes that each scored a
        share of a split, then :meth:`load_state` — gives the accumulator of the whole split."""
        n = torch.tensor([self.n_sequences], dtype=torch.int64, device=self.device)
        return [self._joint.clone(), self._sums.clone(), n]

    def load_state(self, state: Sequence[torch.Tensor]) -> None:
        """Replace the running sums by ``state`` (the form :meth:`state` returns)."""
        joint, sums, n = state
        self._joint = joint.to(self.device, torch.int64)
        self._sums = sums.to(self.device, torch.float64)
        self.n_sequences = int(n.item())

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Summed (hits, misses, false alarms, correct negatives), each int64 (L, K)."""
        n = self._bins
        # joint[lead, p, o]: pixels whose forecast reaches p thresholds and observation o
        joint = self._joint[: self._discard].view(self.n_leads, n, n).cpu().numpy()
        h, m, f, r = (np.zeros((self.n_leads, n - 1), dtype=np.int64) for _ in range(4))
        for k in range(n - 1):
            yes, no = slice(k + 1, None), slice(0, k + 1)
            h[:, k] = joint[:, yes, yes].sum(axis=(1, 2))
            m[:, k] = joint[:, no, yes].sum(axis=(1, 2))
            f[:, k] = joint[:, yes, no].sum(axis=(1, 2))
            r[:, k] = joint[:, no, no].sum(axis=(1, 2))
        return h, m, f, r

    def result(self) -> Scores:
        """Scores from the summed tables (float64 numpy, NaN where undefined)."""
        hits, misses, false, cn = self.tables()
        pixels = (
            hits[:, 0] + misses[:, 0] + false[:, 0] + cn[:, 0]
            if hits.size
            else np.zeros(self.n_leads, np.int64)
        )
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
