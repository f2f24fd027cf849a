"""`preprocess`: the HKO-style preparation of radar frames into the dataset store.

Steps (docs/preprocessing.md, Shi et al. 2015): gray level with fixed bounds → central crop →
disk filter → area-averaging resize → uint8; a K-means clutter mask per calendar month;
a regular time grid cut into blocks that are assigned to train / val / test.
Cross-key rules (z_max > z_min, size ≤ crop, …) are checked when the stage starts.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from nowcast.config.base import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ProcessCount,
    Section,
)


class PreprocessConfig(Section):
    """How raw frames become the 100×100 uint8 frames of the store, and how time is cut up."""

    z_min: float = -10.0
    """Reflectivity [dBZ] at gray level 0 (and below: no echo)."""
    z_max: float = 60.0
    """Reflectivity [dBZ] at gray level 1 (and above)."""
    crop: PositiveInt = 330
    """Side of the central square cropped from the input grid [input pixels] (with ``crops:
    tiles``: the side of every tile)."""
    crops: Literal["center", "tiles"] = "center"
    """Which crop × crop squares of the input grid become sequences: ``center`` the central
    one (the paper); ``tiles`` a grid of tiles from the top-left corner, ``tile_stride``
    apart, only those wholly inside the grid, each its own sequence (docs/store.md)."""
    tile_stride: Optional[PositiveInt] = None
    """With ``crops: tiles``: step between neighbouring tiles [input pixels]; unset = crop
    (tiles side by side). Only valid with ``crops: tiles``."""
    tile_min_coverage: Fraction = 0.0
    """With ``crops: tiles``: a tile is kept only when at least this share of its stored
    cells is inside coverage in every valid frame of the tile (0 = keep every tile that has
    a valid frame). Only valid with ``crops: tiles``."""
    disk_radius: Annotated[float, Field(ge=0, le=100)] = 10.0
    """Radius of the fspecial('disk') filter [input pixels]; 0 = no filtering."""
    size: PositiveInt = 100
    """Side of the stored frames [cells]; the crop is area-averaged down to size × size."""
    interval_minutes: Annotated[int, Field(ge=1, le=60)] = 6
    """Radar cycle: the time grid has one frame every interval_minutes (must divide a day)."""
    tolerance_minutes: NonNegativeFloat = 1.0
    """A file counts for a grid time when its valid time is within this many minutes."""
    block_frames: PositiveInt = 40
    """Frames per block; each day is cut into whole blocks from 00:00 UTC (leftovers unused)."""
    split_ratio: Annotated[list[NonNegativeInt], Field(min_length=3, max_length=3)] = [4, 1, 1]
    """Relative numbers of blocks for train, val, test (in that order) in each day."""
    seed: NonNegativeInt = 0
    """Seed of the random block-to-split assignment (each day is seeded by seed and date)."""
    drop_gappy_blocks: bool = True
    """A block with a missing frame gets no split (no windows); false keeps it, and only the
    windows that touch the gap are lost."""
    clutter_clusters: Annotated[int, Field(ge=0, le=64)] = 12
    """K-means clusters of the monthly per-pixel clutter features (0 = no clutter mask)."""
    clutter_window: Annotated[int, Field(ge=3, le=999)] = 21
    """Side [output cells] of the neighbourhood whose median echo frequency is a pixel's
    background."""
    clutter_min_excess: Annotated[float, Field(gt=0, le=1)] = 0.15
    """Noise clusters have echo in at least this much larger a share of the month's frames
    than their background…"""
    clutter_max_cv: Annotated[float, Field(gt=0, le=1)] = 0.2
    """…and an echo intensity at most this variable (std / mean of the gray level over the
    frames with echo)."""
    workers: ProcessCount = 0
    """Dask worker processes on this machine (a LocalCluster, one thread each); 0 = read and
    transform in this process."""
    scheduler: Optional[str] = None
    """Address of a running dask scheduler (tcp://host:8786) to spread the work over its
    workers; overrides ``workers``."""
    chunk_files: PositiveInt = 32
    """Files read and transformed per dask task."""
