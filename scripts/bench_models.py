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
Times are the best of a few repetitions (a full-size training step: one). Each model's
conv2d reference is timed before, between and after its timings (best kept), and
everything runs on one thread (the machine is shared; with two threads other users' load
turns times into noise). The main columns are measured in channels-last (the default,
``model.channels_last``); the CL columns compare both memory formats on a shorter run
(5 → 3, batch 2: a full-size training step takes a minute or more on one core).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nowcast.config.model import ModelConfig
from nowcast.models import REGISTRY, build

TARGET = 0.70
#: one thread for the models and the reference alike: on the shared 2-core machine two
#: OpenMP threads spin against the other users' processes and times become noise
THREADS = 1


def best_time(fn: Callable[[], object], reps: int, warmup: int = 1) -> float:
    """Best wall time of ``reps`` calls of ``fn`` after ``warmup`` untimed calls (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def model_flops(cfg: ModelConfig, t_in: int, n_out: int, size: int) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs for one sample, counted on the meta device."""
    model = build(cfg.name, cfg).to("meta")
    x = torch.zeros(1, t_in, 1, size, size, device="meta")
    fwd = count_flops(lambda: model(x, n_out))
    train = count_flops(lambda: model(x, n_out).sum().backward())
    return fwd, train


def conv_reference(
    hidden: int, kernel: int, grid: int, batch: int, reps: int
) -> tuple[float, float]:
    """FLOP/s of a plain conv2d hidden → 4·hidden: (forward+backward at ``batch``, forward at 1)."""
    w = torch.randn(4 * hidden, hidden, kernel, kernel, requires_grad=True)
    xb = torch.randn(batch, hidden, grid, grid, requires_grad=True)
    x1 = torch.randn(1, hidden, grid, grid)
    pad = kernel // 2
    n = 8  # several convs per timing, as a model step has

    def train() -> None:
        for _ in range(n):
            F.conv2d(xb, w, padding=pad).sum().backward()

    def infer() -> None:
        with torch.no_grad():
            for _ in range(n):
                F.conv2d(x1, w, padding=pad)

    train_flops = count_flops(train)
    infer_flops = count_flops(infer)
    return train_flops / best_time(train, reps), infer_flops / best_time(infer, reps)


def measure(
    cfg: ModelConfig, batch: int, t_in: int, n_out: int, size: int, reps: int, train: bool
) -> dict[str, float]:
    """Seconds per training step (``train``; best of ``reps``, no warm-up: a full-size step
    takes long enough) and per single nowcast (best of ``reps`` after one warm-up)."""
    torch.manual_seed(0)
    model = build(cfg.name, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, t_in + n_out, 1, size, size)
    inputs, targets = x[:, :t_in], x[:, t_in:]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(inputs, n_out), targets).backward()
        opt.step()

    def nowcast() -> None:
        with torch.no_grad():
            model(inputs[:1], n_out)

    out = {}
    if train:
        model.train()
        out["train_s"] = best_time(step, reps, warmup=0)
    model.eval()
    out["infer_s"] = best_time(nowcast, reps)
    return out


def run(quick: bool = False) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(True)
    try:
        _run(quick)
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def memory_format_ratio(cfg: ModelConfig, batch: int, n_out: int, reps: int) -> tuple[float, float]:
    """(train, inference) time with channels-first ÷ time with channels-last, the two
    measured alternately; > 1: channels-last is faster."""
    best: dict[bool, dict[str, float]] = {}
    for _ in range(reps):
        for cl in (False, True):
            m = measure(cfg.model_copy(update={"channels_last": cl}), batch, 5, n_out, 100, 1, True)
            old = best.setdefault(cl, m)
            best[cl] = {k: min(v, old[k]) for k, v in m.items()}
    return (
        best[False]["train_s"] / best[True]["train_s"],
        best[False]["infer_s"] / best[True]["infer_s"],
    )


def _run(quick: bool) -> None:
    if quick:
        layers, hidden, n_out, batch, reps = 2, 16, 3, 2, 3
    else:
        layers, hidden, n_out, batch, reps = 4, 64, 15, 4, 2
    kernel, patch, size, t_in = 5, 4, 100, 5
    grid = size // patch
    cl_out, cl_batch = (n_out, batch) if quick else (3, 2)
    print(
        f"config: {layers} layers × {hidden}, {kernel}×{kernel}, patch {patch}, {size}×{size}, "
        f"{t_in} → {n_out}, batch {batch}, channels-last; torch {torch.__version__}, "
        f"{THREADS} thread",
        flush=True,
    )
    rows = []
    for name in REGISTRY:
        cfg = ModelConfig(
            name=name,
            layers=layers,
            hidden=[hidden],
            kernel=kernel,
            patch=patch,
            channels_last=True,
        )
        params = sum(p.numel() for p in build(name, cfg).parameters())
        fwd, trn = model_flops(cfg, t_in, n_out, size)
        # the reference is timed before, between and after the model's timings and its
        # best kept, so that a quiet spell on the shared machine cannot favour the model
        refs = [conv_reference(hidden, kernel, grid, batch, 5)]
        t = measure(cfg, batch, t_in, n_out, size, reps if quick else 1, train=True)
        refs.append(conv_reference(hidden, kernel, grid, batch, 5))
        t["infer_s"] = min(t["infer_s"], measure(cfg, 1, t_in, n_out, size, reps, False)["infer_s"])
        refs.append(conv_reference(hidden, kernel, grid, batch, 5))
        ref_train, ref_infer = (max(r[i] for r in refs) for i in (0, 1))
        cl_train, cl_infer = memory_format_ratio(cfg, cl_batch, cl_out, 2)
        train_flops = trn * batch / t["train_s"]
        infer_flops = fwd / t["infer_s"]
        rows.append(
            f"{name:<9}{params:>11,}{fwd / 1e9:>10.1f}{trn / 1e9:>10.1f}"
            f"{t['train_s'] * 1e3:>10.0f}{batch / t['train_s']:>10.2f}{t['infer_s'] * 1e3:>10.0f}"
            f"{train_flops / 1e9:>8.1f} /{ref_train / 1e9:>5.1f} = {train_flops / ref_train:>4.0%}"
            f"{infer_flops / 1e9:>8.1f} /{ref_infer / 1e9:>5.1f} = {infer_flops / ref_infer:>4.0%}"
            f"{cl_train:>9.2f}{cl_infer:>9.2f}"
        )
        print(f"  {name} done", flush=True)
    print("GFLOP fwd | trn: per sample, forward | forward + backward (convolutions and matmuls)")
    print("train | infer GFLOP/s: model / conv2d reference = fraction (target ≥ 70 %)")
    print(
        f"CL train | infer: channels-first time ÷ channels-last time (> 1: channels-last "
        f"faster), at {t_in} → {cl_out}, batch {cl_batch}"
    )
    print(
        f"{'model':<9}{'params':>11}{'GFLOP fwd':>10}{'GFLOP trn':>10}{'train ms':>10}"
        f"{'samples/s':>10}{'infer ms':>10}{'train GFLOP/s':>22}{'infer GFLOP/s':>22}"
        f"{'CL train':>9}{'CL infer':>9}"
    )
    for r in rows:
        print(r)
