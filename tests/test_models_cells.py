"""Each cell, and each network's wiring, against a literal unfused implementation of the
paper's equations (REFERENCE.md "Cells"), written out here gate by gate with separate
convolutions that share the fused weights (sliced per gate), in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nowcast.config.model import ModelConfig
from nowcast.models import build
from nowcast.models.convlstm import ConvLSTMCell

TOL = 1e-5
sig, tanh = torch.sigmoid, torch.tanh


def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Every parameter (peepholes and biases included) drawn from N(0, scale²), so no term is zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def gate_conv(x, conv, k, n_gates, with_bias=True):
    """The k-th gate's own convolution: W_k * x + b_k, with W_k, b_k sliced from the fused conv."""
    h = conv.out_channels // n_gates
    w = conv.weight[k * h : (k + 1) * h]
    b = conv.bias[k * h : (k + 1) * h] if (with_bias and conv.bias is not None) else None
    return F.conv2d(x, w, b, padding=conv.padding)


def rand(*shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- ConvLSTM


def literal_convlstm(cell: ConvLSTMCell, X, H, C_prev):
    """Shi et al. (2015), eq. (3), with per-channel Hadamard peepholes W_c∘C."""
    W_ci, W_cf, W_co = cell.peephole[0], cell.peephole[1], cell.peephole[2]

    def W_x(k):
        return gate_conv(X, cell.conv_x, k, 4) if cell.conv_x is not None else 0.0

    def W_h(k):  # conv_h carries the biases only when the cell has no input
        return gate_conv(H, cell.conv_h, k, 4)

    i = sig(W_x(0) + W_h(0) + W_ci * C_prev)
    f = sig(W_x(1) + W_h(1) + W_cf * C_prev)
    C = f * C_prev + i * tanh(W_x(2) + W_h(2))
    o = sig(W_x(3) + W_h(3) + W_co * C)
    H = o * tanh(C)
    return H, C


def test_convlstm_cell_matches_literal_equations():
    for in_ch in (3, 0):  # with input, and the forecaster's input-less first layer
        cell = ConvLSTMCell(in_ch, 5, 3, forget_bias=1.0).double()
        randomize(cell, seed=in_ch)
        X = rand(2, max(in_ch, 1), 6, 7, seed=2) if in_ch else None
        H, C = rand(2, 5, 6, 7, seed=3) - 0.5, rand(2, 5, 6, 7, seed=4) - 0.5
        for _ in range(3):  # a few steps, carrying state
            got_h, got_c = cell(X, H, C)
            want_h, want_c = literal_convlstm(cell, X, H, C)
            assert (got_h - want_h).abs().max() < TOL
            assert (got_c - want_c).abs().max() < TOL
            assert (got_h - H).abs().max() > 1e-3  # the state moved: the check is not vacuous
            H, C = got_h, got_c


def patches(frames, p):
    b, t = frames.shape[:2]
    x = F.pixel_unshuffle(frames.flatten(0, 1), p)
    return x.view(b, t, *x.shape[1:])


def unpatch(y, p):
    b, t = y.shape[:2]
    out = F.pixel_shuffle(y.flatten(0, 1), p)
    return out.view(b, t, *out.shape[1:])


def test_convlstm_encoder_forecaster_matches_literal():
    """Encoder reads the inputs; its final states initialise the forecaster layer by layer;
    the forecaster has no frame input; a 1×1 conv over all forecaster states gives each frame."""
    cfg = ModelConfig(name="convlstm", layers=2, hidden=[4, 3], kernel=3, patch=2)
    model = build("convlstm", cfg).double()
    randomize(model, seed=5)
    inputs = rand(2, 3, 1, 8, 6, seed=6)
    n_out = 4
    x = patches(inputs, 2)
    B, _, _, h, w = x.shape
    Hs = [torch.zeros(B, c, h, w, dtype=torch.float64) for c in (4, 3)]
    Cs = [torch.zeros(B, c, h, w, dtype=torch.float64) for c in (4, 3)]
    for t in range(3):
        Hs[0], Cs[0] = literal_convlstm(model.encoder[0], x[:, t], Hs[0], Cs[0])
        Hs[1], Cs[1] = literal_convlstm(model.encoder[1], Hs[0], Hs[1], Cs[1])
    frames = []
    for _ in range(n_out):
        Hs[0], Cs[0] = literal_convlstm(model.forecaster[0], None, Hs[0], Cs[0])
        Hs[1], Cs[1] = literal_convlstm(model.forecaster[1], Hs[0], Hs[1], Cs[1])
        frames.append(sig(model.head(torch.cat(Hs, 1))))
    want = unpatch(torch.stack(frames, 1), 2)
    got = model(inputs, n_out)
    assert got.shape == (2, n_out, 1, 8, 6)
    assert (got - want).abs().max() < TOL
