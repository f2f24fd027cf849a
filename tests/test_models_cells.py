"""Each cell, and each network's wiring, against a literal unfused implementation of the
paper's equations (docs/models.md §Cells), written out here gate by gate with separate
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
        frames.append(model.head(torch.cat(Hs, 1)).clamp(0, 1))
    want = unpatch(torch.stack(frames, 1), 2)
    got = model(inputs, n_out)
    assert got.shape == (2, n_out, 1, 8, 6)
    assert (got - want).abs().max() < TOL


# --------------------------------------------------------------------------- ST-LSTM / PredRNN


def conv_part(x, conv, k, n_gates):
    """Gate k of a fused bias-free conv (same as gate_conv, named for the unbiased sources)."""
    return gate_conv(x, conv, k, n_gates, with_bias=False)


def literal_stlstm(cell, X, H, C, M):
    """Wang et al. (2017) ST-LSTM, docs/models.md: temporal i f g from X and H_{t−1};
    spatiotemporal i' f' g' from X and M^{l−1}; o from X, H_{t−1}, C_t, M_t; H from W_1×1*[C, M].
    conv_x gates: 0 i, 1 f, 2 g, 3 i', 4 f', 5 g', 6 o; conv_h: 0 i, 1 f, 2 g, 3 o;
    conv_m: 0 i', 1 f', 2 g'."""
    x = lambda k: gate_conv(X, cell.conv_x, k, 7)  # noqa: E731
    i = sig(x(0) + conv_part(H, cell.conv_h, 0, 4))
    f = sig(x(1) + conv_part(H, cell.conv_h, 1, 4))
    g = tanh(x(2) + conv_part(H, cell.conv_h, 2, 4))
    C_new = f * C + i * g
    i_ = sig(x(3) + conv_part(M, cell.conv_m, 0, 3))
    f_ = sig(x(4) + conv_part(M, cell.conv_m, 1, 3))
    g_ = tanh(x(5) + conv_part(M, cell.conv_m, 2, 3))
    M_new = f_ * M + i_ * g_
    # W_co*C_t + W_mo*M_t as two separate convolutions on the two halves of conv_o's weight
    hid = cell.hidden
    pad = cell.conv_o.padding
    W_co, W_mo = cell.conv_o.weight[:, :hid], cell.conv_o.weight[:, hid:]
    o = sig(
        x(6)
        + conv_part(H, cell.conv_h, 3, 4)
        + F.conv2d(C_new, W_co, padding=pad)
        + F.conv2d(M_new, W_mo, padding=pad)
    )
    W1_c, W1_m = cell.conv_last.weight[:, :hid], cell.conv_last.weight[:, hid:]
    H_new = o * tanh(F.conv2d(C_new, W1_c) + F.conv2d(M_new, W1_m))
    return H_new, C_new, M_new


def test_stlstm_cell_matches_literal_equations():
    from nowcast.models.stlstm import STLSTMCell

    cell = STLSTMCell(3, 4, 3, forget_bias=1.0).double()
    randomize(cell, seed=7)
    X = rand(2, 3, 5, 6, seed=8)
    H, C, M = (rand(2, 4, 5, 6, seed=s) - 0.5 for s in (9, 10, 11))
    for _ in range(3):
        got = cell(X, H, C, M)
        want = literal_stlstm(cell, X, H, C, M)
        for a, b in zip(got, want, strict=True):
            assert (a - b).abs().max() < TOL
        assert (got[2] - M).abs().max() > 1e-3
        H, C, M = got


def literal_predrnn(model, inputs, n_out, targets=None, mask=None):
    """The PredRNN loop written out: M goes up the stack within a step, and from the top
    layer at t−1 to the bottom at t (zigzag); predictions from the top H by the 1×1 head."""
    p = model.patch
    x = patches(inputs, p)
    tr = patches(targets, p) if targets is not None else None
    B, T, _, h, w = x.shape
    L, hid = len(model.cells), model.hidden
    Hs = [torch.zeros(B, hid, h, w, dtype=x.dtype) for _ in range(L)]
    Cs = [torch.zeros(B, hid, h, w, dtype=x.dtype) for _ in range(L)]
    M = torch.zeros(B, hid, h, w, dtype=x.dtype)
    outs = []
    for t in range(T + n_out - 1):
        if t < T:
            inp = x[:, t]
        elif mask is None:
            inp = outs[-1]
        else:
            mk = mask[:, t - T].to(x.dtype).view(-1, 1, 1, 1)
            inp = mk * tr[:, t - T] + (1 - mk) * outs[-1]
        for j in range(L):
            Hs[j], Cs[j], M = literal_stlstm(model.cells[j], inp, Hs[j], Cs[j], M)
            inp = Hs[j]
        if t >= T - 1:
            outs.append(model.head(Hs[-1]).clamp(0, 1))
    return unpatch(torch.stack(outs, 1), p)


def test_predrnn_zigzag_matches_literal():
    model = build("predrnn", ModelConfig(name="predrnn", layers=3, hidden=4, kernel=3, patch=2))
    model = model.double()
    randomize(model, seed=12, scale=0.4)
    with torch.no_grad():
        model.head.bias.fill_(0.5)  # keep most outputs inside (0, 1): the clamp hides nothing
        model.head.weight.mul_(0.3)
    inputs = rand(2, 3, 1, 6, 8, seed=13)
    targets = rand(2, 4, 1, 6, 8, seed=14)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    got = model(inputs, 4)
    want = literal_predrnn(model, inputs, 4)
    assert (got - want).abs().max() < TOL
    assert float(((got > 0) & (got < 1)).double().mean()) > 0.9
    got_tf = model.train()(inputs, 4, targets, mask)
    want_tf = literal_predrnn(model, inputs, 4, targets, mask)
    assert (got_tf - want_tf).abs().max() < TOL
    assert (got_tf - got).abs().max() > 1e-4


# --------------------------------------------------------------------------- MIM


def literal_mimn(mod, Delta, N):
    """MIM-N (Wang et al. 2019, eq. 5): a ConvLSTM over Δ = H_t^{l−1} − H_{t−1}^{l−1};
    conv_x gates 0 i, 1 f, 2 g, 3 o; conv_n: 0 i, 1 f, 2 g; conv_no: W_no (on N_t)."""
    i = sig(gate_conv(Delta, mod.conv_x, 0, 4) + conv_part(N, mod.conv_n, 0, 3))
    f = sig(gate_conv(Delta, mod.conv_x, 1, 4) + conv_part(N, mod.conv_n, 1, 3))
    g = tanh(gate_conv(Delta, mod.conv_x, 2, 4) + conv_part(N, mod.conv_n, 2, 3))
    N_new = f * N + i * g
    o = sig(gate_conv(Delta, mod.conv_x, 3, 4) + conv_part(N_new, mod.conv_no, 0, 1))
    return o * tanh(N_new), N_new


def literal_mims(mod, D, C_prev, S):
    """MIM-S (eq. 6): a ConvLSTM over D and C_{t−1}, memory S; conv_d gates i f g o,
    conv_c gates i f g o, conv_so: W_so (on S_t)."""
    i = sig(gate_conv(D, mod.conv_d, 0, 4) + conv_part(C_prev, mod.conv_c, 0, 4))
    f = sig(gate_conv(D, mod.conv_d, 1, 4) + conv_part(C_prev, mod.conv_c, 1, 4))
    g = tanh(gate_conv(D, mod.conv_d, 2, 4) + conv_part(C_prev, mod.conv_c, 2, 4))
    S_new = f * S + i * g
    o = sig(
        gate_conv(D, mod.conv_d, 3, 4)
        + conv_part(C_prev, mod.conv_c, 3, 4)
        + conv_part(S_new, mod.conv_so, 0, 1)
    )
    return o * tanh(S_new), S_new


def literal_mim_block(blk, X, Delta, H, C, M, N, S):
    """MIM block (eq. 4): C_t = MIM-S(MIM-N(Δ), C_{t−1}) + i∘g (no forget gate on C);
    M, o and H as in ST-LSTM. conv_x gates: 0 i, 1 g, 2 i', 3 f', 4 g', 5 o;
    conv_h: 0 i, 1 g, 2 o; conv_m: 0 i', 1 f', 2 g'."""
    x = lambda k: gate_conv(X, blk.conv_x, k, 6)  # noqa: E731
    D, N_new = literal_mimn(blk.mim_n, Delta, N)
    T, S_new = literal_mims(blk.mim_s, D, C, S)
    i = sig(x(0) + conv_part(H, blk.conv_h, 0, 3))
    g = tanh(x(1) + conv_part(H, blk.conv_h, 1, 3))
    C_new = T + i * g
    i_ = sig(x(2) + conv_part(M, blk.conv_m, 0, 3))
    f_ = sig(x(3) + conv_part(M, blk.conv_m, 1, 3))
    g_ = tanh(x(4) + conv_part(M, blk.conv_m, 2, 3))
    M_new = f_ * M + i_ * g_
    hid = blk.hidden
    pad = blk.conv_o.padding
    o = sig(
        x(5)
        + conv_part(H, blk.conv_h, 2, 3)
        + F.conv2d(C_new, blk.conv_o.weight[:, :hid], padding=pad)
        + F.conv2d(M_new, blk.conv_o.weight[:, hid:], padding=pad)
    )
    W1 = blk.conv_last.weight
    H_new = o * tanh(F.conv2d(C_new, W1[:, :hid]) + F.conv2d(M_new, W1[:, hid:]))
    return H_new, C_new, M_new, N_new, S_new


def test_mim_modules_match_literal_equations():
    from nowcast.models.mim import MIMBlock

    blk = MIMBlock(4, 3, forget_bias=1.0).double()
    randomize(blk, seed=15)
    X, Delta = rand(2, 4, 5, 6, seed=16), rand(2, 4, 5, 6, seed=17) - 0.5
    state = [rand(2, 4, 5, 6, seed=s) - 0.5 for s in (18, 19, 20, 21, 22)]  # H C M N S
    d, n = blk.mim_n(Delta, state[3])
    want_d, want_n = literal_mimn(blk.mim_n, Delta, state[3])
    assert (d - want_d).abs().max() < TOL and (n - want_n).abs().max() < TOL
    t, s = blk.mim_s(d, state[1], state[4])
    want_t, want_s = literal_mims(blk.mim_s, d, state[1], state[4])
    assert (t - want_t).abs().max() < TOL and (s - want_s).abs().max() < TOL
    for _ in range(3):
        got = blk(X, Delta, *state)
        want = literal_mim_block(blk, X, Delta, *state)
        for a, b in zip(got, want, strict=True):
            assert (a - b).abs().max() < TOL
        assert all((a - b).abs().max() > 1e-3 for a, b in zip(got, state, strict=True))
        state = list(got)


def test_mim_network_matches_literal():
    """Layer 1 ST-LSTM, layers ≥ 2 MIM blocks over Δ of the layer below; zigzag M; N and S
    start at zero and carry across time."""
    model = build("mim", ModelConfig(name="mim", layers=3, hidden=4, kernel=3, patch=2)).double()
    randomize(model, seed=23, scale=0.4)
    with torch.no_grad():
        model.head.bias.fill_(0.5)
        model.head.weight.mul_(0.3)
    inputs = rand(2, 3, 1, 6, 4, seed=24)
    n_out = 3
    x = patches(inputs, 2)
    B, T, _, h, w = x.shape
    z = lambda: torch.zeros(B, 4, h, w, dtype=torch.float64)  # noqa: E731
    Hs, Cs, Ns, Ss = (
        [z() for _ in range(3)],
        [z() for _ in range(3)],
        [z() for _ in range(3)],
        [z() for _ in range(3)],
    )
    M = z()
    outs = []
    for t in range(T + n_out - 1):
        inp = x[:, t] if t < T else outs[-1]
        H_prev = list(Hs)
        Hs[0], Cs[0], M = literal_stlstm(model.cells[0], inp, Hs[0], Cs[0], M)
        for j in (1, 2):
            Delta = Hs[j - 1] - H_prev[j - 1]
            Hs[j], Cs[j], M, Ns[j], Ss[j] = literal_mim_block(
                model.cells[j], Hs[j - 1], Delta, Hs[j], Cs[j], M, Ns[j], Ss[j]
            )
        if t >= T - 1:
            outs.append(model.head(Hs[-1]).clamp(0, 1))
    want = unpatch(torch.stack(outs, 1), 2)
    got = model(inputs, n_out)
    assert (got - want).abs().max() < TOL
    assert float(((got > 0) & (got < 1)).double().mean()) > 0.9
