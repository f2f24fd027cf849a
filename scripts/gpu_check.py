#!/usr/bin/env python
"""The CUDA paths, end to end through the real CLI, on a machine with a GPU.

    python scripts/gpu_check.py --out /tmp/gpu_check [--device cuda]

A small synthetic archive is preprocessed once; then, each as a `nowcast` process:

- ``train`` on the GPU with ``train.amp`` fp16 (loss scaling), bf16 and off;
- exact resume on the GPU: a run stopped after 4 of 8 steps and resumed ends with the same
  weights as the uninterrupted 8-step run (``train.deterministic``), for fp16, whose resume
  also restores the grad scaler and the CUDA random generators;
- DDP over nccl: ``torchrun --nproc_per_node N`` (N = the number of visible GPUs);
- ``evaluate`` and ``predict`` on the GPU with the trained checkpoint.

Each check prints one line ``PASS``/``FAIL``; the exit code is the number of failures. With
``--device cpu`` the same checks run on the CPU (for trying the script without a GPU; the
amp settings then have no effect).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def nowcast(*args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable]), "-m", "nowcast", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


def train_config(path: Path, store: Path, out: Path, device: str, amp: str, steps: int) -> Path:
    path.write_text(
        f"""data: {{store: {store}, n_in: 5, n_out: 10, workers: 0}}
model: {{name: convlstm, layers: 2, hidden: 16, kernel: 3, patch: 4, residual: true}}
train:
  out_dir: {out}
  steps: {steps}
  batch_size: 4
  lr: 0.002
  val_every: 4
  checkpoint_every: 2
  log_every: 1
  seed: 0
  device: {device}
  amp: "{amp}"
  deterministic: true
"""
    )
    return path


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (created)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = ap.parse_args()
    out, device = args.out, args.device
    out.mkdir(parents=True, exist_ok=True)
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no GPU", file=sys.stderr)
        return 2
    failures = 0

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}", flush=True)

    def ran(name: str, proc: subprocess.CompletedProcess) -> bool:
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            check(name, False, f"exit {proc.returncode}: {tail}")
            return False
        return True

    archive, store = out / "synth", out / "store.nc"
    start = dt.date(2024, 6, 29).isoformat()
    t0 = time.perf_counter()
    for cmd in (
        ["synth", "-q", "--out", str(archive), "--start", start, "--days", "2", "--seed", "1"],
        ["preprocess", "-q", "--config", "configs/data/synth.yaml", "--input", str(archive),
         "--output", str(store)],
    ):  # fmt: skip
        if not ran(cmd[0], nowcast(*cmd)):
            return failures
    print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)

    runs: dict[str, Path] = {}
    for amp in ("fp16", "bf16", "auto", "off"):
        run = out / f"run_{amp}"
        cfg = train_config(out / f"{amp}.yaml", store, run, device, amp, 8)
        t0 = time.perf_counter()
        if ran(f"train amp={amp}", nowcast("train", "-q", "--config", str(cfg))):
            runs[amp] = run
            check(f"train amp={amp}", True, f"{time.perf_counter() - t0:.1f} s")

    if "fp16" in runs:
        run = out / "run_fp16_resumed"
        cfg = train_config(out / "fp16_half.yaml", store, run, device, "fp16", 4)
        ok = ran("resume: first half", nowcast("train", "-q", "--config", str(cfg)))
        ok = ok and ran(
            "resume",
            nowcast("train", "-q", "--config", str(cfg), "--resume", "--set", "train.steps=8"),
        )
        if ok:
            a, b = run / "checkpoints" / "last.pt", runs["fp16"] / "checkpoints" / "last.pt"
            check("resume fp16 = uninterrupted run (weights bit for bit)", same_weights(a, b))

    n = max(torch.cuda.device_count(), 1) if device == "cuda" else 2
    cfg = train_config(out / "ddp.yaml", store, out / "run_ddp", device, "bf16", 4)
    launcher = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
    ]  # fmt: skip
    if ran(f"DDP x{n}", nowcast("train", "-q", "--config", str(cfg), launcher=launcher)):
        check(f"DDP x{n} ({'nccl' if device == 'cuda' else 'gloo'})", True)

    if "bf16" in runs:
        ckpt = runs["bf16"] / "checkpoints" / "best.pt"
        ev = nowcast(
            "evaluate", "-q", "--config", str(out / "bf16.yaml"), "--checkpoint", str(ckpt),
            "--baselines", "persistence", "--out", str(out / "eval"),
            "--set", f"evaluate.device={device}",
        )  # fmt: skip
        if ran("evaluate", ev):
            check("evaluate", (out / "eval" / "report.json").is_file())
        frames = sorted(archive.glob("synth_*.nc"))[-5:]
        pr = nowcast(
            "predict", "-q", "--checkpoint", str(ckpt), "--out", str(out / "nowcast.nc"),
            "--input", *map(str, frames),
        )  # fmt: skip
        if ran("predict", pr):
            check("predict", (out / "nowcast.nc").is_file())
    print(f"{failures} failed", flush=True)
    return failures


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
