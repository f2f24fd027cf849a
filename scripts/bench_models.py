"""Model cost and speed at the paper's radar configuration (target: ≥ 70 % of conv2d throughput).

Each network at 4 layers × 64 hidden, 5×5 kernels, 4×4 patches, 100×100 frames, 5 → 15,
batch 4 (``--quick``: 2 layers × 16, 5 → 3, batch 2, a smoke run only): parameters,
FLOPs per sample (``torch.utils.flop_counter`` on the meta device, so counting costs no
compute; convolutions and matmuls only, forward and forward + backward), the time of a
training step (forward, MSE, backward, Adam) and of a single nowcast (batch 1, no grad),
and the achieved FLOP/s as a fraction of this machine's conv2d throughput, measured in the
same run by a plain ``conv2d`` of the models' dominant shape (hidden → 4·hidden channels,
5×5, on the 25×25 patched grid, channels-last like the models; forward + backward at
the training batch for training, forward at batch 1 for inference). Also the
channels-first / channels-last time ratio.

The machine is shared, so the load changes during a run: model and reference timings
alternate, and each column is the median of its timings. Everything runs on one thread
(with two, other users' processes make OpenMP threads spin and times become noise). The
main columns are measured in channels-last (the default, ``model.channels_last``); the CL
columns compare both memory formats on a shorter run (5 → 3, batch 2), since a full-size
training step takes 10–60 s on one core.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nowcast.config.model import ModelConfig
from nowcast.models import REGISTRY, build
from nowcast.precision import autocast

TARGET = 0.70
#: one thread for the models and the reference alike (see the module docstring)
THREADS = 1
SIZE, T_IN, KERNEL, PATCH = 100, 5, 5, 4

Timer = Callable[[], None]


def seconds(fn: Timer) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(timers: list[Timer], rounds: int, warmup: bool = True) -> list[float]:
    """Median seconds of each timer, the timers called in turn ``rounds`` times."""
    if warmup:
        for fn in timers:
            fn()
    times: list[list[float]] = [[] for _ in timers]
    for _ in range(rounds):
        for fn, ts in zip(timers, times, strict=True):
            ts.append(seconds(fn))
    return [statistics.median(ts) for ts in times]


def count_flops(fn: Timer) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def model_flops(cfg: ModelConfig, n_out: int) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs for one sample, counted on the meta device."""
    model = build(cfg.name, cfg).to("meta")
    x = torch.zeros(1, T_IN, 1, SIZE, SIZE, device="meta")
    return (
        count_flops(lambda: model(x, n_out)),
        count_flops(lambda: model(x, n_out).sum().backward()),
    )


def model_timers(
    cfg: ModelConfig, batch: int, n_out: int, dtype: torch.dtype | None = None
) -> tuple[Timer, Timer]:
    """(one training step at ``batch``, one nowcast at batch 1) of a fresh model on the CPU,
    its forward passes under autocast to ``dtype`` (None: float32)."""
    torch.manual_seed(0)
    model = build(cfg.name, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, T_IN + n_out, 1, SIZE, SIZE)
    inputs, targets = x[:, :T_IN], x[:, T_IN:]
    cpu = torch.device("cpu")

    def step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast(cpu, dtype):
            pred = model(inputs, n_out)
        F.mse_loss(pred.float(), targets).backward()
        opt.step()

    def nowcast() -> None:
        model.eval()
        with torch.inference_mode(), autocast(cpu, dtype):
            model(inputs[:1], n_out)

    return step, nowcast


def reference_timers(hidden: int, batch: int, train_flops: float, infer_flops: float) -> tuple:
    """Plain conv2d hidden → 4·hidden, 5×5, on the patched grid, channels-last: (forward +
    backward at ``batch``, forward at batch 1, the FLOPs of each timer). Each timer repeats
    the conv until it does about ``train_flops`` | ``infer_flops``, so that it runs about
    as long as the model timing it is compared with: on a machine with bursty load a much
    shorter timing fits into quiet spells more often and looks faster."""
    cl, grid = torch.channels_last, SIZE // PATCH
    w = torch.randn(4 * hidden, hidden, KERNEL, KERNEL).contiguous(memory_format=cl)
    w.requires_grad_(True)
    xb = torch.randn(batch, hidden, grid, grid).contiguous(memory_format=cl).requires_grad_(True)
    x1 = torch.randn(1, hidden, grid, grid).contiguous(memory_format=cl)
    pad = KERNEL // 2

    def train_once() -> None:
        F.conv2d(xb, w, padding=pad).sum().backward()

    def infer_once() -> None:
        with torch.no_grad():
            F.conv2d(x1, w, padding=pad)

    n_train = max(8, round(train_flops / count_flops(train_once)))
    n_infer = max(8, round(infer_flops / count_flops(infer_once)))

    def train() -> None:
        for _ in range(n_train):
            train_once()

    def infer() -> None:
        for _ in range(n_infer):
            infer_once()

    return train, infer, count_flops(train), count_flops(infer)


def memory_format_ratio(cfg: ModelConfig, rounds: int) -> tuple[float, float]:
    """(train, inference) median time channels-first ÷ channels-last at 5 → 3, batch 2
    (> 1: channels-last is faster), the two formats timed alternately."""
    cf_step, cf_now = model_timers(cfg.model_copy(update={"channels_last": False}), 2, 3)
    cl_step, cl_now = model_timers(cfg.model_copy(update={"channels_last": True}), 2, 3)
    a, b, c, d = alternate([cf_step, cl_step, cf_now, cl_now], rounds)
    return a / b, c / d


def run(quick: bool = False) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(True)
    try:
        _run(quick)
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def _run(quick: bool) -> None:
    layers, hidden, n_out, batch = (2, 16, 3, 2) if quick else (4, 64, 15, 4)
    train_rounds, infer_rounds = (3, 5) if quick else (2, 5)
    print(
        f"config: {layers} layers × {hidden}, {KERNEL}×{KERNEL}, patch {PATCH}, {SIZE}×{SIZE}, "
        f"{T_IN} → {n_out}, batch {batch}, channels-last; torch {torch.__version__}, "
        f"{THREADS} thread",
        flush=True,
    )
    rows = []
    for name in REGISTRY:
        cfg = ModelConfig(
            name=name,
            layers=layers,
            hidden=[hidden],
            kernel=KERNEL,
            patch=PATCH,
            channels_last=True,
        )
        params = sum(p.numel() for p in build(name, cfg).parameters())
        fwd, trn = model_flops(cfg, n_out)
        step, nowcast = model_timers(cfg, batch, n_out)
        # the reference training timing lasts about a quarter of a step, the inference one
        # about as long as a nowcast
        ref_train, ref_infer, ref_train_flops, ref_infer_flops = reference_timers(
            hidden, batch, trn * batch / 4, fwd
        )
        # a full-size step is long enough that its one-off set-up costs do not matter
        step_s, ref_train_s = alternate([step, ref_train], train_rounds, warmup=quick)
        infer_s, ref_infer_s = alternate([nowcast, ref_infer], infer_rounds)
        cl_train, cl_infer = memory_format_ratio(cfg, 3)
        train_rate, ref_train_rate = trn * batch / step_s, ref_train_flops / ref_train_s
        infer_rate, ref_infer_rate = fwd / infer_s, ref_infer_flops / ref_infer_s
        rows.append(
            f"{name:<9}{params:>11,}{fwd / 1e9:>10.1f}{trn / 1e9:>10.1f}"
            f"{step_s * 1e3:>10.0f}{batch / step_s:>10.2f}{infer_s * 1e3:>10.0f}"
            f"{train_rate / 1e9:>8.1f} /{ref_train_rate / 1e9:>6.1f} = {train_rate / ref_train_rate:>4.0%}"
            f"{infer_rate / 1e9:>8.1f} /{ref_infer_rate / 1e9:>6.1f} = {infer_rate / ref_infer_rate:>4.0%}"
            f"{cl_train:>9.2f}{cl_infer:>9.2f}"
        )
        print(f"  {name} done", flush=True)
    print("GFLOP fwd | trn: per sample, forward | forward + backward (convolutions and matmuls)")
    print(f"train | infer GFLOP/s: model / conv2d reference = fraction (target ≥ {TARGET:.0%})")
    print(
        "CL train | infer: channels-first time ÷ channels-last time (> 1: channels-last "
        f"faster), at {T_IN} → 3, batch 2"
    )
    print(
        f"{'model':<9}{'params':>11}{'GFLOP fwd':>10}{'GFLOP trn':>10}{'train ms':>10}"
        f"{'samples/s':>10}{'infer ms':>10}{'train GFLOP/s':>23}{'infer GFLOP/s':>23}"
        f"{'CL train':>9}{'CL infer':>9}"
    )
    for r in rows:
        print(r)
