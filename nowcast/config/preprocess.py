"""`preprocess`: the HKO-style preparation (filled by the preprocess stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class PreprocessConfig(Section):
    """the HKO-style preparation (filled by the preprocess stage)."""
