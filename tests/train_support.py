"""Helpers for the data/train tests: tiny configs over small real stores, subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from nowcast.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]

# a ConvLSTM small enough to train a step in a few ms on one CPU thread
TINY_MODEL = {"name": "convlstm", "layers": 1, "hidden": 4, "kernel": 3, "patch": 4}


def tiny_config(store: Path, out_dir: Path, path: Path | None = None, **train) -> Config:
    """A tiny-model config over ``store``; ``train`` entries override train keys (and
    ``n_in``/``n_out``/``workers``/``model`` keys go to their sections). Written as YAML
    to ``path`` when given."""
    data = {"store": str(store), "n_in": train.pop("n_in", 3), "n_out": train.pop("n_out", 4)}
    data["workers"] = train.pop("workers", 0)
    model = {**TINY_MODEL, **train.pop("model", {})}
    tr = {
        "out_dir": str(out_dir),
        "steps": 12,
        "batch_size": 4,
        "val_every": 6,
        "log_every": 1,
        "checkpoint_every": 3,
        "device": "cpu",
        "amp": "off",  # float32: the same numbers on every CPU (tests/test_amp_cpu.py: bf16)
        **train,
    }
    raw = {"data": data, "model": model, "train": tr}
    if path is not None:
        path.write_text(yaml.safe_dump(raw))
        return load_config(path)
    return load_config(
        None, overrides={f"{s}.{k}": v for s, sec in raw.items() for k, v in sec.items()}
    )


def subprocess_env() -> dict[str, str]:
    """Environment of a CLI subprocess: one thread (the CI machine has two busy cores)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def nowcast_cmd(*args: str) -> list[str]:
    """``python -m nowcast <args>`` with this interpreter."""
    return [sys.executable, "-m", "nowcast", *args]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        nowcast_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        cwd=REPO,
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The model weights in a checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
