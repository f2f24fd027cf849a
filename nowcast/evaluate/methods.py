"""Checkpoints as forecast methods: load, check against the store, wrap as ``(inputs, n_out) → forecast``.

A method takes gray-level inputs ``(B, T_in, 1, H, W)`` and returns ``(B, n_out, 1, H, W)`` on
the same device, like the baselines (:mod:`nowcast.forecast`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast.checkpoint import build_model, load_checkpoint
from nowcast.errors import UserError
from nowcast.precision import autocast
from nowcast.preprocess.merge import SHARED_KEYS
from nowcast.store import StoreMeta


def _canonical(value: Any) -> Any:
    """JSON round trip: the form both a store attribute and a checkpoint dict reduce to."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _first_difference(a: Any, b: Any, path: str = "preprocess") -> tuple[str, Any, Any] | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(
                a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}"
            )
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


EXECUTION_KEYS = ("workers", "scheduler", "chunk_files")
"""``preprocess`` keys that say how the work was spread, not what the data are: ignored."""


def _data_keys(preprocess: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _canonical(preprocess).items() if k not in EXECUTION_KEYS}


def check_preprocess(checkpoint: Path, payload: Mapping[str, Any], meta: StoreMeta) -> list[str]:
    """UserError unless the checkpoint's training frames mean what the store's frames mean:
    the same :data:`~nowcast.preprocess.merge.SHARED_KEYS` (gray bounds, Z–R, crop, disk
    filter, output size, frame interval; the first difference is named) and so the same
    output size. Everything else may differ (input product, grid, blocks, splits, seed,
    clutter rule): the store's own masks are used. Returns the other ``preprocess`` keys
    that differ, sorted (for the report), :data:`EXECUTION_KEYS` left out."""
    ours, theirs = _data_keys(payload["preprocess"]), _data_keys(meta.preprocess)
    for key in SHARED_KEYS:
        diff = _first_difference(
            ours.get(key, "<absent>"), theirs.get(key, "<absent>"), f"preprocess.{key}"
        )
        if diff is not None:
            name, a, b = diff
            raise UserError(
                f"{checkpoint}: preprocessing differs from the store {meta.path} "
                f"({name} = {a!r} in the checkpoint, {b!r} in the store): its frames do not "
                "mean what the store's mean"
            )
    coverage = np.asarray(payload["masks"]["coverage"])
    if coverage.shape != meta.shape:
        raise UserError(
            f"{checkpoint}: grid {coverage.shape[0]}×{coverage.shape[1]} differs from the "
            f"store's {meta.shape[0]}×{meta.shape[1]} ({meta.path})"
        )
    return sorted(
        key
        for key in set(ours) | set(theirs)
        if key not in SHARED_KEYS and ours.get(key, "<absent>") != theirs.get(key, "<absent>")
    )


class ModelMethod:
    """A trained network as a forecast method (:mod:`nowcast.forecast`), in eval mode under
    ``torch.inference_mode``, its forward pass under autocast to ``amp`` (None: float32);
    forecasts are float32."""

    def __init__(self, model: torch.nn.Module, amp: torch.dtype | None = None):
        self.model = model.eval()
        self.amp = amp

    def __call__(self, inputs: torch.Tensor, n_out: int) -> torch.Tensor:
        """(B, T_in, 1, H, W) gray → (B, n_out, 1, H, W) float32 gray, on the inputs' device."""
        with torch.inference_mode(), autocast(inputs.device, self.amp):
            return self.model(inputs, n_out).float()


def load_model(
    checkpoint: Path, meta: StoreMeta, device: torch.device, amp: torch.dtype | None = None
) -> tuple[str, ModelMethod, list[str]]:
    """(registry model name, method, preprocess keys that differ from the store's) from a
    checkpoint file, after checking it against the store (:func:`check_preprocess`); the
    network runs on ``device`` in the precision ``amp`` (None: float32)."""
    payload = load_checkpoint(checkpoint, map_location="cpu")
    differing = check_preprocess(checkpoint, payload, meta)
    model = build_model(checkpoint, payload)
    return str(payload["model_name"]), ModelMethod(model.to(device), amp), differing


def method_labels(names: list[str], paths: list[Path]) -> list[str]:
    """Unique report labels: the model name, or ``name:<run folder>`` (then ``#i``) on a clash."""
    labels = []
    for name, path in zip(names, paths):
        label = name
        if names.count(name) > 1:
            run = path.resolve().parent
            run = run.parent if run.name == "checkpoints" else run
            label = f"{name}:{run.name}/{path.stem}"
        base, i = label, 2
        while label in labels:
            label, i = f"{base}#{i}", i + 1
        labels.append(label)
    return labels
