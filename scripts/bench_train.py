"""Training throughput: end-to-end samples/s (data loading included) against the model-only
step time measured in the same run (target: data loading costs ≤ 5 % of a step).

A store of moving rain cells on the real 100 × 100 grid is written to a temporary folder; a
demo-sized ConvLSTM trains on windows of 5 + 15 frames, batch 4. Steps alternate: an
"end-to-end" step draws its batch from the DataLoader (reading the store), a "model-only"
step repeats the optimiser step on a batch already in memory. Medians over the steps are
compared, so that load from other processes on the machine hits both alike. Done for
``data.workers`` 0 and 2.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from nowcast.config import load_config
from nowcast.data.toy import write_blob_store
from nowcast.progress import set_quiet
from nowcast.train.ddp import DistEnv
from nowcast.train.inputs import check_inputs
from nowcast.train.rundir import RunDir
from nowcast.train.trainer import Trainer

TARGET = 0.05
BATCH = 4


def _trainer(store: Path, out: Path, workers: int) -> Trainer:
    cfg = load_config(
        None,
        overrides={
            "data.store": str(store),
            "data.workers": workers,
            "model.name": "convlstm",
            "model.layers": 2,
            "model.hidden": 32,
            "model.kernel": 3,
            "train.batch_size": BATCH,
            "train.device": "cpu",
            "train.out_dir": str(out),
        },
    )
    return Trainer(
        cfg, DistEnv(), torch.device("cpu"), check_inputs(cfg), RunDir(out, writer=False)
    )


def _measure(trainer: Trainer, steps: int) -> tuple[float, float, float]:
    """Medians of (end-to-end step, model-only step, wait for the batch) in seconds."""
    trainer.sampler.set_epoch(0)
    it = iter(trainer.loader)
    held = next(it)
    trainer.train_step(held)  # warm-up
    e2e, model, wait = [], [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        trainer.train_step(batch)
        t2 = time.perf_counter()
        trainer.train_step(held)
        t3 = time.perf_counter()
        e2e.append(t2 - t0)
        wait.append(t1 - t0)
        model.append(t3 - t2)
    return statistics.median(e2e), statistics.median(model), statistics.median(wait)


def run(quick: bool = False) -> None:
    set_quiet(True)
    steps = 5 if quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        splits = ("train",) * 6 + ("val",)
        store = write_blob_store(Path(tmp) / "store.nc", splits=splits, h=100, w=100)
        print(
            f"ConvLSTM 2×32, 5 → 15 frames of 100×100, batch {BATCH}, {steps} steps of each kind, "
            f"{torch.get_num_threads()} torch threads"
        )
        head = (
            "workers",
            "e2e s/step",
            "model s/step",
            "batch wait s",
            "e2e samples/s",
            "loading cost",
        )
        print("".join(f"{h:>15}" for h in head) + f"{'target':>9}")
        for workers in (0, 2):
            trainer = _trainer(store, Path(tmp) / f"run{workers}", workers)
            e2e, model, wait = _measure(trainer, steps)
            cost = max(0.0, (e2e - model) / e2e)
            row = (
                f"{workers}",
                f"{e2e:.3f}",
                f"{model:.3f}",
                f"{wait:.4f}",
                f"{BATCH / e2e:.2f}",
                f"{cost:.1%}",
            )
            print("".join(f"{v:>15}" for v in row) + f"{'≤ 5 %':>9}")
            verdict = "meets" if cost <= TARGET else "MISSES"
            print(
                f"train: workers {workers}: data loading costs {cost:.1%} of an end-to-end step "
                f"(waiting for the batch: {wait / e2e:.1%}; {verdict} the ≤ 5 % target)"
            )
