"""`data`: the dataset store (written by preprocess, read by train/evaluate) and its windows."""

from __future__ import annotations

from pathlib import Path

from nowcast.config.base import FrameCount, ProcessCount, Section


class DataConfig(Section):
    """Where the dataset store lives and how windows are cut from it."""

    store: Path = Path("data/store.nc")
    """The dataset store file: `nowcast preprocess` writes it, train and evaluate read it."""
    n_in: FrameCount = 5
    """Input frames per window (the model reads these)."""
    n_out: FrameCount = 15
    """Target frames per window (the model predicts these); a window is n_in + n_out frames
    inside one block of one split."""
    workers: ProcessCount = 0
    """DataLoader worker processes reading windows from the store (0: read in the training
    process). Each worker opens its own read handle."""
