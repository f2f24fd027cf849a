"""`input`: which radar files to read and how (filled by the preprocess stage)."""

from __future__ import annotations

from nowcast.config.base import Section


class InputConfig(Section):
    """which radar files to read and how (filled by the preprocess stage)."""
