"""`data`: the dataset store (written by preprocess, read by train/evaluate) and its windows."""

from __future__ import annotations

from pathlib import Path

from nowcast.config.base import Section


class DataConfig(Section):
    """Where the dataset store lives and how windows are cut from it."""

    store: Path = Path("data/store.nc")
    """The dataset store file: `nowcast preprocess` writes it, train and evaluate read it."""
