"""The model interface, for every registered network: shapes, no state leak, gradients to
every parameter, teacher forcing, memory format, config checks, and overfitting one batch."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from nowcast.config import load_config
from nowcast.config.model import ModelConfig
from nowcast.errors import UserError
from nowcast.models import (
    REGISTRY,
    build,
    sampling_mask_for,
    scheduled_sampling_mask,
    teacher_forcing_prob,
)

NAMES = sorted(REGISTRY)


def tiny(name: str, **kw) -> ModelConfig:
    base = dict(name=name, layers=2, hidden=6, kernel=3, patch=2)
    base.update(kw)
    return ModelConfig(**base)


def moving_blobs(batch: int, steps: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(batch, steps, 1, h, w) in [0, 1]: one Gaussian blob per sequence moving at constant
    velocity (1 px/step in a direction of its own), wrapping around the grid."""
    g = torch.Generator().manual_seed(seed)
    y0 = torch.rand(batch, generator=g) * h
    x0 = torch.rand(batch, generator=g) * w
    ang = torch.rand(batch, generator=g) * 2 * math.pi
    vy, vx = torch.sin(ang), torch.cos(ang)
    yy = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    frames = []
    for t in range(steps):
        cy = (y0 + vy * t).view(-1, 1, 1)
        cx = (x0 + vx * t).view(-1, 1, 1)
        dy = torch.remainder(yy - cy + h / 2, h) - h / 2
        dx = torch.remainder(xx - cx + w / 2, w) - w / 2
        frames.append(torch.exp(-(dy**2 + dx**2) / (2 * 2.0**2)))
    return torch.stack(frames, 1).unsqueeze(2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hw,patch", [((12, 20), 4), ((10, 6), 2), ((7, 5), 1)])
@pytest.mark.parametrize("n_out", [1, 4])
def test_shapes_non_square_any_n_out(name, hw, patch, n_out):
    torch.manual_seed(0)
    model = build(name, tiny(name, patch=patch, hidden=4))
    y = model(torch.rand(2, 3, 1, *hw), n_out)
    assert y.shape == (2, n_out, 1, *hw)
    assert float(y.detach().min()) >= 0 and float(y.detach().max()) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_grid_not_divisible_by_patch_is_a_user_error(name):
    model = build(name, tiny(name, patch=4))
    with pytest.raises(UserError, match=r"model\.patch: 4 does not divide the 12×10 grid"):
        model(torch.rand(1, 2, 1, 12, 10), 2)


@pytest.mark.parametrize("name", NAMES)
def test_no_state_leak_between_calls(name):
    torch.manual_seed(0)
    model = build(name, tiny(name)).eval()
    x = torch.rand(2, 3, 1, 8, 8)
    with torch.no_grad():
        before = model(x, 3)
        model(torch.rand(5, 4, 1, 8, 8), 2)  # another batch size, length and n_out
        after = model(x, 3)
        alone = model(x[:1], 3)  # a sample's nowcast does not depend on the rest of the batch
    assert torch.equal(before, after)
    assert torch.allclose(alone, before[:1], atol=1e-6)
    assert not any(isinstance(v, torch.Tensor) for v in vars(model).values())


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build(name, tiny(name)).train()
    x = moving_blobs(2, 7, 8, 8)
    inputs, targets = x[:, :3], x[:, 3:]
    mask = torch.tensor([[True, False, True], [False, True, False]])
    pred = model(inputs, 4, targets=targets, teacher_mask=mask)
    torch.nn.functional.mse_loss(pred, targets).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert float(p.grad.abs().sum()) > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_teacher_forcing_feeds_the_truth(name):
    """mask = 1 at step k: prediction k+1 is what the model predicts after reading the inputs
    followed by the true frames 0..k; mask = 0 everywhere: the free-running nowcast."""
    torch.manual_seed(0)
    model = build(name, tiny(name)).train()
    x = moving_blobs(2, 8, 8, 8, seed=3)
    inputs, targets = x[:, :3], x[:, 3:]
    n_out = 5
    with torch.no_grad():
        free = model(inputs, n_out)
        closed = model(inputs, n_out, targets, torch.zeros(2, n_out - 1))
        forced = model(inputs, n_out, targets, torch.ones(2, n_out - 1, dtype=torch.bool))
        mixed = model(inputs, n_out, targets, torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]]))
        if model.feeds_predictions:
            want = torch.stack(
                [model(torch.cat([inputs, targets[:, :j]], 1), 1)[:, 0] for j in range(n_out)], 1
            )
        else:  # ConvLSTM's forecaster takes no frame input: the mask changes nothing
            want = free
    assert torch.allclose(closed, free, atol=1e-6)
    assert torch.allclose(forced, want, atol=1e-6)
    assert torch.allclose(mixed[0], forced[0], atol=1e-6)
    assert torch.allclose(mixed[1], free[1], atol=1e-6)
    if model.feeds_predictions:
        assert (forced[:, 1:] - free[:, 1:]).abs().max() > 1e-4  # the truth made a difference
        assert torch.allclose(forced[:, 0], free[:, 0], atol=1e-6)  # frame 0 precedes any truth


@pytest.mark.parametrize("name", NAMES)
def test_teacher_forcing_argument_checks(name):
    model = build(name, tiny(name))
    x = torch.rand(1, 2, 1, 8, 8)
    with pytest.raises(ValueError, match="both"):
        model(x, 3, targets=torch.rand(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="teacher_mask must have shape"):
        model(x, 3, torch.rand(1, 3, 1, 8, 8), torch.ones(1, 3))
    with pytest.raises(ValueError, match="training mode"):
        model.eval()(x, 3, torch.rand(1, 3, 1, 8, 8), torch.ones(1, 2))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_nowcast(name):
    torch.manual_seed(0)
    ref = build(name, tiny(name, channels_last=False))
    cl = build(name, tiny(name, channels_last=True))
    cl.load_state_dict(ref.state_dict())
    conv = next(m for m in cl.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    ref_conv = next(
        m for m in ref.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1
    )
    assert not ref_conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 1, 12, 8)
    assert torch.allclose(cl(x, 3), ref(x, 3), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_config_keys_shape_the_network(name):
    cfg = tiny(name, layers=3, hidden=5, kernel=5, patch=2, forget_bias=0.7)
    model = build(name, cfg)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {m.kernel_size for m in convs} <= {(5, 5), (1, 1)}
    assert sum(m.kernel_size == (5, 5) for m in convs) > 0
    # forget-gate biases start at forget_bias: some bias entries equal 0.7 exactly
    biases = torch.cat([m.bias for m in convs if m.bias is not None and m.kernel_size == (5, 5)])
    assert int((biases == 0.7).sum()) >= 5 * 3
    deeper = build(name, tiny(name, layers=4, hidden=5, kernel=5, patch=2))
    assert sum(p.numel() for p in deeper.parameters()) > sum(p.numel() for p in model.parameters())


def test_registry_and_config_names_agree():
    import typing

    assert set(typing.get_args(ModelConfig.model_fields["name"].annotation)) == set(REGISTRY)


def test_config_cross_key_checks():
    with pytest.raises(UserError, match=r"model\.kernel: expected an odd kernel size, got 4"):
        build("convlstm", tiny("convlstm", kernel=4))
    with pytest.raises(UserError, match=r"model\.hidden: 3 widths given for model\.layers = 2"):
        build("convlstm", tiny("convlstm", hidden=[4, 4, 4]))
    with pytest.raises(UserError, match=r"model\.name: unknown model 'unet'"):
        build("unet", tiny("convlstm"))
    build("convlstm", tiny("convlstm", hidden=[8, 4]))  # ConvLSTM: per-layer widths are fine


@pytest.mark.parametrize(
    "sets,message",
    [
        (["model.kernel=4"], "model.kernel: expected an odd kernel size, got 4"),
        (
            ["model.name=mim", "model.layers=2", "model.hidden=[8, 16]"],
            "model.hidden: mim passes its memory between layers, so all layers need the same width",
        ),
        (
            ["model.layers=3", "model.hidden=[8, 16]"],
            "model.hidden: 2 widths given for model.layers = 3",
        ),
        (["model.name=unet"], "model.name: expected one of 'convlstm', 'predrnn', 'mim'"),
    ],
)
def test_cli_reports_bad_model_keys(sets, message):
    """`nowcast train` checks the model keys before touching any data: exit 2, one line."""
    from typer.testing import CliRunner

    from nowcast.cli import app

    args = ["train"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nowcast: error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_model_section_loads_from_yaml(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("model:\n  name: convlstm\n  layers: 2\n  hidden: [16, 8]\n  patch: 2\n")
    cfg = load_config(f)
    model = build(cfg.model.name, cfg.model)
    assert [c.hidden for c in model.encoder] == [16, 8]
    from nowcast.config import ConfigError

    f.write_text("model:\n  hidden: wide\n")
    with pytest.raises(ConfigError, match=r"model\.hidden: expected a list of integers"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"model\.name: expected one of"):
        load_config(None, ["model.name=unet"])


# --------------------------------------------------------------------------- sampling


def test_linear_schedule_values():
    """PredRNN's schedule: 1 at step 0, falling by 1/iters per step, 0 from iters on."""
    assert teacher_forcing_prob(0, 50000) == 1.0
    assert teacher_forcing_prob(1, 50000) == pytest.approx(1 - 0.00002)  # PredRNN's rate
    assert teacher_forcing_prob(12500, 50000) == pytest.approx(0.75)
    assert teacher_forcing_prob(25000, 50000) == pytest.approx(0.5)
    assert teacher_forcing_prob(50000, 50000) == 0.0
    assert teacher_forcing_prob(90000, 50000) == 0.0
    assert teacher_forcing_prob(0, 0) == 0.0  # iters = 0: never teacher-force


def test_scheduled_sampling_mask_draws():
    m0 = scheduled_sampling_mask(8, 15, 0, 100)
    assert m0.shape == (8, 14) and m0.dtype == torch.bool and bool(m0.all())
    assert not bool(scheduled_sampling_mask(8, 15, 100, 100).any())
    g = torch.Generator().manual_seed(0)
    m = scheduled_sampling_mask(4000, 15, 75, 100, generator=g)  # p = 0.25
    assert abs(float(m.float().mean()) - 0.25) < 0.01
    # independent per sample and per step: each column and each row-block near 0.25 too
    assert float(m.float().mean(0).sub(0.25).abs().max()) < 0.04
    again = scheduled_sampling_mask(4000, 15, 75, 100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, again)
    assert scheduled_sampling_mask(3, 1, 5, 100).shape == (3, 0)  # one frame: nothing to feed
    cfg = ModelConfig(sampling_iters=40)
    assert float(sampling_mask_for(cfg, 2000, 3, 30).float().mean()) == pytest.approx(
        0.25, abs=0.03
    )
    assert not bool(sampling_mask_for(ModelConfig(sampling_iters=0), 10, 3, 0).any())


# --------------------------------------------------------------------------- overfitting


def overfit(name: str, steps: int) -> tuple[float, float, float, float]:
    """Train a tiny model on one batch of moving blobs; (first loss, best of the last 10
    losses, loss of an all-zero prediction, seconds). Denormals are flushed: as the sigmoid
    output approaches 0 on the background, denormal arithmetic slows CPU training ~3×.
    One thread: for a model this small, OpenMP threads on a busy shared 2-core machine spin
    against each other (measured 7 s vs 52 s for 150 ConvLSTM steps)."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        return _overfit(name, steps)
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _overfit(name: str, steps: int) -> tuple[float, float, float, float]:
    torch.manual_seed(0)
    x = moving_blobs(4, 6, 12, 12, seed=1)
    inputs, targets = x[:, :3], x[:, 3:]
    model = build(name, tiny(name, hidden=12))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    t0 = time.perf_counter()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs, 3), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    zero = float((targets**2).mean())
    return losses[0], min(losses[-10:]), zero, time.perf_counter() - t0


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_overfits_one_batch(name):
    first, last, zero, secs = overfit(name, 100)
    assert last < first / 10, (first, last)
    # and it learned the blobs, not just the dark background
    assert last < zero / 10, (last, zero)
    assert secs < 60


# --------------------------------------------------------------------------- shipped configs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    "path",
    ["models/convlstm.yaml", "models/predrnn.yaml", "models/mim.yaml", "hko.yaml", "demo.yaml"],
)
def test_shipped_configs_build(path):
    cfg = load_config(CONFIGS / path).model
    if cfg.name not in REGISTRY:
        pytest.skip(f"{cfg.name} not built yet")
    model = build(cfg.name, cfg)
    assert sum(p.numel() for p in model.parameters()) > 10_000
    if path == "demo.yaml":
        with torch.no_grad():
            assert model(torch.rand(1, 5, 1, 100, 100), 15).shape == (1, 15, 1, 100, 100)


# --------------------------------------------------------------------------- AMP, compile


@pytest.mark.parametrize("name", NAMES)
def test_autocast_runs_in_reduced_precision(name):
    """No dtype is hard-coded: under autocast (bfloat16 on CPU, the same code path as CUDA
    AMP's float16) the convolutions run in reduced precision and the nowcast stays close."""
    torch.manual_seed(0)
    model = build(name, tiny(name)).train()
    x = moving_blobs(2, 7, 8, 8)
    ref = model(x[:, :3], 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(x[:, :3], 4, x[:, 3:], torch.ones(2, 3))
        low = model(x[:, :3], 4)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - ref).detach().abs().max()) < 0.02
    torch.nn.functional.mse_loss(pred.float(), x[:, 3:]).backward()
    assert all(p.grad is not None and p.grad.dtype == p.dtype for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_torch_compile_matches_eager(name):
    """torch.compile (inductor, CPU) gives the eager nowcast and gradients (30–75 s each)."""
    torch.manual_seed(0)
    model = build(name, tiny(name, hidden=4))
    compiled = torch.compile(model)
    x = moving_blobs(2, 5, 8, 8)
    eager = model(x[:, :3], 2)
    out = compiled(x[:, :3], 2)
    assert torch.allclose(out, eager, atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_residual_output_adds_the_head_to_the_frame_before(name):
    """model.residual: with a zero head every lead is the last input (persistence); with a
    constant head bias b, lead k is clamp(last + k·b) — each frame is the one before plus
    the head, chained — and without residual the head alone gives the frame."""
    torch.manual_seed(0)
    x = moving_blobs(2, 4, 8, 8, seed=5)
    last = x[:, -1:]
    for residual in (True, False):
        model = build(name, tiny(name, residual=residual)).eval()
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.fill_(0.0)
            zero = model(x, 3)
            model.head.bias.fill_(0.1)
            step = model(x, 3)
        if residual:
            assert torch.equal(zero, last.expand(-1, 3, -1, -1, -1))
            for k in range(3):
                want = (last[:, 0] + 0.1 * (k + 1)).clamp(0, 1)
                assert torch.allclose(step[:, k], want, atol=1e-6)
        else:
            assert torch.equal(zero, torch.zeros_like(zero))
            assert torch.allclose(step, torch.full_like(step, 0.1))
