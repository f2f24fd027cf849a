"""float32 against bf16 autocast on this CPU, for the paper-size networks of configs/models/.

ConvLSTM (2 × 64, 3×3), PredRNN and MIM (4 × 64, 5×5), 4×4 patches, 100×100 frames, 5 → 15
(``--quick``: 2 × 16 networks, 5 → 3, a smoke run only). For each network and precision:

- train samples/s: one training step (forward, MSE in float32, backward, Adam on float32
  weights) at batch ``BATCH``;
- nowcast latency: one forecast at batch 1 under ``torch.inference_mode``;
- achieved GFLOP/s (convolutions and matmuls, counted by ``torch.utils.flop_counter``) as a
  share of the bf16 peak: a large bf16 ``conv2d`` (128 → 448 channels, 5×5, 25×25, batch 8,
  channels-last, forward) timed in the same run; the same conv2d in float32 gives the
  ceiling bf16 ÷ float32 of this CPU's convolution units (about 2× with AVX512-BF16 alone,
  several times that with AMX tiles), which bounds the speed-up of a convolution-bound network;
- the bf16 error of a 20-step rollout (5 inputs → 20 leads, eval mode, fresh weights of
  seed 0 on smooth random fields): the largest absolute difference and the RMS difference
  from the float32 forecast in gray levels, at leads 1, 10 and 20.

The machine may be shared, so float32 and bf16 timings alternate and each is the median of
its rounds; the spread (max / min − 1 over the rounds) is printed beside each speed-up.
Threads: ``--threads`` (default 1); networks: ``--models`` (default all three).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from bench_models import Timer, count_flops, model_flops, model_timers

from nowcast.config.model import ModelConfig
from nowcast.models import build
from nowcast.precision import autocast, cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[1]
SIZE, T_IN = 100, 5
BATCH = 2
BF16 = torch.bfloat16
CPU = torch.device("cpu")


def paper_config(name: str) -> ModelConfig:
    """The model section of configs/models/<name>.yaml, channels-last."""
    raw = yaml.safe_load((ROOT / "configs" / "models" / f"{name}.yaml").read_text())["model"]
    return ModelConfig(**{**raw, "channels_last": True})


def rounds_of(timers: list[Timer], rounds: int) -> list[list[float]]:
    """Seconds of each timer over ``rounds`` rounds, the timers called in turn (after one
    warm-up call each)."""
    for fn in timers:
        fn()
    times: list[list[float]] = [[] for _ in timers]
    for _ in range(rounds):
        for fn, ts in zip(timers, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return times


def spread(ts: list[float]) -> float:
    return max(ts) / min(ts) - 1.0


def peak_timer(dtype: torch.dtype = BF16) -> tuple[Timer, int]:
    """Ten conv2d 128 → 448, 5×5, on 25×25, batch 8, channels-last (forward) in ``dtype``,
    and their FLOPs."""
    cl = torch.channels_last
    w = torch.randn(448, 128, 5, 5).to(dtype).contiguous(memory_format=cl)
    x = torch.randn(8, 128, 25, 25).to(dtype).contiguous(memory_format=cl)

    def once() -> None:
        with torch.inference_mode():
            F.conv2d(x, w, padding=2)

    def ten() -> None:
        for _ in range(10):
            once()

    return ten, count_flops(ten)


def smooth_inputs(n: int, seed: int = 0) -> torch.Tensor:
    """(1, n, 1, SIZE, SIZE) smooth random fields in [0, 1], drifting by one pixel per frame."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, SIZE // 10, SIZE // 10, generator=g)
    field = F.interpolate(base, size=(SIZE + n, SIZE + n), mode="bicubic").clamp(0, 1)[0, 0]
    return torch.stack([field[k : k + SIZE, k : k + SIZE] for k in range(n)])[None, :, None]


def rollout_error(cfg: ModelConfig, leads: int = 20) -> dict[int, tuple[float, float]]:
    """{lead: (max |bf16 − float32|, RMS difference)} in gray levels over a ``leads``-step
    forecast of a fresh network (seed 0) in eval mode."""
    torch.manual_seed(0)
    model = build(cfg.name, cfg).eval()
    x = smooth_inputs(T_IN)
    with torch.inference_mode():
        ref = model(x, leads)
        with autocast(CPU, BF16):
            low = model(x, leads).float()
    d = (low - ref)[0, :, 0]
    return {
        k: (float(d[k - 1].abs().max()), float(d[k - 1].pow(2).mean().sqrt()))
        for k in (1, 10, leads)
    }


MODELS = ("convlstm", "predrnn", "mim")


def run(quick: bool = False, threads: int = 1, models: tuple[str, ...] = MODELS) -> None:
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"bench precision: unknown model(s) {unknown}; known: {list(MODELS)}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _run(quick, threads, models)
    finally:
        torch.set_num_threads(before)


def _run(quick: bool, threads: int, models: tuple[str, ...]) -> None:
    n_out = 3 if quick else 15
    train_rounds, infer_rounds = (2, 3) if quick else (3, 5)
    print(
        f"CPU native bf16: {cpu_has_native_bf16()} (capability "
        f"{torch.backends.cpu.get_cpu_capability()}); torch {torch.__version__}; {threads} "
        f"thread(s); {SIZE}×{SIZE}, {T_IN} → {n_out}, train batch {BATCH}, channels-last",
        flush=True,
    )
    peak, peak_flops = peak_timer()
    peak32, _ = peak_timer(torch.float32)
    t32, t16 = rounds_of([peak32, peak], 3 if quick else 5)
    m32, m16 = statistics.median(t32), statistics.median(t16)
    print(
        f"conv2d peak (128 → 448, 5×5, 25×25, batch 8): float32 "
        f"{peak_flops / m32 / 1e9:.0f} GFLOP/s, bf16 {peak_flops / m16 / 1e9:.0f} GFLOP/s: "
        f"bf16 ÷ float32 = {m32 / m16:.2f}× (±{max(spread(t32), spread(t16)):.0%}), the most a convolution-bound "
        "network can gain from bf16 on this CPU",
        flush=True,
    )
    rows, errors = [], []
    for name in models:
        cfg = paper_config(name)
        if quick:
            cfg = cfg.model_copy(update={"layers": 2, "hidden": [16]})
        fwd, trn = model_flops(cfg, n_out)
        s32, n32 = model_timers(cfg, BATCH, n_out, None)
        s16, n16 = model_timers(cfg, BATCH, n_out, BF16)
        t_s32, t_s16, t_pk = rounds_of([s32, s16, peak], train_rounds)
        t_n32, t_n16, t_pk2 = rounds_of([n32, n16, peak], infer_rounds)
        med = statistics.median
        peak_rate = peak_flops / med(t_pk + t_pk2)
        rows.append(
            f"{name:<9}{cfg.layers}×{cfg.hidden[0]} k{cfg.kernel}"
            f"{BATCH / med(t_s32):>9.2f}{BATCH / med(t_s16):>9.2f}"
            f"{med(t_s32) / med(t_s16):>7.2f}× ±{max(spread(t_s32), spread(t_s16)):<5.0%}"
            f"{med(t_n32) * 1e3:>9.0f}{med(t_n16) * 1e3:>9.0f}"
            f"{med(t_n32) / med(t_n16):>7.2f}× ±{max(spread(t_n32), spread(t_n16)):<5.0%}"
            f"{trn * BATCH / med(t_s16) / peak_rate:>9.0%}{fwd / med(t_n16) / peak_rate:>9.0%}"
            f"{peak_rate / 1e9:>9.0f}"
        )
        err = rollout_error(cfg)
        errors.append(
            f"{name:<9}" + "".join(f"{err[k][0]:>12.4f}{err[k][1]:>10.4f}" for k in sorted(err))
        )
        print(f"  {name} done", flush=True)
    print(
        "samples/s: training steps at batch "
        f"{BATCH}; nowcast: ms per forecast at batch 1; ×: float32 time ÷ bf16 time "
        "(± the larger round-to-round spread, max/min − 1); peak%: achieved bf16 GFLOP/s ÷ "
        "the bf16 conv2d peak measured beside it"
    )
    print(
        f"{'model':<9}{'size':<8}{'sps f32':>9}{'sps bf16':>9}{'train':>15}"
        f"{'ms f32':>9}{'ms bf16':>9}{'nowcast':>15}{'trn peak':>9}{'inf peak':>9}"
        f"{'peak GF/s':>9}"
    )
    for r in rows:
        print(r)
    print("bf16 − float32 forecast, 20-step rollout (gray levels; 1/255 = 0.0039): max | RMS")
    print(f"{'model':<9}" + "".join(f"{f'lead {k} max':>12}{'RMS':>10}" for k in (1, 10, 20)))
    for r in errors:
        print(r)
