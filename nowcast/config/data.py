"""`data`: the dataset store and its windows (filled by the data/train stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class DataConfig(Section):
    """the dataset store and its windows (filled by the data/train stage)."""
