"""Learning-rate schedule: linear warm-up, then constant or a half-cosine decay to ``lr_min``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nowcast.config.train import TrainConfig


@dataclass
class LRFactor:
    """Multiplier of the peak lr before optimiser step ``s`` (0-based), for ``LambdaLR``.

    warm-up (s < warmup): (s + 1) / warmup; then constant: 1; cosine: the lr goes from
    ``lr`` at the end of warm-up to ``lr_min`` at the last step, s = total − 1:
    lr_min + (lr − lr_min)·(1 + cos(π·(s − warmup)/(total − 1 − warmup)))/2.
    """

    kind: str
    lr: float
    lr_min: float
    warmup: int
    total: int

    def __call__(self, s: int) -> float:
        if s < self.warmup:
            return (s + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        span = max(1, self.total - 1 - self.warmup)
        progress = min(1.0, (s - self.warmup) / span)
        lr = self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return lr / self.lr


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """A ``LambdaLR`` stepping once per optimiser step.

    The factor is wrapped in a plain function so that the scheduler's state_dict holds only
    its step count: a resumed run recomputes the factor from its own config.
    """
    factor = LRFactor(cfg.lr_schedule, cfg.lr, cfg.lr_min, cfg.warmup_steps, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s))


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW with ``cfg.lr`` and ``cfg.weight_decay``."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
