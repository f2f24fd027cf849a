"""`evaluate`: scores, baselines and report (filled by the evaluate stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class EvaluateConfig(Section):
    """scores, baselines and report (filled by the evaluate stage)."""
