"""Transformed frames parked on disk until the time grid is known (then copied in time order).

Frames arrive in any order and the store's time axis is only known once every file has
been read, so each frame (``size²`` bytes, plus ``size²/8`` bytes of coverage bits) is
appended to a temporary folder beside the output (named as
:mod:`nowcast.atomic` describes, so that a later run reclaims it if this process is
killed). Memory stays flat however long the archive is; the spool folder is removed when
done. A failed write (disk full, size limit) is a UserError naming the output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from nowcast.atomic import make_temp_dir, write_error
from nowcast.errors import UserError


class Spool:
    """Append-only frames ``(size, size)`` uint8 with their coverage ``(size, size)`` bool."""

    def __init__(self, beside: Path, size: int):
        self.beside = beside
        try:
            beside.parent.mkdir(parents=True, exist_ok=True)
            self.folder = make_temp_dir(beside, "spool")
        except OSError as exc:
            raise UserError(f"{beside}: cannot write there: {exc.strerror or exc}") from None
        self.size = size
        self.count = 0
        self._read: tuple[np.memmap, np.memmap] | None = None
        try:
            self._frames = open(self.folder / "frames.u8", "wb")
            self._covered = open(self.folder / "covered.bits", "wb")
        except OSError as exc:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise write_error(beside, exc) from None

    def append(self, frame: np.ndarray, covered: np.ndarray) -> int:
        """Park one frame; returns its spool index."""
        try:
            self._frames.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
            self._covered.write(np.packbits(covered.reshape(-1)).tobytes())
        except OSError as exc:
            raise write_error(self.beside, exc) from None
        self.count += 1
        return self.count - 1

    def _open(self) -> tuple[np.memmap, np.memmap]:
        if self._read is None:
            try:
                self._frames.close()  # flushes: the last writes can fail here
                self._covered.close()
            except OSError as exc:
                raise write_error(self.beside, exc) from None
            n, s = self.count, self.size
            frames = (
                np.memmap(self.folder / "frames.u8", np.uint8, "r", shape=(n, s, s))
                if n
                else np.zeros((0, s, s), np.uint8)
            )
            nbytes = (s * s + 7) // 8
            bits = (
                np.memmap(self.folder / "covered.bits", np.uint8, "r", shape=(n, nbytes))
                if n
                else np.zeros((0, nbytes), np.uint8)
            )
            self._read = (frames, bits)
        return self._read

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index``, (size, size) uint8."""
        return np.asarray(self._open()[0][index])

    def covered(self, index: int) -> np.ndarray:
        """Coverage of frame ``index``, (size, size) bool."""
        bits = self._open()[1][index]
        return (
            np.unpackbits(bits, count=self.size * self.size)
            .astype(bool)
            .reshape(self.size, self.size)
        )

    def close(self) -> None:
        """Delete the spool folder."""
        for fh in (self._frames, self._covered):
            try:
                fh.close()
            except OSError:
                pass
        self._read = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
