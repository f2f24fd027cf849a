"""Shared checks for command-line failure tests: one-line errors and "nothing lost"."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def assert_one_line_error(result, *fragments: str) -> str:
    """``result`` (a CliRunner result or a CompletedProcess) failed with exit 2 and exactly one
    stderr line ``nowcast: error: …`` holding every fragment, and no traceback. Returns the line."""
    code = getattr(result, "exit_code", None)
    code = result.returncode if code is None else code
    err = result.stderr
    out = getattr(result, "output", None) or getattr(result, "stdout", "") or ""
    assert code == 2, (code, out, err)
    assert err.startswith("nowcast: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "Traceback" not in out, (out, err)
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err.strip()


def checksums(*paths: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every regular file at or below ``paths`` (path → hex digest), to show
    that a failed command changed nothing."""
    out: dict[str, str] = {}
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def nowcast_process(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m nowcast ARGS`` as a real process (text output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "nowcast", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


#: ``--set`` options for a small, fast preprocess (40-px crop → 20×20, radius-2 disk, 4 clusters)
SMALL_PREPROCESS = [
    "--set",
    "preprocess.crop=40",
    "--set",
    "preprocess.size=20",
    "--set",
    "preprocess.disk_radius=2",
    "--set",
    "preprocess.clutter_clusters=4",
]
