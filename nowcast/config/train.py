"""`train`: optimisation and run directory (filled by the train stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class TrainConfig(Section):
    """optimisation and run directory (filled by the train stage)."""
