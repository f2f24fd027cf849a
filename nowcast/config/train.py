"""`train`: optimisation, validation, checkpoints and the run directory (`nowcast train`).

Steps are optimiser steps on one global batch (``batch_size`` windows, split evenly over
the DDP processes). Scheduled sampling follows ``model.sampling_iters`` (the model's key).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, NewType, Optional

from pydantic import Field, field_validator
from pydantic_core.core_schema import ValidationInfo

from nowcast.config.base import (
    Amp,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ProcessCount,
    Section,
)

MetricName = NewType("MetricName", str)
_METRICS = ("mse", "bmse", "csi_mean")


class TrainConfig(Section):
    """How to train: run directory, length, optimiser, LR schedule, loss, validation, devices."""

    out_dir: Path = Path("runs/run")
    """Run directory: config.yaml, metrics.jsonl, checkpoints/last.pt and best.pt. An
    existing run is never overwritten: continue it with --resume or choose another folder."""
    steps: PositiveInt = 2000
    """Optimiser steps to train for (ignored when ``epochs`` is set)."""
    epochs: Optional[PositiveInt] = None
    """Passes over the training windows; when set, steps = epochs × (windows // batch_size)."""
    batch_size: PositiveInt = 8
    """Windows per optimiser step, over all processes (must divide by the number of processes)."""
    optimizer: Literal["adam", "adamw"] = "adam"
    """Adam (L2 penalty added to the gradient) or AdamW (decoupled weight decay)."""
    lr: PositiveFloat = 1e-3
    """Peak learning rate."""
    weight_decay: NonNegativeFloat = 0.0
    """Weight decay of the optimiser (Adam: L2 penalty; AdamW: decoupled)."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: keep ``lr`` (constant) or decay it along a half cosine to ``lr_min`` at the last step."""
    warmup_steps: NonNegativeInt = 0
    """Steps of linear warm-up from lr/warmup_steps to lr."""
    lr_min: NonNegativeFloat = 0.0
    """Final learning rate of the cosine schedule."""
    grad_clip: Optional[PositiveFloat] = 1.0
    """Clip the global gradient L2 norm to this value (null: no clipping)."""
    loss: Literal["mse", "bmse"] = "mse"
    """Training loss over masked pixels: plain MSE of gray levels, or HKO-7 balanced B-MSE
    (weights 1/2/5/10/30 from the target rain rate at 2/5/10/30 mm/h)."""
    augment: bool = False
    """Show each training window under one of the 8 flips and quarter turns of the grid
    (only the 4 that keep its shape when H ≠ W), drawn per window from (seed, step), the
    same for its inputs, targets and mask (``nowcast.train.augment``): more variety for
    little data. Validation windows are never changed."""
    val_every: PositiveInt = 200
    """Validate every this many steps (and after the last step)."""
    val_thresholds: Annotated[list[PositiveFloat], Field(min_length=1)] = [
        0.5,
        2.0,
        5.0,
        10.0,
        30.0,
    ]
    """Rain-rate thresholds [mm/h] of the validation CSI (event = rate ≥ threshold)."""
    best_metric: MetricName = MetricName("csi_mean")
    """Validation score that picks best.pt: mse or bmse (lower is better), csi_mean or
    csi@<t> for a threshold t of val_thresholds (higher is better)."""
    patience: Optional[PositiveInt] = None
    """Early stopping: stop after this many validations without a better best_metric (null: never)."""
    checkpoint_every: PositiveInt = 100
    """Write checkpoints/last.pt every this many steps (also at every validation and at the end)."""
    log_every: PositiveInt = 10
    """Append a training line (mean loss, lr, samples/s) to metrics.jsonl every this many steps."""
    seed: int = 0
    """Seed of the weights, the shuffling and the scheduled-sampling draws."""
    init_from: Optional[Path] = None
    """Checkpoint whose weights start the run (fine-tuning, e.g. on real radar after synthetic
    pretraining); its model must have the same name and size. The optimiser, LR schedule,
    step and best score start afresh (null: weights from ``seed``)."""
    deterministic: bool = False
    """Use only deterministic algorithms (torch.use_deterministic_algorithms; slower on GPUs)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when available, else CPU."""
    threads: ProcessCount = 0
    """CPU threads torch computes with in each process (0: torch's default, one per core; under
    torchrun 1). On a machine whose cores other work shares, 1 is often much faster."""
    amp: Amp = "auto"
    """Mixed precision of the forward pass (autocast; weights, optimiser state and losses stay
    float32). auto: bf16 on a CPU with native bf16 units (AVX512-BF16 or AMX), else float32;
    bf16 on CUDA (fp16 with loss scaling where the GPU lacks bf16). bf16: bf16 on any device
    (emulated, slower, on a CPU without the units). fp16: CUDA only (the CPU runs float32).
    off: float32. The choice in force is printed and recorded in metrics.jsonl ("start") and
    in the checkpoints (``amp``)."""

    @field_validator("best_metric")
    @classmethod
    def _known_metric(cls, value: str, info: ValidationInfo) -> str:
        thresholds = info.data.get("val_thresholds") or []
        m = re.fullmatch(r"csi@(.+)", value)
        if value in _METRICS:
            return value
        if m:
            try:
                t = float(m.group(1))
            except ValueError:
                t = None
            if t is not None and any(abs(t - v) < 1e-9 for v in thresholds):
                return f"csi@{t:g}"
        names = ", ".join([*_METRICS, *(f"csi@{v:g}" for v in thresholds)])
        raise ValueError(f"expected one of {names}")
