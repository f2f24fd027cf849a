"""Helpers for the predict tests: small CF-netCDF radar frames and checkpoints made for them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from nowcast.checkpoint import save_checkpoint
from nowcast.config import Config, load_config
from nowcast.config.synth import SynthConfig
from nowcast.io import read_frame
from nowcast.models import build
from nowcast.preprocess.transform import TransformSettings, output_coordinates
from nowcast.synth import grid_coordinates, write_frame

TINY_MODEL = {"name": "convlstm", "layers": 1, "hidden": 4, "kernel": 3, "patch": 4}
START = dt.datetime(2024, 7, 20, 12, 0)
SIZE = 360  # > the default 330 crop


def blob(k: int, size: int = SIZE) -> np.ndarray:
    """A rain cell moving one pixel a step on −32 dBZ 'no echo', (size, size) dBZ."""
    yy, xx = np.mgrid[0:size, 0:size]
    r2 = (xx - 150.0 - k) ** 2 + (yy - 170.0) ** 2
    return np.where(r2 < 60.0**2, 45.0 - np.sqrt(r2) / 3.0, -32.0).astype(np.float32)


def write_frames(
    folder: Path,
    minutes: Sequence[float],
    field: Callable[[int], np.ndarray] = blob,
    start: dt.datetime = START,
    names: Sequence[str] | None = None,
    pixel_km: float = 1.0,
) -> list[Path]:
    """One CF-1.8 reflectivity file per entry of ``minutes`` (after ``start``), by synth's
    writer; frame ``k`` holds ``field(k)`` (H, W) dBZ on a grid centred on the radar."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, m in enumerate(minutes):
        t = start + dt.timedelta(minutes=float(m))
        name = names[k] if names else f"radar_{t:%Y%m%d%H%M%S}.nc"
        paths.append(folder / name)
        dbz = field(k)
        x = grid_coordinates(dbz.shape[1], pixel_km)[0]
        y = grid_coordinates(dbz.shape[0], pixel_km)[1]
        write_frame(paths[-1], t, dbz, x, y, SynthConfig())
    return paths


def config(*sets: str) -> Config:
    """Defaults at a 6-minute interval, plus ``--set`` style overrides."""
    return load_config(None, ["preprocess.interval_minutes=6", *sets])


def make_checkpoint(
    path: Path,
    frame_file: Path,
    cfg: Config | None = None,
    n_in: int = 3,
    n_out: int = 4,
    months: Sequence[str] = ("2024-07",),
    noise: np.ndarray | None = None,
    coverage: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """A nowcast checkpoint (untrained tiny ConvLSTM) for the grid of ``frame_file``."""
    cfg = cfg or config()
    frame = read_frame(frame_file, cfg.input, cfg.zr, cfg.preprocess.interval_minutes)
    settings = TransformSettings.from_config(cfg.preprocess)
    x, y = output_coordinates(frame.x, frame.y, settings)
    n = settings.size
    dump = cfg.model_dump(mode="json")
    dump["model"] = {**dump["model"], **TINY_MODEL}
    dump["data"].update(n_in=n_in, n_out=n_out)
    model_cfg = load_config(None, [f"model.{k}={v}" for k, v in TINY_MODEL.items()]).model
    torch.manual_seed(seed)
    return save_checkpoint(
        path,
        {
            "model_name": "convlstm",
            "config": dump,
            "state_dict": build("convlstm", model_cfg).state_dict(),
            "preprocess": {**cfg.preprocess.model_dump(mode="json"), "zr": cfg.zr.model_dump()},
            "masks": {
                "months": list(months),
                "noise_mask": np.zeros((len(months), n, n), bool) if noise is None else noise,
                "coverage": np.ones((n, n), bool) if coverage is None else coverage,
            },
            "grid": {"x": x, "y": y, "grid_mapping": frame.grid_mapping},
            "step": 0,
        },
    )


def cell_centres_reference(
    coord: np.ndarray, crop: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Literal references for the output cells' coordinates along one axis.

    exact: the mean of the (linear) coordinate over each cell, i.e. the midpoint of the cell's
    edges, the crop's outer edge being half a pixel beyond its first pixel centre;
    stepwise: the overlap-weighted mean of the crop's pixel-centre coordinates (pixel i spans
    [i, i+1), cell j spans [j·s, (j+1)·s), s = crop/size), within half a pixel of exact.
    """
    start = (coord.size - crop) // 2
    part = coord[start : start + crop]
    step = (part[-1] - part[0]) / (crop - 1)
    s = crop / size
    edges = part[0] - step / 2 + np.arange(size + 1) * s * step
    exact = (edges[:-1] + edges[1:]) / 2
    stepwise = np.empty(size)
    for j in range(size):
        w = np.array([max(0.0, min(i + 1, (j + 1) * s) - max(i, j * s)) for i in range(crop)])
        stepwise[j] = np.sum(w * part) / np.sum(w)
    return exact, stepwise
