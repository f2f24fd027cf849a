"""Turn ``--input`` / ``input.paths`` (files, directories, globs) into a sorted list of files."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from nowcast.errors import UserError

#: names taken from directories (other files there — manifests, READMEs — are ignored)
RADAR_SUFFIXES = (".nc", ".nc4", ".cdf", ".h5", ".hdf5", ".hdf")


def expand_inputs(specs: Sequence[str | os.PathLike], pattern: str = "*") -> list[Path]:
    """Files named by ``specs``, each once, sorted by path.

    A directory contributes the files below it (recursively) whose names match ``pattern``
    and end in :data:`RADAR_SUFFIXES`, hidden ones excepted; a glob contributes every file it
    matches (``**`` recurses); a file is taken as is. UserError for no specs, a path that
    does not exist, or nothing found at all (an empty input).
    """
    if not specs:
        raise UserError("empty input: no radar files given (use --input or input.paths)")
    found: set[Path] = set()
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found.update(
                p
                for p in path.rglob(pattern)
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.name.lower().endswith(RADAR_SUFFIXES)
            )
        elif path.is_file():
            found.add(path)
        elif glob.has_magic(str(spec)):
            found.update(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
        else:
            raise UserError(f"{path}: no such file or directory")
    if not found:
        where = ", ".join(str(s) for s in specs)
        raise UserError(f"{where}: empty input: no radar files found (input.pattern {pattern!r})")
    return sorted(found)
