"""`model`: network and its size (filled by the models stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class ModelConfig(Section):
    """network and its size (filled by the models stage)."""
