"""One entry point for every supported radar format: :func:`read_frames` / :func:`read_frame`.

The format is recognised from the file's first bytes, not its name: netCDF classic
(``CDF``) → CF reader; HDF5 with a root ``Conventions = ODIM_H5/…`` → ODIM reader; other
HDF5 (netCDF-4) → CF reader. With ``input.format: pysteps`` every file is read by the
pysteps importer ``input.importer`` instead (:mod:`nowcast.io.pysteps_reader`). Every
problem is a :class:`~nowcast.io.frame.BadInputFile` naming the file: also a broken
symbolic link, a link loop or a special file (device, fifo, socket), which is never opened.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path

import h5py

from nowcast.config.input import InputConfig
from nowcast.config.zr import ZRConfig
from nowcast.io.frame import BadInputFile, Frame, Window
from nowcast.io.netcdf import read_netcdf
from nowcast.io.odim import is_odim, read_odim
from nowcast.io.pysteps_reader import hint_text, importer_hint, read_pysteps

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff_format(path: str | Path) -> str:
    """``'netcdf'``, ``'hdf5'`` (netCDF-4 or ODIM_H5) from the magic bytes; BadInputFile otherwise."""
    path = Path(path)
    head = read_head(path)
    if head[:3] == b"CDF":
        return "netcdf"
    if head == _HDF5_MAGIC:
        return "hdf5"
    hint = importer_hint(path.name)
    also = f" (a {hint[0][1:]} file: read it with {hint_text(*hint)})" if hint else ""
    raise BadInputFile(path, f"cannot read: not a netCDF or HDF5 (ODIM_H5) file{also}")


def read_head(path: str | Path) -> bytes:
    """The first 8 bytes of a regular, readable, non-empty file; BadInputFile otherwise
    (a broken link, a link loop, a device, fifo or socket — never opened — or an empty file)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode  # follows links: a broken link or a loop fails here
    except OSError as exc:
        if path.is_symlink():
            why = "a symbolic link loop" if exc.errno == errno.ELOOP else "a broken symbolic link"
            raise BadInputFile(path, f"cannot read: {why} ({exc.strerror or exc})") from None
        raise BadInputFile(path, f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise BadInputFile(path, "cannot read: not a regular file (a device, fifo or socket)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise BadInputFile(path, f"cannot read: {exc.strerror or exc}") from None
    if not head:
        raise BadInputFile(path, "cannot read: the file is empty")
    return head


def read_frames(
    path: str | Path,
    input_cfg: InputConfig,
    zr: ZRConfig,
    interval_minutes: float | None = None,
    window: Window | None = None,
) -> list[Frame]:
    """Every frame in ``path`` (most files hold one), oldest first.

    input_cfg: ``variable`` picks the field (None: by standard_name / ODIM quantity);
    zr: Z = a·R^b for rain rates and accumulations; interval_minutes: accumulation period
    when the file does not say (the archive's frame interval).
    window: ``window((H, W)) -> (rows, cols)`` of the grid to read; the rest is neither read
    nor converted (preprocessing needs only the central crop). None: the whole grid.
    Returns frames with ``dbz`` ``(H, W)`` float32 (the window's part of it, with the
    frame's ``origin``), NaN outside coverage, −inf no echo.
    """
    path = Path(path)
    if input_cfg.format == "pysteps":
        read_head(path)
        return read_pysteps(
            path,
            input_cfg.importer,
            input_cfg.importer_kwargs,
            input_cfg.time_format,
            zr.a,
            zr.b,
            interval_minutes,
            window,
        )
    kind = sniff_format(path)
    args = (input_cfg.variable, zr.a, zr.b, interval_minutes)
    if kind == "hdf5":
        try:
            h5 = h5py.File(path, "r")
        except OSError as exc:
            raise BadInputFile(path, f"cannot read: corrupt HDF5 file ({exc})") from None
        with h5:
            if is_odim(h5):
                return read_odim(path, *args, h5=h5, window=window)
    frames = read_netcdf(path, *args, window=window)
    if not frames:
        raise BadInputFile(path, "no radar frame in the file (time dimension of length 0)")
    return frames


def read_frame(
    path: str | Path,
    input_cfg: InputConfig,
    zr: ZRConfig,
    interval_minutes: float | None = None,
    window: Window | None = None,
) -> Frame:
    """The one frame in ``path`` (BadInputFile if it holds several); see :func:`read_frames`.

    This is what ``nowcast predict`` uses to read new files exactly as preprocessing did.
    """
    frames = read_frames(path, input_cfg, zr, interval_minutes, window)
    if len(frames) != 1:
        raise BadInputFile(path, f"expected one radar frame, the file holds {len(frames)}")
    return frames[0]
