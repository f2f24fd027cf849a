"""What a checkpoint tells predict to do: the network, its window, and the exact preprocessing.

Everything that decides what the model sees comes from the checkpoint, never from the
user's config: the preprocessing dict of the training store (gray-level bounds, Z–R, crop,
disk filter, output size, frame interval), the model's registry name and size, the number
of input frames (``data.n_in``) and of trained leads (``data.n_out``), the monthly noise
masks, the coverage and the 100×100 grid the store was made on. The field named with
``input.variable`` at training (if any) is read again unless the config names another.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from nowcast.checkpoint import build_model, checkpoint_config, file_hash, load_checkpoint
from nowcast.config.model import ModelConfig
from nowcast.config.zr import ZRConfig
from nowcast.errors import UserError
from nowcast.preprocess.transform import TransformSettings
from nowcast.store import StoreMeta
from nowcast.units import GrayScale


@dataclass(frozen=True)
class TrainedModel:
    """A trained model as predict uses it: a loaded, checked checkpoint (module docstring).

    settings: the per-frame transform's constants (gray bounds, crop, disk radius, size);
    noise_mask: (M, h, w) bool, one per month of ``months`` ('YYYY-MM');
    coverage: (h, w) bool; grid_x (w,), grid_y (h,) [m] of the training store.
    """

    path: Path
    sha256: str
    model_name: str
    model_cfg: ModelConfig
    n_in: int
    n_out: int
    step: int | None
    preprocess: dict[str, Any]
    settings: TransformSettings
    scale: GrayScale
    zr: ZRConfig
    interval_minutes: float
    input_variable: str | None
    months: list[str]
    noise_mask: np.ndarray
    coverage: np.ndarray
    grid_x: np.ndarray
    grid_y: np.ndarray
    grid_mapping: dict[str, Any]
    state_dict: dict[str, torch.Tensor]

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        """Load ``path``; UserError naming it if it is not a usable nowcast checkpoint."""
        path = Path(path)
        ckpt = load_checkpoint(path)
        config = checkpoint_config(path, ckpt)
        try:
            pre = dict(ckpt["preprocess"])
            masks, grid = ckpt["masks"], ckpt["grid"]
            # the Z–R the training files were read with: the store's, else the run's config
            zr = ZRConfig.model_validate(pre.get("zr", config.zr.model_dump()))
            trained = cls(
                path=path,
                sha256=file_hash(path),
                model_name=str(ckpt["model_name"]),
                model_cfg=config.model,
                n_in=config.data.n_in,
                n_out=config.data.n_out,
                step=ckpt.get("step"),
                preprocess=pre,
                settings=TransformSettings.from_dict(pre),
                scale=GrayScale.from_preprocess({**pre, "zr": zr.model_dump()}, source=str(path)),
                zr=zr,
                interval_minutes=float(pre["interval_minutes"]),
                input_variable=(pre.get("input") or {}).get("variable"),
                months=[str(m) for m in masks["months"]],
                noise_mask=np.asarray(masks["noise_mask"], dtype=bool),
                coverage=np.asarray(masks["coverage"], dtype=bool),
                grid_x=np.asarray(grid["x"], dtype=np.float64),
                grid_y=np.asarray(grid["y"], dtype=np.float64),
                grid_mapping=dict(grid.get("grid_mapping", {})),
                state_dict=ckpt["state_dict"],
            )
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise UserError(
                f"{path}: unusable nowcast checkpoint ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]})"
            ) from None
        return trained  # masks on the grid, one per month: load_checkpoint's contract check

    def build_model(self) -> torch.nn.Module:
        """The network with the checkpoint's weights, in eval mode on the CPU."""
        payload = {"model_name": self.model_name, "state_dict": self.state_dict}
        return build_model(self.path, payload, self.model_cfg, sized_by="its config").eval()

    def nearest_month(self, time: np.datetime64) -> str | None:
        """The month ('YYYY-MM') whose noise mask applies at ``time``: its calendar month,
        or the nearest month the checkpoint has (None without months). The very rule
        training uses to mask a window (:meth:`nowcast.store.StoreMeta.month_index`, which
        only needs ``months``)."""
        if not self.months:
            return None
        index = StoreMeta.month_index(types.SimpleNamespace(months=self.months), time)  # type: ignore[arg-type]
        return self.months[index]

    def noise_mask_for(self, time: np.datetime64, policy: str) -> np.ndarray:
        """Noise pixels (h, w) bool for a nowcast made at ``time``.

        ``nearest_month``: the mask of :meth:`nearest_month`; ``union``: noise in any month.
        No months: nothing is noise.
        """
        if not self.months:
            return np.zeros(self.coverage.shape, dtype=bool)
        if policy == "union":
            return self.noise_mask.any(axis=0)
        if policy == "nearest_month":
            return self.noise_mask[self.months.index(self.nearest_month(time))]
        raise ValueError(f"unknown noise-mask policy {policy!r}")
