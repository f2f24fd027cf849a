"""Forecast methods: the one interface of the baselines and the trained networks.

A forecast method is a callable ``method(inputs, n_out) -> forecast`` with

- ``inputs``: gray levels (B, T_in, 1, H, W) float tensor — batch, time, channel (one:
  reflectivity), rows, columns, the layout of the networks in :mod:`nowcast.models`;
- ``forecast``: gray levels (B, n_out, 1, H, W) on the inputs' device.

A network built by :func:`nowcast.models.build` is one as it stands; the baselines of
:mod:`nowcast.evaluate.baselines` are too. Scores (:mod:`nowcast.verification.metrics`)
take frames (B, T, H, W): whoever scores drops the channel axis. This module imports no
torch (the command line reads baseline names without it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: ``(inputs (B, T_in, 1, H, W), n_out) -> (B, n_out, 1, H, W)``, gray levels
ForecastMethod = Callable[["torch.Tensor", int], "torch.Tensor"]


def persistence(inputs: torch.Tensor, n_out: int) -> torch.Tensor:
    """The last input frame repeated: (B, T_in, 1, H, W) → (B, n_out, 1, H, W) (a view)."""
    return inputs[:, -1:].expand(-1, n_out, -1, -1, -1)
