"""Checkpoint files: the contract between train, evaluate and predict.

A checkpoint is a ``torch.save`` dict with at least these keys (train may add more)::

    format          "nowcast-checkpoint/1"
    model_name      registry name ("convlstm", "predrnn", "mim")
    config          the full resolved config (dict, as Config.model_dump(mode="json"))
    state_dict      model weights
    preprocess      the store's preprocessing config (dict; == StoreMeta.preprocess)
    masks           {"months": [...], "noise_mask": bool (M,H,W), "coverage": bool (H,W)}
    grid            {"x": (W,) m, "y": (H,) m, "grid_mapping": {...}}
    step            optimiser steps done
    version, git_commit

Writes are atomic (temp file + rename), so a kill never leaves a torn checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from nowcast import __version__
from nowcast.atomic import atomic_path
from nowcast.errors import UserError

FORMAT = "nowcast-checkpoint/1"
REQUIRED_KEYS = ("format", "model_name", "config", "state_dict", "preprocess", "masks", "grid")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format, version and git commit) to ``path``."""
    payload = {"format": FORMAT, "version": __version__, "git_commit": git_commit(), **payload}
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and check a checkpoint; anything that is not one is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a foreign file
        raise UserError(f"{path}: not a nowcast checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a nowcast checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise UserError(f"{path}: incomplete nowcast checkpoint (missing {', '.join(missing)})")
    return payload


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file (hex), e.g. to name the checkpoint a nowcast came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str | None:
    """The commit of the source tree nowcast runs from, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
