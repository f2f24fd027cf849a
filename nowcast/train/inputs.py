"""Everything a training run needs checked before it starts, with one-line errors.

Checked in this order (each a UserError naming the key or file): the model name, the
store (exists, is a store, has a pixel that counts, has a gray scale), the grid against
``model.patch``, windows in the train and val splits, the batch size against the training
windows and the number of processes, the device, the starting weights (``train.init_from``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nowcast.checkpoint import build_model, load_checkpoint
from nowcast.config import Config
from nowcast.data import WindowDataset, open_split
from nowcast.device import resolve_device
from nowcast.errors import UserError
from nowcast.models import check_config
from nowcast.models.advection import check_prior_inputs
from nowcast.store import StoreMeta, read_meta
from nowcast.train.ddp import DistEnv
from nowcast.units import GrayScale


@dataclass
class TrainInputs:
    """The store and its train/val windows, checked."""

    meta: StoreMeta
    train: WindowDataset
    val: WindowDataset
    scale: GrayScale
    init_weights: dict[str, torch.Tensor] | None = None  # train.init_from's weights


def check_inputs(cfg: Config, env: DistEnv | None = None) -> TrainInputs:
    """Open and check the store and its splits for ``cfg`` (see module docstring)."""
    env = env or DistEnv()
    check_config(cfg.model.name, cfg.model)
    meta = read_meta(cfg.data.store)
    meta.require_counting_pixels()
    h, w = meta.shape
    p = cfg.model.patch
    if h % p or w % p:
        raise UserError(
            f"data.store: {meta.path}: the {h}×{w} grid is not divisible by model.patch = {p} "
            "(choose a patch size that divides both sides)"
        )
    # the store's Z–R relation; the config's `zr` only where the store records none (as evaluate)
    scale = GrayScale.from_preprocess(
        meta.preprocess, source=str(meta.path), zr_default=cfg.zr.model_dump()
    )
    n_in, n_out = cfg.data.n_in, cfg.data.n_out
    if cfg.model.advection:
        check_prior_inputs(cfg.model.advection_motion, n_in)
    train = open_split(meta, "train", n_in, n_out)
    val = open_split(meta, "val", n_in, n_out)
    bs = cfg.train.batch_size
    if bs % env.world:
        raise UserError(f"train.batch_size: {bs} does not divide evenly over {env.world} processes")
    if len(train) < bs:
        raise UserError(
            f"train.batch_size: {bs} is more than the {len(train)} training windows of {meta.path}"
        )
    init = load_init_weights(cfg) if cfg.train.init_from is not None else None
    return TrainInputs(meta=meta, train=train, val=val, scale=scale, init_weights=init)


def load_init_weights(cfg: Config) -> dict[str, torch.Tensor]:
    """The weights of ``train.init_from``, checked to fit ``cfg.model`` (UserError naming the
    key and file: not a checkpoint, another model, another size)."""
    path = cfg.train.init_from
    try:
        payload = load_checkpoint(path)
        name = str(payload["model_name"])
        if name != cfg.model.name:
            raise UserError(f"{path} holds a {name} model, not the {cfg.model.name} of model.name")
        build_model(path, payload, cfg.model)
    except UserError as exc:
        raise UserError(f"train.init_from: {exc}") from None
    return payload["state_dict"]


def pick_device(name: str, env: DistEnv) -> torch.device:
    """``train.device`` → a torch device (:func:`nowcast.device.resolve_device`); on CUDA the
    GPU of this process's LOCAL_RANK, made the current one."""
    device = resolve_device(name, "train.device")
    if device.type != "cuda":
        return device
    if env.local_rank >= torch.cuda.device_count():
        raise UserError(
            f"train.device: process LOCAL_RANK {env.local_rank} has no GPU "
            f"(only {torch.cuda.device_count()} visible)"
        )
    torch.cuda.set_device(env.local_rank)
    return torch.device("cuda", env.local_rank)
