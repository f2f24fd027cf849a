"""`predict`: nowcasts from new files (filled by the predict stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class PredictConfig(Section):
    """nowcasts from new files (filled by the predict stage)."""
