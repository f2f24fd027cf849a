"""ConvLSTM with peepholes and the encoder–forecaster network of Shi et al. (2015).

Cell (``*`` convolution, ``∘`` Hadamard product)::

    i = σ(W_xi*X + W_hi*H + W_ci∘C_prev + b_i)
    f = σ(W_xf*X + W_hf*H + W_cf∘C_prev + b_f)
    C = f∘C_prev + i∘tanh(W_xc*X + W_hc*H + b_c)
    o = σ(W_xo*X + W_ho*H + W_co∘C + b_o)
    H = o∘tanh(C)

The four gate convolutions are fused into one convolution per input source (``conv_x``
on X, ``conv_h`` on H; gate order i, f, c, o). Peephole weights are per channel,
shape (C, 1, 1), not per pixel (C, H, W) as the paper's notation allows: a per-pixel
weight would tie the model to one grid size.

Network: an encoder stack reads the T_in (patched) input frames; its final (H, C) states
initialise a forecaster stack of the same depth and widths, layer by layer. As in the
paper, the forecaster gets no frame input (its first layer has no ``conv_x``), and all
its layers' hidden states are concatenated and passed through a 1×1 convolution
(clamped to [0, 1], see ``Nowcaster.emit``) to give each prediction (with
``model.residual``, added to the frame before it: the last input, then the previous
prediction). With ``model.advection`` the forecaster's first layer reads, at lead k, the
pysteps extrapolation of the inputs to lead k (``conv_x`` on that frame), and with
``model.residual`` the head's change is added to that extrapolated frame instead of the
previous prediction; the head then starts at zero, so an untrained network forecasts
exactly the extrapolation. ``model.correction_scale`` multiplies the head's change per
lead (s_k ∈ [0, 1]: lead k = clamp(extrapolated_k + s_k · change_k); 0 = the extrapolation
exactly, whatever the weights). Since no prediction
is fed back, scheduled sampling does not apply (``feeds_predictions = False``;
``targets``/``teacher_mask`` are accepted and checked but change nothing).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nowcast.config.model import ModelConfig
from nowcast.models.base import Nowcaster, init_gate_bias, same_conv, widths


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer with per-channel peepholes.

    in_channels: channels of X (0 = no input, as in the forecaster's first layer).
    Step: ``cell(x, h, c) -> (h, c)`` with x (B, in, h, w) or None, h and c (B, hidden, h, w).
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int, forget_bias: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv_x = same_conv(in_channels, 4 * hidden, kernel, bias=True) if in_channels else None
        self.conv_h = same_conv(hidden, 4 * hidden, kernel, bias=in_channels == 0)
        init_gate_bias(self.conv_x or self.conv_h, 4, (1,), forget_bias)
        # peephole weights W_ci, W_cf, W_co: (3, hidden, 1, 1), start as a plain ConvLSTM
        self.peephole = nn.Parameter(torch.zeros(3, hidden, 1, 1))

    def forward(self, x: Tensor | None, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        gates = self.conv_h(h)
        if self.conv_x is not None and x is not None:
            gates = gates + self.conv_x(x)
        gi, gf, gc, go = gates.chunk(4, dim=1)
        w_ci, w_cf, w_co = self.peephole.unbind(0)
        i = torch.sigmoid(gi + w_ci * c)
        f = torch.sigmoid(gf + w_cf * c)
        c = f * c + i * torch.tanh(gc)
        o = torch.sigmoid(go + w_co * c)
        return o * torch.tanh(c), c


class ConvLSTMNowcaster(Nowcaster):
    """Encoder–forecaster ConvLSTM (Shi et al. 2015); see the module docstring."""

    feeds_predictions = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        hid = widths(cfg)
        ins = [self.frame_channels] + hid[:-1]
        k, fb = cfg.kernel, cfg.forget_bias
        self.encoder = nn.ModuleList(ConvLSTMCell(ins[i], hid[i], k, fb) for i in range(cfg.layers))
        # with model.advection the forecaster reads each lead's extrapolated frame
        fore_ins = [self.frame_channels if cfg.advection else 0] + hid[:-1]
        self.forecaster = nn.ModuleList(
            ConvLSTMCell(fore_ins[i], hid[i], k, fb) for i in range(cfg.layers)
        )
        self.head = nn.Conv2d(sum(hid), self.frame_channels, 1)
        #: per-lead factor on the head's change to the extrapolation (model.correction_scale)
        self.correction_scale = list(cfg.correction_scale)
        if cfg.advection and cfg.residual:  # untrained: exactly the extrapolation
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _run(
        self,
        x: Tensor,
        n_out: int,
        truth: Tensor | None,
        mask: Tensor | None,
        prior: Tensor | None = None,
    ) -> Tensor:
        first = x[:, 0]
        hs = [self.zeros(first, cell.hidden) for cell in self.encoder]
        cs = [self.zeros(first, cell.hidden) for cell in self.encoder]
        for t in range(x.shape[1]):
            inp = x[:, t]
            for i, cell in enumerate(self.encoder):
                hs[i], cs[i] = cell(inp, hs[i], cs[i])
                inp = hs[i]
        outs = []
        before = x[:, -1]
        for k in range(n_out):
            inp = None if prior is None else prior[:, k]
            for i, cell in enumerate(self.forecaster):
                hs[i], cs[i] = cell(inp, hs[i], cs[i])
                inp = hs[i]
            z = self.head(torch.cat(hs, dim=1))
            if prior is not None:  # the base frame of lead k is its extrapolation
                before = prior[:, k]
                scale = self.correction_scale[min(k, len(self.correction_scale) - 1)]
                if scale != 1.0:
                    z = z * scale
            before = self.predict_frame(z, before)
            outs.append(before)
        return torch.stack(outs, dim=1)
