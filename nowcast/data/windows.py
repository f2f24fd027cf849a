"""Windows of a store's split as a torch ``Dataset``, read lazily through :class:`FrameReader`.

A window is ``n_in + n_out`` consecutive valid frames inside one block of one split
(:func:`nowcast.store.window_starts`). Item ``i`` is a tuple::

    inputs   (n_in, 1, H, W)   float32 gray level in [0, 1]
    targets  (n_out, 1, H, W)  float32 gray level in [0, 1]
    mask     (H, W)            bool, pixels that count: coverage & ~noise_mask of the month
                               of the window's first frame (StoreMeta.pixel_mask; in a
                               tiled store, those of the window's tile)

Noise-mask (clutter) pixels of that month are 0 (no echo) in ``inputs`` and ``targets``: a
network never sees clutter as rain, as evaluate's and predict's inputs (the targets' noise
pixels are outside ``mask``, so the loss and the scores never count them either).

Only the store's metadata (kilobytes) is held; frames are read per item from the netCDF
file, so the archive is never loaded whole. The dataset pickles without its file handle:
DataLoader workers open their own. Start them with :func:`worker_context` (forkserver),
not by forking a process that has used HDF5: the library is not fork-safe, and a forked
worker can crash opening the store.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

import numpy as np
import torch
from torch.utils.data import Dataset

from nowcast.errors import UserError
from nowcast.store import FrameReader, StoreMeta, read_meta, split_code, window_starts
from nowcast.units import uint8_to_gray


class WindowDataset(Dataset):
    """The ``n_in + n_out``-frame windows of one split of a store (see module docstring)."""

    def __init__(self, meta: StoreMeta, split: str, n_in: int, n_out: int):
        split_code(split)
        self.meta = meta
        self.split = split
        self.n_in = n_in
        self.n_out = n_out
        self.starts = window_starts(meta, split, n_in + n_out)
        if not meta.months:
            raise UserError(f"{meta.path}: dataset store has no noise-mask months")
        # one (H, W) mask per calendar month (and tile), computed once (M is small)
        self.month_of = meta.mask_index(self.starts)
        self.masks = meta.mask_stack()
        self.noise = meta.noise_stack()
        self.reader = FrameReader(meta.path, meta.signature)

    def __len__(self) -> int:
        return int(self.starts.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = int(self.starts[i])
        frames = uint8_to_gray(self.reader.read(s, s + self.n_in + self.n_out))
        frames[:, self.noise[self.month_of[i]]] = 0.0  # clutter → no echo
        frames = torch.from_numpy(frames).unsqueeze(1)  # (T, 1, H, W)
        mask = self.mask(i)
        return frames[: self.n_in], frames[self.n_in :], torch.from_numpy(mask)

    def close(self) -> None:
        """Close this process's read handle (reopened on the next read)."""
        self.reader.close()

    def __del__(self) -> None:
        # close explicitly: a netCDF4 handle left to the garbage collector (its objects form
        # reference cycles) may be closed in the middle of opening another file, and the
        # netCDF/HDF5 libraries crash on that
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()

    def mask(self, i: int) -> np.ndarray:
        """Pixel mask ``(H, W)`` bool of window ``i`` (the month of its first frame, its tile)."""
        return self.masks[self.month_of[i]].copy()

    def time(self, i: int) -> np.datetime64:
        """Valid time of the first frame of window ``i``."""
        return self.meta.times[int(self.starts[i])]


def open_split(
    meta_or_path, split: str, n_in: int, n_out: int, key: str = "data.store"
) -> WindowDataset:
    """The windows of ``split``; a split without a single window is a UserError naming the store."""
    meta = meta_or_path if isinstance(meta_or_path, StoreMeta) else read_meta(meta_or_path)
    ds = WindowDataset(meta, split, n_in, n_out)
    if len(ds) == 0:
        n_valid = int(np.sum(meta.valid & (meta.split == split_code(split))))
        raise UserError(
            f"{key}: {meta.path}: the {split!r} split has no window of {n_in + n_out} consecutive "
            f"valid frames in one block (data.n_in {n_in} + data.n_out {n_out}; "
            f"{n_valid} valid {split} frames)"
        )
    return ds


def worker_context(workers: int) -> BaseContext | None:
    """The multiprocessing context for ``workers`` DataLoader workers (None for 0).

    forkserver (spawn where there is none): workers start from a clean process that has
    imported this module (and so torch and netCDF4) once, so starting them again is cheap
    and no HDF5 state is inherited across a fork.
    """
    if workers == 0:
        return None
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")
