"""Blocks of frames and their random assignment to train / val / test.

Each day of the time grid is cut into ``per_day // block_frames`` whole blocks from 00:00
(frames after the last whole block: block −1, split −1). Block ids run over the whole
store (day index × blocks per day + block in day). Within each day the blocks get the
labels train / val / test in the ratio ``split_ratio`` (largest-remainder rounding, e.g.
6 blocks → 4/1/1, 7 blocks → 5/1/1), shuffled by a generator seeded by ``(seed, date)``,
so a day's assignment does not depend on the rest of the archive.

A block with a missing frame keeps its block id but gets split −1 when
``drop_gappy_blocks`` (the default): it gives no windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nowcast.store import SPLITS


@dataclass
class Blocks:
    """Per-frame block id and split, plus counts for the summary."""

    block: np.ndarray  # (T,) int32, −1 outside whole blocks
    split: np.ndarray  # (T,) int8, −1 none, 0 train, 1 val, 2 test
    assigned: dict[str, int]  # blocks per split before dropping gappy ones
    usable: dict[str, int]  # blocks per split with every frame present (or kept)
    gappy: int  # blocks with a missing frame


def apportion(n: int, ratio: Sequence[int]) -> list[int]:
    """Split ``n`` items in ``ratio`` by largest remainders (ties go to the earlier split)."""
    total = sum(ratio)
    if total <= 0:
        raise ValueError("the split ratio must have a positive sum")
    quotas = [n * r / total for r in ratio]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(ratio)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def day_labels(day: np.datetime64, n_blocks: int, ratio: Sequence[int], seed: int) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) of each block of ``day``, shuffled by (seed, date)."""
    counts = apportion(n_blocks, ratio)
    labels = np.repeat(np.arange(len(counts), dtype=np.int8), counts)
    ordinal = np.datetime64(day, "D").astype(object).toordinal()
    rng = np.random.default_rng(np.random.SeedSequence([seed, ordinal]))
    return rng.permutation(labels)


def assign_blocks(
    times: np.ndarray,
    valid: np.ndarray,
    per_day: int,
    block_frames: int,
    ratio: Sequence[int],
    seed: int,
    drop_gappy: bool = True,
) -> Blocks:
    """Block id and split of every grid time (``times`` whole days, ``per_day`` a day)."""
    n = times.size
    block = np.full(n, -1, dtype=np.int32)
    split = np.full(n, -1, dtype=np.int8)
    names = list(SPLITS)
    assigned = dict.fromkeys(names, 0)
    usable = dict.fromkeys(names, 0)
    gappy = 0
    per_block_day = per_day // block_frames
    for d in range(n // per_day):
        labels = day_labels(times[d * per_day], per_block_day, ratio, seed)
        for b, label in enumerate(labels):
            lo = d * per_day + b * block_frames
            sl = slice(lo, lo + block_frames)
            block[sl] = d * per_block_day + b
            assigned[names[label]] += 1
            complete = bool(valid[sl].all())
            gappy += not complete
            if complete or not drop_gappy:
                split[sl] = label
                usable[names[label]] += 1
    return Blocks(block=block, split=split, assigned=assigned, usable=usable, gappy=gappy)
