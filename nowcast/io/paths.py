"""Turn ``--input`` / ``input.paths`` (files, directories, globs) into a sorted list of files."""

from __future__ import annotations

import codecs
import glob
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from nowcast.errors import UserError
from nowcast.io.pysteps_reader import IMPORTER_HINTS, hint_text, importer_hint

#: names taken from directories (other files there — manifests, READMEs — are ignored)
RADAR_SUFFIXES = (".nc", ".nc4", ".cdf", ".h5", ".hdf5", ".hdf")

#: codec name that encodes a path as the file system's bytes (``os.fsencode``), also for a
#: name that is not valid UTF-8: ``netCDF4.Dataset(path, encoding=FS_CODEC)``
FS_CODEC = "nowcast-fsencode"


def _fs_codec(name: str) -> codecs.CodecInfo | None:
    if name.replace("_", "-") != FS_CODEC:
        return None
    return codecs.CodecInfo(
        encode=lambda text, errors="strict": (os.fsencode(text), len(text)),
        decode=lambda data, errors="strict": (os.fsdecode(bytes(data)), len(data)),
        name=FS_CODEC,
    )


codecs.register(_fs_codec)


def path_text(path: str | os.PathLike) -> str:
    """``path`` as text that encodes to UTF-8: bytes of a name that are not valid UTF-8
    are written ``\\xNN`` (for messages and file attributes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def expand_inputs(specs: Sequence[str | os.PathLike], pattern: str = "*") -> list[Path]:
    """Files named by ``specs``, each once, sorted by path.

    A directory contributes the entries below it (recursively) whose names match ``pattern``
    and end in :data:`RADAR_SUFFIXES` (any name, when ``pattern`` ends in an extension of its
    own such as ``*.pgm.gz``), hidden ones excepted, that are not directories:
    regular files, and also broken symbolic links, link loops and special files, which the
    readers then report as bad files (they are never skipped silently). A glob contributes
    every such entry it matches (``**`` recurses); a file is taken as is. UserError for no
    specs, a path that does not exist, or nothing found at all (an empty input); when the
    directories hold files in other formats, the message counts them by extension and says
    which ``input.format``/``input.importer`` reads them.
    """
    if not specs:
        raise UserError("empty input: no radar files given (use --input or input.paths)")
    found: set[Path] = set()
    others: set[Path] = set()
    any_suffix = _has_extension(pattern)
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            for p in path.rglob(pattern):
                if not _entry(p) or any(part.startswith(".") for part in p.relative_to(path).parts):
                    continue
                if any_suffix or p.name.lower().endswith(RADAR_SUFFIXES):
                    found.add(p)
                else:
                    others.add(p)
        elif path.is_file():
            found.add(path)
        elif glob.has_magic(str(spec)):
            found.update(Path(p) for p in glob.glob(str(spec), recursive=True) if _entry(Path(p)))
        else:
            raise UserError(f"{path}: no such file or directory")
    if not found:
        where = ", ".join(str(s) for s in specs)
        message = f"{where}: empty input: no radar files found (input.pattern {pattern!r})"
        raise UserError(message + _others_text(others))
    return sorted(found)


def _has_extension(pattern: str) -> bool:
    """Whether a file-name glob ends in a literal extension (``*.gif``, ``*.pgm.gz``)."""
    stem, dot, ext = pattern.rpartition(".")
    return bool(dot and ext) and not glob.has_magic(ext)


def _others_text(others: set[Path]) -> str:
    """``; N files in other formats are there (…); read … with …`` for the empty-input
    message: the files counted by extension and the config keys that read them."""
    if not others:
        return ""
    kinds: Counter[str] = Counter()
    hints: dict[str, str] = {}  # extension → config keys
    for p in sorted(others):
        hint = importer_hint(p.name)
        ext = hint[0][1:] if hint else (Path(p.name).suffix.lower() or "no extension")
        kinds[ext] += 1
        if hint:
            hints.setdefault(ext, hint_text(*hint))
    counts = ", ".join(
        f"{n} {ext}" for ext, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    text = f"; {len(others)} files in other formats are there ({counts})"
    if hints:
        return text + "; " + "; ".join(f"read {e} with {h}" for e, h in hints.items())
    known = ", ".join(sorted({f"{g[1:]} ({imp})" for g, imp, _ in IMPORTER_HINTS}))
    return text + f", none that a known importer reads (input.format: pysteps reads {known})"


def _entry(path: Path) -> bool:
    """Whether a directory entry is a candidate radar file: anything but a directory
    (a link to a directory included), so that a broken link is listed rather than lost."""
    return path.is_file() or (path.is_symlink() or path.exists()) and not path.is_dir()
