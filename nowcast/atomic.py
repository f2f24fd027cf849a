"""Write-to-temp-then-rename, so no reader ever sees a half-written output.

Temporary files and folders live beside the output they become, under names made
exclusively by :mod:`tempfile` (never a pre-existing file or a planted symlink)::

    .<output name>.<kind>-<pid>-<8 random characters>[.tmp]

``kind`` is ``part`` (a file being written, suffix ``.tmp``), ``spool`` (preprocess's frame
spool folder), ``report`` (a report folder being built) or ``old`` (a replaced report
folder on its way out); ``pid`` is the writing process. A process killed with SIGKILL
cannot clean up, so :func:`reclaim` — run whenever a new temporary is made for the same
output — removes such leftovers once their process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import resource
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nowcast.errors import UserError

#: kinds of temporaries that are regular files (the others are folders)
FILE_KINDS = ("part",)
DIR_KINDS = ("spool", "report", "old")
_RANDOM = r"[a-z0-9_]{8}"


def temp_prefix(final: Path, kind: str) -> str:
    """Name prefix of this process's temporaries of ``kind`` beside ``final``."""
    return f".{final.name}.{kind}-{os.getpid()}-"


def umask() -> int:
    """This process's file-mode creation mask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_file(final: str | os.PathLike) -> Path:
    """Create (exclusively, empty) and return a temporary file beside ``final``, with the
    mode a plain ``open`` would give the output (0o666 less the umask), not mkstemp's 0o600."""
    final = Path(final)
    reclaim(final)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(final, "part"), suffix=".tmp", dir=final.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
    finally:
        os.close(fd)
    return Path(name)


def make_temp_dir(final: str | os.PathLike, kind: str) -> Path:
    """Create (exclusively, empty) and return a temporary folder of ``kind`` beside ``final``,
    with the mode ``mkdir`` would give the output (0o777 less the umask), not mkdtemp's 0o700."""
    final = Path(final)
    if kind not in DIR_KINDS:
        raise ValueError(f"unknown temporary folder kind {kind!r}")
    reclaim(final)
    path = Path(tempfile.mkdtemp(prefix=temp_prefix(final, kind), dir=final.parent))
    os.chmod(path, 0o777 & ~umask())
    return path


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _leftover_pattern(final: Path) -> re.Pattern[str]:
    name = re.escape(final.name)
    files, dirs = "|".join(FILE_KINDS), "|".join(DIR_KINDS)
    return re.compile(
        rf"\.{name}\."
        rf"(?:(?P<file>{files})-(?P<fpid>\d+)-{_RANDOM}\.tmp"
        rf"|(?P<dir>{dirs})-(?P<dpid>\d+)-{_RANDOM}"
        # what earlier versions left: ".<name>.<pid>.tmp", a file or a folder
        rf"|(?P<lpid>\d+)\.tmp)"
    )


def reclaim(final: str | os.PathLike) -> list[Path]:
    """Remove the temporaries beside ``final`` left by processes that no longer run.

    Only names of exactly the forms above are touched, and only when the entry has the
    kind's type (a regular file for ``part``, a real folder for the folder kinds; never a
    symlink). A replaced report (``old``) is put back at ``final`` when ``final`` is
    missing (the run that replaced it died between its two renames). Returns what was
    removed or put back; entries that cannot be removed are left alone.
    """
    final = Path(final)
    pattern = _leftover_pattern(final)
    done: list[Path] = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return done
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or pid_alive(int(m["fpid"] or m["dpid"] or m["lpid"])):
            continue
        path = Path(entry.path)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode) and not m["dir"]:
                path.unlink()
            elif stat.S_ISDIR(mode) and not m["file"]:
                inner = path / "x"  # where replace_folder parks the replaced folder
                if m["dir"] == "old" and inner.is_dir() and not os.path.lexists(final):
                    os.rename(inner, final)
                shutil.rmtree(path)
            else:
                continue
            done.append(path)
        except OSError:
            continue
    return done


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def size_limit_hint(path: Path) -> str:
    """Why a write beside ``path`` may have failed for lack of room ('' when nothing is seen):
    a full file system, or a file-size limit (``ulimit -f``) on this process."""
    hints = []
    try:
        st = os.statvfs(path.parent if path.parent.exists() else ".")
        if st.f_bavail * st.f_frsize < 1 << 20:
            hints.append("the disk is full")
        if st.f_flag & os.ST_RDONLY:
            hints.append("the file system is read-only")
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        hints.append(f"a file-size limit (ulimit -f) of {soft} bytes is set")
    return "; ".join(hints)


def write_error(final: str | os.PathLike, exc: BaseException) -> UserError:
    """The UserError for a failed write of ``final``: names it and says why."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc) or type(exc).__name__
    hint = size_limit_hint(Path(final))
    hint = f" ({hint})" if hint else ""
    return UserError(f"{final}: cannot write it: {reason}{hint}; nothing there was replaced")


def is_write_failure(exc: BaseException, final: Path) -> bool:
    """Whether ``exc`` (raised while writing ``final``) is the file system's doing: an OSError,
    or a library's RuntimeError (netCDF/HDF5, torch) while space or size limits are tight."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return text.startswith("NetCDF:") or "HDF" in text or bool(size_limit_hint(final))
    return False


class OutputSet:
    """Several outputs that appear together: each is written to its own temporary file, and
    all are renamed into place only when every one was written (:meth:`commit`, run when
    the ``with`` block ends without an error). On an error no output is touched, the
    temporaries are removed, and so are the folders made for them.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._made: list[Path] = []

    def add(self, tmp: Path, final: Path, made: list[Path]) -> None:
        self._pending.append((tmp, final))
        self._made += made

    def commit(self) -> None:
        """Rename every temporary onto its output (in the order they were written)."""
        try:
            for tmp, final in self._pending:
                try:
                    os.replace(tmp, final)
                except OSError as exc:
                    raise write_error(final, exc) from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Remove what is still temporary, and the folders made for it when left empty."""
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._pending = []
        _remove_empty(self._made)
        self._made = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, outputs: OutputSet | None = None) -> Iterator[Path]:
    """Yield a new temporary file beside ``final``; rename it onto ``final`` on success.

    Parent folders are created. With ``outputs``, the rename waits for
    :meth:`OutputSet.commit`. On any exception the temporary file is removed, so are the
    folders made for it, and ``final`` is left untouched (absent if it did not exist); a
    failure of the file system (full, read-only, size limit) becomes a UserError naming
    ``final``.
    """
    final = Path(final)
    made: list[Path] = []
    tmp: Path | None = None
    try:
        made = _make_parents(final.parent)
        tmp = make_temp_file(final)
        yield tmp
        if outputs is not None:
            outputs.add(tmp, final, made)
            tmp = None
            return
        os.replace(tmp, final)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
            tmp = None
        _remove_empty(made)
        if is_write_failure(exc, final):
            raise write_error(final, exc) from None
        raise
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_text_atomic(final: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``final`` atomically and return the final path."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap the entries ``a`` and ``b`` in one step (Linux renameat2 RENAME_EXCHANGE).
    False where the system or file system cannot; OSError for other failures."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(new: Path, final: Path) -> None:
    """Put the complete folder ``new`` (beside ``final``) at ``final``, replacing what is there.

    Where the file system can swap two entries in one step, it does, so ``final`` is at
    every instant the complete old or the complete new folder; elsewhere the old folder is
    renamed away first (for that instant ``final`` is absent, never a mix; :func:`reclaim`
    puts it back if the process dies right then). The old folder is deleted afterwards.
    """
    if not os.path.lexists(final):
        os.rename(new, final)
        return
    if _exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)  # it now holds the old folder
        return
    trash = make_temp_dir(final, "old")
    os.rename(final, trash / "x")  # a rename into the exclusively made folder: no race
    os.rename(new, final)
    shutil.rmtree(trash, ignore_errors=True)
