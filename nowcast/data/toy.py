"""Small real dataset stores of moving Gaussian rain blobs, for tests and the train benchmark.

The frames are written with :class:`nowcast.store.StoreWriter` (the real store format):
each block holds a few blobs that move at a constant velocity (so a model can learn to beat
persistence), over a no-echo background, plus fixed "clutter" pixels of strong echo that the
store's noise mask flags (so masking can be tested).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nowcast.store import SPLITS, StoreWriter
from nowcast.units import dbz_to_gray, gray_to_uint8

Z_MIN, Z_MAX = -10.0, 60.0
HKO_ZR = {"a": 58.53, "b": 1.56}


def blob_frames(n: int, h: int, w: int, rng: np.random.Generator, n_blobs: int = 3) -> np.ndarray:
    """``n`` frames of ``n_blobs`` moving rain cells, reflectivity in dBZ, ``(n, H, W)``.

    A cell is a paraboloid in dBZ, peak − 30·(d / r)², with a peak of 30–55 dBZ, a radius r
    of 10–25 % of the grid and a constant velocity of 0.3–1.2 px per frame; positions wrap
    around the grid (periodic). Overlapping cells take the larger value; −32 dBZ (no echo)
    where every cell is below −10 dBZ.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dbz = np.full((n, h, w), -32.0)
    for _ in range(n_blobs):
        peak = rng.uniform(30.0, 55.0)
        radius = rng.uniform(0.1, 0.25) * min(h, w)
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        speed = rng.uniform(0.3, 1.2)
        angle = rng.uniform(0, 2 * np.pi)
        vy, vx = speed * np.sin(angle), speed * np.cos(angle)
        for t in range(n):
            dy = (yy - (y0 + vy * t) + h / 2) % h - h / 2
            dx = (xx - (x0 + vx * t) + w / 2) % w - w / 2
            cell = peak - 30.0 * (dy**2 + dx**2) / radius**2
            dbz[t] = np.maximum(dbz[t], np.where(cell >= -10.0, cell, -32.0))
    return dbz


def write_blob_store(
    path: str | os.PathLike,
    splits: Sequence[str] = ("train", "train", "train", "train", "val", "test"),
    h: int = 32,
    w: int = 32,
    block_len: int = 40,
    start: str = "2024-06-30T16:00:00",
    seed: int = 0,
    clutter: int = 3,
    missing: Sequence[int] = (),
    preprocess: dict | None = None,
) -> Path:
    """Write a store with one ``block_len``-frame block per entry of ``splits`` ('train', 'val',
    'test' or 'none'), 6 minutes apart from ``start``. ``clutter`` fixed pixels hold 50 dBZ
    in every frame and are flagged in each month's noise mask; the corners are outside
    coverage; frame indices in ``missing`` are left invalid (all zero)."""
    rng = np.random.default_rng(seed)
    n = len(splits) * block_len
    times = np.datetime64(start, "s") + np.arange(n) * np.timedelta64(6, "m")
    months = sorted({str(np.datetime64(t, "M")) for t in times})
    yy, xx = np.mgrid[0:h, 0:w]
    coverage = ((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 <= 1.0
    noise_mask = np.zeros((len(months), h, w), dtype=bool)
    cy, cx = rng.integers(0, h, clutter), rng.integers(0, w, clutter)
    noise_mask[:, cy, cx] = True
    pre = preprocess or {"z_min": Z_MIN, "z_max": Z_MAX, "zr": dict(HKO_ZR), "source": "toy blobs"}
    valid = np.ones(n, dtype=bool)
    valid[list(missing)] = False
    block = np.repeat(np.arange(len(splits), dtype=np.int32), block_len)
    split = np.repeat(np.array([SPLITS.get(s, -1) for s in splits], dtype=np.int8), block_len)
    x = (np.arange(w) - w / 2 + 0.5) * 1000.0
    y = (h / 2 - 0.5 - np.arange(h)) * 1000.0
    grid_mapping = {
        "grid_mapping_name": "azimuthal_equidistant",
        "latitude_of_projection_origin": 22.4,
        "longitude_of_projection_origin": 114.1,
    }
    with StoreWriter(path, times, x, y, grid_mapping, pre) as wr:
        for b in range(len(splits)):
            dbz = blob_frames(block_len, h, w, rng)
            dbz[:, cy, cx] = 50.0
            gray = gray_to_uint8(dbz_to_gray(dbz, pre["z_min"], pre["z_max"]))
            gray[:, ~coverage] = 0
            for i in range(block_len):
                if b * block_len + i in missing:
                    gray[i] = 0
            wr.write_frames(b * block_len, gray)
        return wr.finish(valid, block, split, months, noise_mask, coverage)
