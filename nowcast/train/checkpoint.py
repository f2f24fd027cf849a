"""What a training checkpoint holds beyond the contract of :mod:`nowcast.checkpoint`.

Contract keys (format, model_name, config, state_dict, preprocess, masks, grid, step,
version, git_commit) plus, for an exact resume::

    optimizer, scheduler, grad_scaler   their state_dicts (grad_scaler None without fp16)
    rng             python, numpy, torch CPU and CUDA generator states
    sampler         {"seed", "epoch", "skip", "world"}: where the shuffled epoch stands
    trainer         TrainState as a dict: best metric and step, early-stopping counter, …

The store's preprocessing JSON, noise masks, coverage and grid travel in every checkpoint,
so evaluate and predict can work from the checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast.checkpoint import save_checkpoint
from nowcast.config.tree import Config
from nowcast.errors import UserError
from nowcast.store import StoreMeta


@dataclass
class TrainState:
    """The trainer's own counters (all that is not a tensor state)."""

    step: int = 0
    best_value: float | None = None
    best_step: int | None = None
    bad_validations: int = 0  # validations since the best one (early stopping)
    stopped_early: bool = False
    persistence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def store_payload(meta: StoreMeta) -> dict[str, Any]:
    """The store's preprocess JSON, masks and grid (the keys evaluate/predict need), as in
    :class:`StoreMeta`: numpy bool masks (M, H, W) and (H, W), x (W,) and y (H,) in metres."""
    return {
        "preprocess": meta.preprocess,
        "masks": {
            "months": list(meta.months),
            "noise_mask": np.asarray(meta.noise_mask, dtype=bool),
            "coverage": np.asarray(meta.coverage, dtype=bool),
        },
        "grid": {
            "x": np.asarray(meta.x, dtype=np.float64),
            "y": np.asarray(meta.y, dtype=np.float64),
            "grid_mapping": dict(meta.grid_mapping),
        },
    }


def rng_states() -> dict[str, Any]:
    """Every global random generator's state."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def write(path: Path, **payload: Any) -> Path:
    """Atomically save a training checkpoint (see module docstring for the keys)."""
    payload["rng"] = rng_states()
    return save_checkpoint(path, payload)


# keys a resumed run may change (they do not change what one step computes)
RESUME_FREE = {
    "train.steps",
    "train.epochs",
    "train.patience",
    "train.device",
    "train.amp",
    "train.deterministic",
    "train.threads",
    "train.log_every",
    "train.val_every",
    "train.checkpoint_every",
    "train.out_dir",
    "data.workers",
    "data.store",
}
RESUME_SECTIONS = ("model", "data", "train")


def check_resumable(
    ckpt: dict[str, Any], cfg_dump: dict[str, Any], meta: StoreMeta, path: Path
) -> None:
    """A resumed run must train the same thing: same model, windows and optimisation keys
    (RESUME_FREE may change), and a store with the same grid and preprocessing. A key that
    a run saved by an older version lacks counts as its default (it did what the default
    does)."""
    defaults = _flat(Config().model_dump(mode="json"))
    old, new = _flat(ckpt["config"]), _flat(cfg_dump)
    for key in sorted(set(old) | set(new)):
        if key.split(".")[0] not in RESUME_SECTIONS or key in RESUME_FREE:
            continue
        before = old.get(key, defaults.get(key))
        if before != new.get(key):
            raise UserError(
                f"--resume: {key} is {new.get(key)!r} but the run in {path.parent.parent} was "
                f"trained with {before!r} (resume with that run's config.yaml, or start "
                "a new train.out_dir)"
            )
    grid = ckpt["grid"]
    if (len(grid["y"]), len(grid["x"])) != meta.shape or ckpt["preprocess"] != meta.preprocess:
        raise UserError(
            f"--resume: data.store {meta.path} is not the store the run in {path.parent.parent} "
            "was trained on (different grid or preprocessing)"
        )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out
