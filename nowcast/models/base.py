"""What every nowcasting network shares: the call contract, the patch trick, the output head.

Contract (docs/models.md): ``model(inputs, n_out)`` maps ``inputs`` of shape
``(B, T_in, 1, H, W)``, gray levels in [0, 1], to predictions ``(B, n_out, 1, H, W)`` in
[0, 1]. Frames are cut into ``patch × patch`` blocks (space-to-depth), so the cells run on
``(H/p, W/p)`` grids with ``p²`` channels. All recurrent state is created inside
``forward`` (nothing is kept on the module between calls, except the memo of pysteps
forecasts of ``model.advection``, which only saves recomputing them).

Output: the 1×1 output convolution's value z (plus the frame before it with
``model.residual``, see ``predict_frame``) clamped to [0, 1] with a straight-through
gradient (``emit``): the forward value is ``clamp(z, 0, 1)``, the gradient is that of z.
Predictions are always valid gray levels, and with the MSE loss every wrong pixel gets
the gradient 2(ŷ − y) — unlike a sigmoid, whose gradient ŷ(1 − ŷ) vanishes once the
mostly dry (0) background has pushed the outputs towards 0 (tiny PredRNN/MIM then stall
at a blurred mean: loss 0.057 after 150 steps vs 0.0005 straight-through), and unlike a
plain clamp, which has no gradient at all outside [0, 1] (stalls at 0.044).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nowcast.config.model import ModelConfig
from nowcast.errors import UserError
from nowcast.models.advection import AdvectionPrior
from nowcast.models.probmatch import match_empirical_cdf


def same_conv(c_in: int, c_out: int, kernel: int, bias: bool) -> nn.Conv2d:
    """A stride-1 convolution that keeps the grid size (odd ``kernel``, zero padding)."""
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)


def init_gate_bias(
    conv: nn.Conv2d, n_gates: int, forget: tuple[int, ...], forget_bias: float
) -> None:
    """Zero the bias of a fused gate conv, then set the forget-gate slices to ``forget_bias``.

    ``conv`` has ``n_gates × h`` output channels, gate ``k`` in channels ``[k·h, (k+1)·h)``.
    """
    assert conv.bias is not None
    h = conv.out_channels // n_gates
    with torch.no_grad():
        conv.bias.zero_()
        for k in forget:
            conv.bias[k * h : (k + 1) * h] = forget_bias


def widths(cfg: ModelConfig) -> list[int]:
    """Hidden channels of each layer (``cfg.hidden`` expanded to ``cfg.layers`` entries)."""
    return list(cfg.hidden) if len(cfg.hidden) > 1 else cfg.hidden * cfg.layers


class Nowcaster(nn.Module):
    """Base class: input checks, space-to-depth, output clamp, scheduled sampling.

    Subclasses implement ``_run(x, n_out, truth, mask, prior) -> (B, n_out, p², h, w)`` on
    patched tensors, where ``truth`` (B, n_out, p², h, w) and ``mask`` (B, n_out−1) are
    ``None`` unless teacher forcing is on, and ``prior`` (B, n_out, p², h, w), the pysteps
    extrapolation of the inputs, is ``None`` unless ``model.advection`` is on.
    """

    #: whether the network feeds frames back in while forecasting (so teacher forcing applies)
    feeds_predictions: bool = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patch = cfg.patch
        self.channels_last = cfg.channels_last
        self.frame_channels = cfg.patch**2
        self.residual = cfg.residual
        self.probability_matching = cfg.probability_matching
        self.matching_reference = cfg.matching_reference
        self.advection = AdvectionPrior(cfg.advection_motion) if cfg.advection else None

    # ------------------------------------------------------------------ contract
    def forward(
        self,
        inputs: Tensor,
        n_out: int,
        targets: Tensor | None = None,
        teacher_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict ``n_out`` frames after ``inputs``.

        inputs: (B, T_in, 1, H, W) in [0, 1]; H, W divisible by ``patch``.
        targets: (B, n_out, 1, H, W), the true future frames (training only, with ``teacher_mask``).
        teacher_mask: (B, n_out − 1) bool/float; entry ``[b, k]`` = 1 feeds the true frame
            ``targets[b, k]`` as the next input, 0 feeds the model's own prediction of it.
        Returns (B, n_out, 1, H, W) in [0, 1]; in eval mode with ``model.probability_matching``
        every frame's values are those of ``inputs[:, -1]``, or with ``model.matching_reference:
        advected`` those of the lead's extrapolated frame (:mod:`nowcast.models.probmatch`).
        With ``model.advection`` the network also gets the pysteps extrapolation of
        ``inputs`` (:mod:`nowcast.models.advection`; at least 3 inputs with LK motion, 2 with
        Proesmans).
        """
        b, t_in, c, h, w = self._check(inputs, n_out)
        x = self.to_patches(inputs)
        truth = mask = None
        if (targets is None) != (teacher_mask is None):
            raise ValueError("teacher forcing needs both targets and teacher_mask")
        if targets is not None and teacher_mask is not None:
            if not self.training:
                raise ValueError(
                    "teacher forcing (targets, teacher_mask) is for training mode only"
                )
            if targets.shape != (b, n_out, c, h, w):
                raise ValueError(
                    f"targets must have shape {(b, n_out, c, h, w)}, got {tuple(targets.shape)}"
                )
            if teacher_mask.shape != (b, n_out - 1):
                raise ValueError(
                    f"teacher_mask must have shape {(b, n_out - 1)}, got {tuple(teacher_mask.shape)}"
                )
            truth = self.to_patches(targets)
            mask = teacher_mask.to(dtype=x.dtype)
        advected = prior = None
        if self.advection is not None:
            advected = self.advection(inputs, n_out)  # (B, n_out, 1, H, W)
            prior = self.to_patches(advected)
        y = self.from_patches(self._run(x, n_out, truth, mask, prior))
        if self.probability_matching and not self.training:
            if self.matching_reference == "advected" and advected is not None:
                # each lead onto its own extrapolated frame: leads become batch entries
                per_lead = y.reshape(b * n_out, 1, c, h, w)
                y = match_empirical_cdf(per_lead, advected.reshape(b * n_out, c, h, w))
                y = y.reshape(b, n_out, c, h, w)
            else:
                y = match_empirical_cdf(y, inputs[:, -1])
        return y

    def _run(
        self,
        x: Tensor,
        n_out: int,
        truth: Tensor | None,
        mask: Tensor | None,
        prior: Tensor | None = None,
    ) -> Tensor:
        raise NotImplementedError

    def _check(self, inputs: Tensor, n_out: int) -> tuple[int, int, int, int, int]:
        if inputs.dim() != 5 or inputs.shape[2] != 1:
            raise ValueError(f"inputs must be (B, T_in, 1, H, W), got {tuple(inputs.shape)}")
        if n_out < 1:
            raise ValueError(f"n_out must be ≥ 1, got {n_out}")
        b, t, c, h, w = inputs.shape
        if h % self.patch or w % self.patch:
            raise UserError(f"model.patch: {self.patch} does not divide the {h}×{w} grid")
        return b, t, c, h, w

    # ------------------------------------------------------------------ patches
    def to_patches(self, frames: Tensor) -> Tensor:
        """(B, T, 1, H, W) → (B, T, p², H/p, W/p), each step laid out in the model's memory format."""
        b, t, c, h, w = frames.shape
        p = self.patch
        x = F.pixel_unshuffle(frames.reshape(b * t, c, h, w), p)
        if self.channels_last:  # (B·T, h, w, C) storage: every x[:, t] is channels-last 4-D
            return _as_5d(x.contiguous(memory_format=torch.channels_last), b, t)
        return x.reshape(b, t, c * p * p, h // p, w // p)

    def from_patches(self, y: Tensor) -> Tensor:
        """(B, T, p², H/p, W/p) → (B, T, 1, H, W)."""
        b, t, c, h, w = y.shape
        out = F.pixel_shuffle(y.reshape(b * t, c, h, w), self.patch)
        return out.reshape(b, t, 1, h * self.patch, w * self.patch)

    @staticmethod
    def emit(z: Tensor) -> Tensor:
        """Frames from output-conv values: ``clamp(z, 0, 1)`` forward, identity backward."""
        return z + (z.clamp(0, 1) - z).detach()

    def predict_frame(self, z: Tensor, before: Tensor) -> Tensor:
        """The next (patched) frame from the head's output ``z`` (B, p², h, w):
        ``emit(before + z)`` with ``model.residual`` (``before``: the frame before it),
        else ``emit(z)``."""
        return self.emit(before + z if self.residual else z)

    def zeros(self, like: Tensor, channels: int) -> Tensor:
        """A zero state (B, channels, h, w) with the dtype, device and memory format of the model."""
        b, _, h, w = like.shape
        z = like.new_zeros(b, channels, h, w)
        return z.contiguous(memory_format=torch.channels_last) if self.channels_last else z

    @staticmethod
    def next_input(pred: Tensor, truth: Tensor | None, mask: Tensor | None, k: int) -> Tensor:
        """Input for forecast step ``k + 1``: the model's prediction of future frame ``k``, or
        per sample the true frame where ``mask[:, k]`` is 1 (a blend for fractional masks)."""
        if truth is None or mask is None:
            return pred
        m = mask[:, k].view(-1, 1, 1, 1)
        return m * truth[:, k] + (1 - m) * pred


def _as_5d(x: Tensor, b: int, t: int) -> Tensor:
    """A channels-last (B·T, C, h, w) tensor viewed as (B, T, C, h, w) without copying."""
    bt, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, t, h, w, c).permute(0, 1, 4, 2, 3)
