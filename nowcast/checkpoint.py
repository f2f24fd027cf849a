"""Checkpoint files: the contract between train, evaluate and predict.

A checkpoint is a ``torch.save`` dict that ``torch.load(..., weights_only=True)`` reads: it
holds only tensors, dicts, lists, tuples, ints, floats, strings, booleans and None, so
loading one never runs code. The keys (train may add more, see :mod:`nowcast.train.state`)::

    format          "nowcast-checkpoint/2" (str)
    model_name      registry name ("convlstm", "predrnn", "mim") (str)
    config          the full resolved config (dict, as Config.model_dump(mode="json"))
    state_dict      model weights (str → tensor)
    preprocess      the store's preprocessing config (dict; == StoreMeta.preprocess)
    masks           {"months": [str 'YYYY-MM', ...], "noise_mask": bool tensor (M, H, W),
                     "coverage": bool tensor (H, W)}
    grid            {"x": float64 tensor (W,) m, "y": float64 tensor (H,) m,
                     "grid_mapping": CF grid-mapping attributes as JSON values
                     (str, number, list)}
    step            optimiser steps done (int)
    version         nowcast version that wrote it (str); git_commit (str or None)

:func:`save_checkpoint` turns numpy arrays into tensors (grid-mapping attributes into
lists) and numpy scalars into Python numbers, and refuses any other object. Writes are atomic (temp file + rename), so a kill
or a failed write never leaves a torn checkpoint and never replaces a good one.

:func:`load_checkpoint` is the one reader (predict, evaluate, ``train.init_from`` and
``train --resume``); :func:`build_model` builds the network a checkpoint describes and puts
its weights in. A checkpoint of the older format 1 (numpy arrays, which only a full unpickler
reads) is refused; ``scripts/convert_checkpoint.py`` converts a file one trusts.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import re
import subprocess
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nowcast import __version__
from nowcast.atomic import atomic_path
from nowcast.errors import UserError

if TYPE_CHECKING:
    from nowcast.config import Config
    from nowcast.config.model import ModelConfig

FORMAT = "nowcast-checkpoint/2"
OLD_FORMAT = "nowcast-checkpoint/1"
REQUIRED_KEYS = ("format", "model_name", "config", "state_dict", "preprocess", "masks", "grid")
CONVERT_COMMAND = "python scripts/convert_checkpoint.py OLD.pt NEW.pt"
_PLAIN_LEAVES = (bool, int, float, str, type(None), torch.Tensor)
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with numpy arrays as tensors and numpy scalars as Python numbers; TypeError
    (naming the key path ``where``) for anything that is not a tensor, dict, list, tuple,
    int, float, str, bool or None. Containers are rebuilt only where something changed
    (an OrderedDict state_dict keeps its ``_metadata``)."""
    if isinstance(value, np.generic):  # before the leaves: np.float64 is a float subclass
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if type(value) in _PLAIN_LEAVES or isinstance(value, torch.Tensor):
        return value
    if type(value) in (dict, collections.OrderedDict):
        items = {k: plain(v, f"{where}[{k!r}]") for k, v in value.items()}
        for k in items:
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not a str or int")
        if all(items[k] is value[k] for k in items):
            return value
        out = type(value)(items)
        if hasattr(value, "_metadata"):
            out._metadata = value._metadata  # type: ignore[attr-defined]
        return out
    if type(value) in (list, tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if all(a is b for a, b in zip(items, value)):
            return value
        return type(value)(items)
    if isinstance(value, torch.Size):
        return tuple(value)
    raise TypeError(f"{where}: a {type(value).__qualname__} may not be stored in a checkpoint")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format, version and git commit) to ``path``.

    The payload is made plain first (:func:`plain`). A write the operating system refuses
    (read-only folder, disk full, file size limit) is a UserError naming ``path``; whatever
    was at ``path`` before is then left as it was.
    """
    payload = {"version": __version__, "git_commit": git_commit(), **payload, "format": FORMAT}
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    grid = payload["grid"]
    if isinstance(grid, dict) and isinstance(grid.get("grid_mapping"), dict):
        from nowcast.io.frame import jsonable  # netCDF attributes: arrays → lists, as JSON

        payload["grid"] = {**grid, "grid_mapping": jsonable(grid["grid_mapping"])}
    payload = plain(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # OS failures: UserError naming path
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and check a checkpoint with torch's safe unpickler (``weights_only=True``).

    UserError naming the file if it is missing or unreadable, not a checkpoint, holds an
    object a checkpoint may not hold (the object is never built), is of the older format 1
    (the message says how to convert a trusted file), or lacks a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _has_old_format_tag(path):
            raise UserError(old_format_message(path)) from None
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise UserError(
                f"{path}: refused: it holds objects a checkpoint may not hold "
                f"({found.group(1)}; nothing in it was run)"
            ) from None
        raise UserError(
            f"{path}: not a nowcast checkpoint (not a file torch.save wrote, or not one "
            "that loads without running code)"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a foreign file
        raise UserError(f"{path}: not a nowcast checkpoint ({_first_line(exc)})") from None
    if isinstance(payload, dict) and payload.get("format") == OLD_FORMAT:
        raise UserError(old_format_message(path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a nowcast checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise UserError(f"{path}: incomplete nowcast checkpoint (missing {', '.join(missing)})")
    problem = contract_problem(payload)
    if problem:
        raise UserError(f"{path}: unusable nowcast checkpoint ({problem})")
    return payload


def _tensor_problem(value: Any, key: str, dtype: str, ndim: int | None) -> str | None:
    """What is wrong with ``value`` as a dense ``ndim``-D (None: any) tensor of kind ``dtype`` ("bool"
    or "float"; floats must be finite), or None."""
    if not isinstance(value, torch.Tensor):
        return f"{key} is a {type(value).__name__}, not a tensor"
    if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
        return f"{key} is not a dense tensor"
    if ndim is not None and value.ndim != ndim:
        return f"{key} has {value.ndim} dimensions, expected {ndim}"
    if dtype == "bool" and value.dtype != torch.bool:
        return f"{key} is {value.dtype}, expected torch.bool"
    if dtype == "float":
        if value.dtype not in _FLOATS:
            return f"{key} is {value.dtype}, expected a float16/bfloat16/float32/float64 tensor"
        if not bool(torch.isfinite(value).all()):
            return f"{key} holds values that are not finite"
    return None


def contract_problem(payload: dict[str, Any]) -> str | None:
    """The first way ``payload`` breaks the checkpoint contract of the module docstring
    (types and shapes of every contract key; weights real, finite and dense), as words
    naming the key; None when it keeps it."""
    for key in ("model_name", "version"):
        if key in payload and not isinstance(payload[key], str):
            return f"{key} is a {type(payload[key]).__name__}, not a str"
    for key in ("config", "preprocess", "state_dict", "masks", "grid"):
        if not isinstance(payload[key], dict):
            return f"{key} is a {type(payload[key]).__name__}, not a mapping"
    step = payload.get("step")
    if step is not None and (type(step) is not int or step < 0):
        return f"step is {step!r}, not a whole number ≥ 0"
    for name, weight in payload["state_dict"].items():
        if not isinstance(name, str):
            return f"state_dict key {name!r} is not a str"
        problem = _tensor_problem(weight, f"state_dict[{name!r}]", "float", None)
        if problem:
            return problem
    grid, masks = payload["grid"], payload["masks"]
    for key in ("x", "y"):
        if key not in grid:
            return f"grid lacks {key}"
        problem = _tensor_problem(grid[key], f"grid[{key!r}]", "float", 1)
        if problem:
            return problem
        steps = grid[key].diff()
        if grid[key].numel() < 2 or not (bool((steps > 0).all()) or bool((steps < 0).all())):
            return f"grid[{key!r}] is not a strictly monotonic coordinate"
    if not isinstance(grid.get("grid_mapping", {}), dict):
        return "grid['grid_mapping'] is not a mapping"
    shape = (grid["y"].numel(), grid["x"].numel())
    for key, ndim in (("noise_mask", 3), ("coverage", 2)):
        if key not in masks:
            return f"masks lacks {key}"
        problem = _tensor_problem(masks[key], f"masks[{key!r}]", "bool", ndim)
        if problem:
            return problem
        if tuple(masks[key].shape[-2:]) != shape:
            return f"masks[{key!r}] is not on the {shape[0]}×{shape[1]} grid"
    months = masks.get("months")
    if not isinstance(months, list) or not all(isinstance(m, str) for m in months):
        return "masks['months'] is not a list of 'YYYY-MM' strings"
    if len(months) != masks["noise_mask"].shape[0]:
        return f"masks has {len(months)} months but {masks['noise_mask'].shape[0]} noise masks"
    return None


def old_format_message(path: Path) -> str:
    """The one-line refusal of a format-1 checkpoint, with the command that converts it."""
    return (
        f"{path}: an older nowcast checkpoint format ({OLD_FORMAT}) that is not loaded because "
        f"loading it could run code; if you trust the file, convert it with "
        f"`{CONVERT_COMMAND}`"
    )


def _has_old_format_tag(path: Path, limit: int = 64 << 20) -> bool:
    """Whether the pickle in ``path`` names the format-1 tag; reads bytes, unpickles nothing."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
                if not names:
                    return False
                with z.open(names[0]) as f:
                    blob = f.read(limit)
        else:
            with open(path, "rb") as f:
                blob = f.read(limit)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False
    return OLD_FORMAT.encode() in blob


def _first_line(exc: BaseException, skip: int = 0) -> str:
    """The exception's type and its first message line (after ``skip`` header lines, where
    there are more), for a one-line error."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    lines = lines[skip:] if len(lines) > skip else lines
    text = lines[0][:160] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def checkpoint_config(path: str | os.PathLike, payload: dict[str, Any]) -> Config:
    """The config a checkpoint was trained with, validated (UserError naming the file)."""
    from nowcast.config import ConfigError, validate_config

    config = payload["config"]
    if not isinstance(config, dict):
        raise UserError(f"{path}: config: expected a mapping, got a {type(config).__name__}")
    try:
        return validate_config(config, source=f"{path}: config")
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def build_model(
    path: str | os.PathLike,
    payload: dict[str, Any],
    model_cfg: ModelConfig | None = None,
    sized_by: str | None = None,
) -> torch.nn.Module:
    """The checkpoint's network (registry ``model_name``) with its weights, on the CPU, in
    train mode. Sized by ``model_cfg`` when given (e.g. fine-tuning: this run's model
    section; ``sized_by`` names it in the error, default "this config's model section"),
    else by the checkpoint's own validated config ("its config"). UserError naming the file
    if the config does not describe a network or the weights do not fit it."""
    from nowcast.models import build

    name = str(payload["model_name"])
    if sized_by is None:
        sized_by = "this config's model section" if model_cfg is not None else "its config"
    if model_cfg is None:
        model_cfg = checkpoint_config(path, payload).model
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, dict):
        raise UserError(f"{path}: state_dict is a {type(state_dict).__name__}, not a mapping")
    # first on the meta device (no memory): a config naming a huge network is refused
    # by the weights that do not fit it before any of it is allocated
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = build(name, model_cfg)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # copying into meta tensors is a no-op: said
                model.load_state_dict(state_dict)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise UserError(
                f"{path}: the weights do not fit a {name} sized by {sized_by} "
                f"({_first_line(exc, 1)})"
            ) from None
    return model


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
