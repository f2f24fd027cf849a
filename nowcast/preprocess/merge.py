"""Several dataset stores in one: events from different radars (or archives) trained together.

    merge_stores(["fmi.nc", "mch.nc", "rmi.nc"], "real.nc")

Every frame keeps its own ``valid`` flag, block and split, so what each source contributes
is set when it is preprocessed (e.g. ``preprocess.block_frames: 288`` with ``split_ratio:
[0, 0, 1]`` makes a whole day the test split). Block ids are renumbered so that no two
sources share one (a window never joins two sources), and the time axes are interleaved in
time order; two sources may not hold the same day.

The sources must have been preprocessed alike in what decides what a frame *means* (the
:data:`SHARED_KEYS`: gray bounds, Z–R, crop, disk filter, output size, frame interval);
everything else (input product, grid, blocks, splits, clutter rule) may differ and is
kept per source under ``merged_from`` in the merged ``preprocess`` attribute. Masks:
``coverage`` is the cells covered in *every* source; a month's noise mask is the union of
the sources' masks for that month. Grid: the sources' own ``x``, ``y`` and grid mapping
when they all share one; otherwise the cell centres' offsets from the grid centre [m]
(spacing of the first source) with no grid mapping — the merged store is on no radar's
grid, so ``nowcast predict`` applies no training mask to anyone's files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import UserError
from nowcast.io.frame import jsonable
from nowcast.store import FrameReader, StoreMeta, StoreWriter, read_meta

SHARED_KEYS = ("z_min", "z_max", "zr", "crop", "disk_radius", "size", "interval_minutes")
"""``preprocess`` keys every merged source must agree on (the meaning of a stored frame)."""


def merge_stores(sources: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the store ``out`` holding every frame of ``sources`` (see module docstring).

    UserError (naming the store) for a missing or foreign store, a tiled store
    (``preprocess.crops: tiles``), a differing shared key, a day held by two sources, or
    ``out`` being one of the sources. Written atomically.
    """
    paths = [Path(s) for s in sources]
    out = Path(out)
    if not paths:
        raise UserError("merge: no dataset stores given")
    if any(p.resolve() == out.resolve() for p in paths):
        raise UserError(f"{out}: the merged store cannot be one of its sources")
    metas = [read_meta(p) for p in paths]
    for meta in metas:
        if meta.tiles is not None:
            raise UserError(
                f"{meta.path}: a tiled store (preprocess.crops: tiles) cannot be merged; "
                "merge stores preprocessed with preprocess.crops: center"
            )
    preprocess = merged_preprocess(metas)
    source, index = _time_order(metas)
    times = np.concatenate([m.times for m in metas])[_flat(source, index, metas)]
    valid = np.concatenate([m.valid for m in metas])[_flat(source, index, metas)]
    split = np.concatenate([m.split for m in metas])[_flat(source, index, metas)]
    block = np.concatenate(_renumbered_blocks(metas))[_flat(source, index, metas)]
    months, noise = _noise_masks(metas)
    coverage = np.logical_and.reduce([m.coverage for m in metas])
    x, y, mapping = _grid(metas)
    with StoreWriter(out, times, x, y, mapping, preprocess) as writer:
        readers = [FrameReader(m.path) for m in metas]
        try:
            for start, stop in _runs(source):
                k, i0 = int(source[start]), int(index[start])
                writer.write_frames(start, readers[k].read(i0, i0 + stop - start))
        finally:
            for r in readers:
                r.close()
        writer.finish(valid, block, split, months, noise, coverage)
    return out


def merged_preprocess(metas: Sequence[StoreMeta]) -> dict[str, Any]:
    """The merged store's ``preprocess``: the shared keys, the input variable when every
    source read the same one (else None: found by standard name / quantity), and each
    source's own dict (plus its file name) under ``merged_from``."""
    first = metas[0]
    for meta in metas:
        for key in SHARED_KEYS:
            if key not in meta.preprocess:
                raise UserError(f"{meta.path}: the store's preprocess attribute has no {key!r}")
            if meta.preprocess[key] != first.preprocess[key]:
                raise UserError(
                    f"{meta.path}: preprocess.{key} is {meta.preprocess[key]!r} but "
                    f"{first.path} has {first.preprocess[key]!r} (stores merged for training "
                    "must be preprocessed alike)"
                )
    variables = {(m.preprocess.get("input") or {}).get("variable") for m in metas}
    return {
        **{key: first.preprocess[key] for key in SHARED_KEYS},
        "input": {"variable": variables.pop() if len(variables) == 1 else None},
        "merged_from": [{"store": m.path.name, **m.preprocess} for m in metas],
    }


def _time_order(metas: Sequence[StoreMeta]) -> tuple[np.ndarray, np.ndarray]:
    """(source, index in source) of every merged frame, in time order; UserError when two
    sources hold the same time."""
    times = np.concatenate([m.times for m in metas])
    source = np.concatenate([np.full(m.times.size, k) for k, m in enumerate(metas)])
    index = np.concatenate([np.arange(m.times.size) for m in metas])
    order = np.argsort(times, kind="stable")
    times, source, index = times[order], source[order], index[order]
    same = np.flatnonzero(times[1:] == times[:-1])
    if same.size:
        a, b = metas[int(source[same[0]])], metas[int(source[same[0] + 1])]
        raise UserError(
            f"{b.path}: holds {times[same[0]]}Z as {a.path} does (merged stores may not share "
            "a day)"
        )
    return source, index


def _flat(source: np.ndarray, index: np.ndarray, metas: Sequence[StoreMeta]) -> np.ndarray:
    """Positions in the concatenation of the sources of the merged frames."""
    offsets = np.cumsum([0] + [m.times.size for m in metas])
    return offsets[source] + index


def _renumbered_blocks(metas: Sequence[StoreMeta]) -> list[np.ndarray]:
    """Each source's block ids shifted past the previous sources' (−1 stays −1)."""
    out, offset = [], 0
    for meta in metas:
        block = meta.block.astype(np.int32)
        out.append(np.where(block >= 0, block + offset, -1).astype(np.int32))
        offset += int(block.max(initial=-1)) + 1
    return out


def _noise_masks(metas: Sequence[StoreMeta]) -> tuple[list[str], np.ndarray]:
    """Every month of any source, and per month the union of the sources' noise masks."""
    months = sorted({m for meta in metas for m in meta.months})
    noise = np.zeros((len(months), *metas[0].shape), dtype=bool)
    for meta in metas:
        for i, month in enumerate(meta.months):
            noise[months.index(month)] |= meta.noise_mask[i]
    return months, noise


def _grid(metas: Sequence[StoreMeta]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The sources' common grid, or centred cell offsets [m] and no grid mapping."""
    first = metas[0]
    if all(
        m.x.shape == first.x.shape
        and m.y.shape == first.y.shape
        and np.allclose(m.x, first.x)
        and np.allclose(m.y, first.y)
        and jsonable(m.grid_mapping) == jsonable(first.grid_mapping)
        for m in metas
    ):
        return first.x, first.y, dict(first.grid_mapping)
    h, w = first.shape
    dx = abs(float(first.x[1] - first.x[0])) if w > 1 else 1.0
    dy = abs(float(first.y[1] - first.y[0])) if h > 1 else 1.0
    x = (np.arange(w) - (w - 1) / 2) * dx
    y = ((h - 1) / 2 - np.arange(h)) * dy
    return x, y, {}


def _runs(source: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of equal consecutive values (frames from one source, in order)."""
    edges = np.flatnonzero(np.diff(source)) + 1
    bounds = np.concatenate([[0], edges, [source.size]])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
