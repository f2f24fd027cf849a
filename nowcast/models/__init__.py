"""The nowcasting networks behind one interface, and their registry.

    model = build("convlstm", cfg.model)      # or build(cfg.model.name, cfg.model)
    pred = model(inputs, n_out)               # (B, T_in, 1, H, W) → (B, n_out, 1, H, W)

Adding a model = one file with a :class:`~nowcast.models.base.Nowcaster` subclass taking a
:class:`~nowcast.config.model.ModelConfig`, one line in ``REGISTRY``, and its name in the
``Literal`` of ``ModelConfig.name`` (so that a misspelt name fails when the config loads).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nowcast.config.model import ModelConfig
from nowcast.errors import UserError
from nowcast.models.base import Nowcaster, widths
from nowcast.models.convlstm import ConvLSTMNowcaster
from nowcast.models.mim import MIMNowcaster
from nowcast.models.predrnn import PredRNNNowcaster
from nowcast.models.sampling import (
    sampling_mask_for,
    scheduled_sampling_mask,
    teacher_forcing_prob,
)

REGISTRY: dict[str, Callable[[ModelConfig], Nowcaster]] = {
    "convlstm": ConvLSTMNowcaster,
    "predrnn": PredRNNNowcaster,
    "mim": MIMNowcaster,
}

#: networks whose forecaster reads the extrapolated frames of ``model.advection``
_ADVECTION = {"convlstm"}
#: networks whose memory M passes between layers, so every layer must have the same width
_SHARED_MEMORY = {"predrnn", "mim"}


def check_config(name: str, cfg: ModelConfig) -> None:
    """Checks across keys; raises a one-line UserError naming the key."""
    if name not in REGISTRY:
        raise UserError(f"model.name: unknown model {name!r} (known: {', '.join(REGISTRY)})")
    if cfg.advection and name not in _ADVECTION:
        raise UserError(
            f"model.advection: only {', '.join(sorted(_ADVECTION))} reads the extrapolation, "
            f"not {name}"
        )
    if cfg.matching_reference == "advected" and not (cfg.advection and cfg.probability_matching):
        raise UserError(
            "model.matching_reference: 'advected' matches onto model.advection's extrapolated "
            "frames, so it needs model.advection: true and model.probability_matching: true"
        )
    if cfg.advection_motion != "lk" and not cfg.advection:
        raise UserError(
            f"model.advection_motion: {cfg.advection_motion!r} is only used with "
            "model.advection: true"
        )
    if any(v != 1.0 for v in cfg.correction_scale) and not (cfg.advection and cfg.residual):
        raise UserError(
            "model.correction_scale: scales the learned change to model.advection's "
            "extrapolation, so it needs model.advection: true and model.residual: true"
        )
    if cfg.kernel % 2 == 0:
        raise UserError(f"model.kernel: expected an odd kernel size, got {cfg.kernel}")
    if len(cfg.hidden) > 1:
        if len(cfg.hidden) != cfg.layers:
            raise UserError(
                f"model.hidden: {len(cfg.hidden)} widths given for model.layers = {cfg.layers}"
            )
        if name in _SHARED_MEMORY and len(set(cfg.hidden)) > 1:
            raise UserError(
                f"model.hidden: {name} passes its memory between layers, so all layers need "
                f"the same width, got {cfg.hidden}"
            )


def build(name: str, cfg: ModelConfig) -> Nowcaster:
    """The network ``name`` (``convlstm``, ``predrnn``, ``mim``) sized by ``cfg``, on the CPU."""
    check_config(name, cfg)
    model = REGISTRY[name](cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


__all__ = [
    "REGISTRY",
    "Nowcaster",
    "build",
    "check_config",
    "sampling_mask_for",
    "scheduled_sampling_mask",
    "teacher_forcing_prob",
    "widths",
]
