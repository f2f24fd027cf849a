"""Memory In Memory (Wang et al. 2019): an ST-LSTM first layer, MIM blocks above it.

A MIM block is an ST-LSTM whose forget path on C is replaced by two cascaded recurrent
modules. With X = H_t^{l−1} (the layer below, this step) and Δ = H_t^{l−1} − H_{t−1}^{l−1}:

MIM-N (non-stationary), a ConvLSTM over the differences, memory N::

    i = σ(W_xi*Δ + W_ni*N_{t−1} + b_i)   f = σ(W_xf*Δ + W_nf*N_{t−1} + b_f)
    g = tanh(W_xg*Δ + W_ng*N_{t−1} + b_g)
    N_t = f∘N_{t−1} + i∘g;  o = σ(W_xo*Δ + W_no*N_t + b_o);  D = o∘tanh(N_t)

MIM-S (stationary), a ConvLSTM over D and the block's previous C, memory S::

    i = σ(W_di*D + W_ci*C_{t−1} + b_i)   f = σ(W_df*D + W_cf*C_{t−1} + b_f)
    g = tanh(W_dg*D + W_cg*C_{t−1} + b_g)
    S_t = f∘S_{t−1} + i∘g;  o = σ(W_do*D + W_co*C_{t−1} + W_so*S_t + b_o);  T = o∘tanh(S_t)

Block::

    i = σ(W_xi*X + W_hi*H_{t−1} + b_i)    g = tanh(W_xg*X + W_hg*H_{t−1} + b_g)
    C_t = T + i∘g                          (MIM-S replaces f∘C_{t−1})
    i', f', g' from X and M^{l−1};  M_t = f'∘M^{l−1} + i'∘g'   (as ST-LSTM)
    o = σ(W_xo*X + W_ho*H_{t−1} + W_co*C_t + W_mo*M_t + b_o);  H_t = o∘tanh(W_1×1*[C_t, M_t])

N and S are carried across time and start at zero for every sequence (inside ``forward``).
All products with weights are convolutions, one fused convolution per input source.
Differences from the public TensorFlow code, on purpose: that code gives MIM-N/MIM-S
per-pixel (H, W, C) peephole weights (which tie the model to one grid size) where the
paper's equations have convolutions, and feeds the blocks above the second one the MIM-N
output of the block below instead of the hidden-state difference; here every block l
takes Δ of layer l−1, as in the paper (docs/models.md §MIM block).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nowcast.config.model import ModelConfig
from nowcast.models.base import init_gate_bias, same_conv
from nowcast.models.predrnn import PredRNNNowcaster, State
from nowcast.models.stlstm import STLSTMCell


class MIMN(nn.Module):
    """MIM-N: ``mimn(delta, n) -> (d, n)``; gates from Δ (``conv_x``: i f g o) and N_{t−1}
    (``conv_n``: i f g), output gate also from N_t (``conv_no``)."""

    def __init__(self, hidden: int, kernel: int, forget_bias: float) -> None:
        super().__init__()
        self.conv_x = same_conv(hidden, 4 * hidden, kernel, bias=True)
        self.conv_n = same_conv(hidden, 3 * hidden, kernel, bias=False)
        self.conv_no = same_conv(hidden, hidden, kernel, bias=False)
        init_gate_bias(self.conv_x, 4, (1,), forget_bias)

    def forward(self, delta: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        xi, xf, xg, xo = self.conv_x(delta).chunk(4, dim=1)
        ni, nf, ng = self.conv_n(n).chunk(3, dim=1)
        n = torch.sigmoid(xf + nf) * n + torch.sigmoid(xi + ni) * torch.tanh(xg + ng)
        o = torch.sigmoid(xo + self.conv_no(n))
        return o * torch.tanh(n), n


class MIMS(nn.Module):
    """MIM-S: ``mims(d, c, s) -> (t, s)``; gates from D (``conv_d``: i f g o) and C_{t−1}
    (``conv_c``: i f g o), output gate also from S_t (``conv_so``)."""

    def __init__(self, hidden: int, kernel: int, forget_bias: float) -> None:
        super().__init__()
        self.conv_d = same_conv(hidden, 4 * hidden, kernel, bias=True)
        self.conv_c = same_conv(hidden, 4 * hidden, kernel, bias=False)
        self.conv_so = same_conv(hidden, hidden, kernel, bias=False)
        init_gate_bias(self.conv_d, 4, (1,), forget_bias)

    def forward(self, d: Tensor, c: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        di, df, dg, do = self.conv_d(d).chunk(4, dim=1)
        ci, cf, cg, co = self.conv_c(c).chunk(4, dim=1)
        s = torch.sigmoid(df + cf) * s + torch.sigmoid(di + ci) * torch.tanh(dg + cg)
        o = torch.sigmoid(do + co + self.conv_so(s))
        return o * torch.tanh(s), s


class MIMBlock(nn.Module):
    """``block(x, delta, h, c, m, n, s) -> (h, c, m, n, s)``; ``conv_x`` on X has the gates
    i g i' f' g' o, ``conv_h`` on H_{t−1}: i g o, ``conv_m`` on M^{l−1}: i' f' g'."""

    def __init__(self, hidden: int, kernel: int, forget_bias: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv_x = same_conv(hidden, 6 * hidden, kernel, bias=True)
        self.conv_h = same_conv(hidden, 3 * hidden, kernel, bias=False)
        self.conv_m = same_conv(hidden, 3 * hidden, kernel, bias=False)
        self.conv_o = same_conv(2 * hidden, hidden, kernel, bias=False)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)
        init_gate_bias(self.conv_x, 6, (3,), forget_bias)
        self.mim_n = MIMN(hidden, kernel, forget_bias)
        self.mim_s = MIMS(hidden, kernel, forget_bias)

    def forward(
        self, x: Tensor, delta: Tensor, h: Tensor, c: Tensor, m: Tensor, n: Tensor, s: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        xi, xg, xi_, xf_, xg_, xo = self.conv_x(x).chunk(6, dim=1)
        hi, hg, ho = self.conv_h(h).chunk(3, dim=1)
        mi, mf, mg = self.conv_m(m).chunk(3, dim=1)
        d, n = self.mim_n(delta, n)
        t, s = self.mim_s(d, c, s)
        c = t + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        m = torch.sigmoid(xf_ + mf) * m + torch.sigmoid(xi_ + mi) * torch.tanh(xg_ + mg)
        mem = torch.cat([c, m], dim=1)
        o = torch.sigmoid(xo + ho + self.conv_o(mem))
        return o * torch.tanh(self.conv_last(mem)), c, m, n, s


class MIMNowcaster(PredRNNNowcaster):
    """MIM network: the PredRNN loop (zigzag M, scheduled sampling) with MIM blocks ≥ layer 2."""

    def _make_cells(self, cfg: ModelConfig) -> list[nn.Module]:
        first = STLSTMCell(self.frame_channels, self.hidden, cfg.kernel, cfg.forget_bias)
        rest = [MIMBlock(self.hidden, cfg.kernel, cfg.forget_bias) for _ in range(cfg.layers - 1)]
        return [first, *rest]

    def _init_state(self, like: Tensor) -> State:
        st = super()._init_state(like)
        n = len(self.cells)
        st["n"] = [self.zeros(like, self.hidden) for _ in range(n)]  # entry 0 unused (ST-LSTM)
        st["s"] = [self.zeros(like, self.hidden) for _ in range(n)]
        return st

    def _step(self, x: Tensor, st: State) -> Tensor:
        h_prev = list(st["h"])  # H_{t−1} of every layer, for the differences
        h, c = st["h"], st["c"]
        h[0], c[0], m = self.cells[0](x, h[0], c[0], st["m"][0])
        for i in range(1, len(self.cells)):
            delta = h[i - 1] - h_prev[i - 1]
            h[i], c[i], m, st["n"][i], st["s"][i] = self.cells[i](
                h[i - 1], delta, h[i], c[i], m, st["n"][i], st["s"][i]
            )
        st["m"][0] = m
        return h[-1]
