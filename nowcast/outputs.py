"""The one check every stage runs on each output path before any work.

    check_output(out, "--out", inputs=files)           # a file to (re)write
    check_output(folder, "evaluate.out", folder=True)  # a folder to write into

An output is refused (UserError naming the option or key and the path) when

* it exists and is not what the stage writes: a folder where a file is expected, a file
  where a folder is expected, or anything that is not a regular file or a folder (a
  device such as /dev/null, a fifo, a socket);
* it is one of the inputs: the same file as an input, the checkpoint or the ``--config``
  file (:func:`protect_config`), also through symlinks and hard links (compared by
  device and inode, not by name);
* nothing can be written there: the nearest existing folder above it is not a folder
  (a file stands in the path), is not writable, or is on a read-only file system.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from nowcast.errors import UserError

_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
)


_CONFIG: list[Path] = []


def protect_config(path: str | os.PathLike | None) -> None:
    """Make ``path`` (the ``--config`` file of this command; None: none) an input of every
    later output check in this process."""
    _CONFIG[:] = [] if path is None else [Path(path)]


def with_config(inputs: Iterable[str | os.PathLike]) -> list[str | os.PathLike]:
    """``inputs`` and the protected ``--config`` file."""
    return [*inputs, *_CONFIG]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _stat(path: Path, what: str) -> os.stat_result | None:
    """``os.stat`` (following symlinks); None when nothing is there (or a dangling link)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a file stands in the path: the parent check below says so
    except OSError as exc:
        raise UserError(f"{what}: {path}: cannot use it: {exc.strerror or exc}") from None


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats are of one file (device and inode)."""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_writable_folder(path: Path, what: str) -> None:
    """UserError unless the nearest existing folder above ``path`` is a writable folder
    on a writable file system (so ``path``, and folders up to it, can be made)."""
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    where = f"{what}: {path}: cannot write there"
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise UserError(f"{where}: {parent}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{where}: {parent} is {_kind(st.st_mode)}, not a folder")
    try:
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise UserError(f"{where}: {parent} is on a read-only file system")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{where}: the folder {parent} is not writable")


def check_output(
    path: str | os.PathLike,
    what: str,
    *,
    folder: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Refuse ``path`` as an output (UserError ``<what>: <path> …``) for any of the reasons
    in the module docstring; returns it as a Path. ``what`` names the option or config key;
    ``folder``: the output is a folder (else a file); ``inputs``: files the run reads."""
    path = Path(path)
    st = _stat(path, what)
    if st is not None:
        kind = _kind(st.st_mode)
        if folder and not stat.S_ISDIR(st.st_mode):
            raise UserError(f"{what}: {path} is {kind}, expected a folder")
        if not folder and stat.S_ISDIR(st.st_mode):
            raise UserError(f"{what}: {path} is a directory, expected a file name")
        if not folder and not stat.S_ISREG(st.st_mode):
            raise UserError(f"{what}: {path} is {kind}, not a regular file; refusing to replace it")
        for source in with_config(inputs):
            other = _stat(Path(source), what)
            if other is not None and same_file(st, other):
                same = "" if Path(source) == path else f" ({source})"
                raise UserError(
                    f"{what}: {path} is one of the inputs{same}; refusing to overwrite it"
                )
    check_writable_folder(path, what)
    return path


def check_distinct(outputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """UserError when two of the named outputs are the same path."""
    seen: dict[str, str] = {}
    for what, path in outputs:
        if path is None:
            continue
        key = os.path.abspath(os.fspath(path))
        if key in seen:
            raise UserError(f"{what}: {path} is also given as {seen[key]}")
        seen[key] = what
