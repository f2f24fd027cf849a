"""The spatiotemporal LSTM (ST-LSTM) cell of PredRNN (Wang et al. 2017).

Per layer l and step t, with X the input (the frame for l = 1, else H_t^{l−1}),
``*`` convolution, ``∘`` Hadamard product, ``[·]`` channel concatenation::

    i  = σ(W_xi*X + W_hi*H_{t−1} + b_i)     i' = σ(W'_xi*X + W_mi*M^{l−1} + b'_i)
    f  = σ(W_xf*X + W_hf*H_{t−1} + b_f)     f' = σ(W'_xf*X + W_mf*M^{l−1} + b'_f)
    g  = tanh(W_xg*X + W_hg*H_{t−1} + b_g)  g' = tanh(W'_xg*X + W_mg*M^{l−1} + b'_g)
    C_t = f∘C_{t−1} + i∘g                   M_t = f'∘M^{l−1} + i'∘g'
    o  = σ(W_xo*X + W_ho*H_{t−1} + W_co*C_t + W_mo*M_t + b_o)
    H_t = o∘tanh(W_1×1*[C_t, M_t])

Fused: one convolution per input source — ``conv_x`` on X (7 gates: i f g i' f' g' o,
carrying all biases), ``conv_h`` on H_{t−1} (i f g o), ``conv_m`` on M^{l−1} (i' f' g'),
``conv_o`` on [C_t, M_t] (o), and the 1×1 ``conv_last`` on [C_t, M_t]. Both forget
gates start with bias ``forget_bias``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nowcast.models.base import init_gate_bias, same_conv


class STLSTMCell(nn.Module):
    """One ST-LSTM layer. Step: ``cell(x, h, c, m) -> (h, c, m)``; all (B, ·, h, w)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int, forget_bias: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv_x = same_conv(in_channels, 7 * hidden, kernel, bias=True)
        self.conv_h = same_conv(hidden, 4 * hidden, kernel, bias=False)
        self.conv_m = same_conv(hidden, 3 * hidden, kernel, bias=False)
        self.conv_o = same_conv(2 * hidden, hidden, kernel, bias=False)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)
        init_gate_bias(self.conv_x, 7, (1, 4), forget_bias)

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        xi, xf, xg, xi_, xf_, xg_, xo = self.conv_x(x).chunk(7, dim=1)
        hi, hf, hg, ho = self.conv_h(h).chunk(4, dim=1)
        mi, mf, mg = self.conv_m(m).chunk(3, dim=1)
        c = torch.sigmoid(xf + hf) * c + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        m = torch.sigmoid(xf_ + mf) * m + torch.sigmoid(xi_ + mi) * torch.tanh(xg_ + mg)
        mem = torch.cat([c, m], dim=1)
        o = torch.sigmoid(xo + ho + self.conv_o(mem))
        return o * torch.tanh(self.conv_last(mem)), c, m
