"""What a training checkpoint holds beyond the contract of :mod:`nowcast.checkpoint`.

Contract keys (format, model_name, config, state_dict, preprocess, masks, grid, step,
version, git_commit) plus, for an exact resume (all plain: tensors, dicts, lists, numbers,
strings, booleans, None)::

    optimizer, scheduler, grad_scaler   their state_dicts (grad_scaler None without fp16)
    rng             generator states, see :func:`rng_states`
    sampler         {"seed", "epoch", "windows_done", "steps_per_epoch"}: where the
                    shuffled epoch stands
    trainer         {"step", "persistence"} and the state_dict of every part of
                    :mod:`nowcast.train.callbacks`, side by side: "best_value",
                    "best_step" (BestCheckpoint), "bad_validations", "stopped_early"
                    (EarlyStopping); "persistence" maps val metric names to the
                    persistence forecast's scores
    world_size, total_steps   ints

The store's preprocessing JSON, noise masks, coverage and grid travel in every checkpoint,
so evaluate and predict can work from the checkpoint alone.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast.checkpoint import save_checkpoint
from nowcast.config.tree import Config
from nowcast.errors import UserError
from nowcast.store import StoreMeta


def store_payload(meta: StoreMeta) -> dict[str, Any]:
    """The store's preprocess JSON, masks and grid (the keys evaluate/predict need), as
    tensors: bool noise masks (M, H, W) and coverage (H, W), float64 x (W,) and y (H,) in
    metres; months as 'YYYY-MM' strings."""
    return {
        "preprocess": meta.preprocess,
        "masks": {
            "months": [str(m) for m in meta.months],
            "noise_mask": torch.from_numpy(np.array(meta.noise_mask, dtype=bool)),
            "coverage": torch.from_numpy(np.array(meta.coverage, dtype=bool)),
        },
        "grid": {
            "x": torch.from_numpy(np.array(meta.x, dtype=np.float64)),
            "y": torch.from_numpy(np.array(meta.y, dtype=np.float64)),
            "grid_mapping": dict(meta.grid_mapping),
        },
    }


def rng_states() -> dict[str, Any]:
    """Every global random generator's state, as plain values (see :func:`pack_rng`)."""
    return pack_rng(
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    )


def pack_rng(
    python: tuple, numpy: tuple, torch_state: torch.Tensor, cuda: list[torch.Tensor]
) -> dict[str, Any]:
    """Generator states in plain form:

    python  {"version": int, "state": int64 tensor (625,), "gauss_next": float or None}
            (``random.getstate()``)
    numpy   {"bit_generator": "MT19937", "keys": int64 tensor (624,), "pos": int,
             "has_gauss": int, "cached_gaussian": float} (``np.random.get_state()``)
    torch   uint8 tensor (CPU generator); cuda: list of uint8 tensors, one per GPU
    """
    version, state, gauss_next = python
    name, keys, pos, has_gauss, cached = numpy
    return {
        "python": {
            "version": int(version),
            "state": torch.tensor(state, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next),
        },
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch_state.clone(),
        "cuda": [s.clone() for s in cuda],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned, bit for bit."""
    py, nps = states["python"], states["numpy"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    keys = nps["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (nps["bit_generator"], keys, nps["pos"], nps["has_gauss"], nps["cached_gaussian"])
    )
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
RESUME_KEYS = ("optimizer", "scheduler", "rng", "trainer", "step")
"""What a checkpoint needs beyond the contract for ``--resume`` (best.pt and shipped models
lack the optimiser's state)."""


def check_resumable(
    ckpt: dict[str, Any], cfg_dump: dict[str, Any], meta: StoreMeta, path: Path
) -> None:
    """A resumed run must train the same thing: same model, windows and optimisation keys
    (RESUME_FREE may change), and a store with the same grid and preprocessing. A key that
    a run saved by an older version lacks counts as its default (it did what the default
    does)."""
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UserError(
            f"--resume: {path} holds no training state to continue ({', '.join(missing)} "
            "missing); start a new run with train.init_from to fine-tune its weights"
        )
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
