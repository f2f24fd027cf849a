"""Import pysteps modules without the "Pysteps configuration file found at …" line that
pysteps prints on stdout when first imported (stdout carries nowcast's results)."""

from __future__ import annotations

import contextlib
import importlib
import io
from types import ModuleType


def import_pysteps(name: str) -> ModuleType:
    """``importlib.import_module(name)`` for a pysteps module, with its import-time chatter muted."""
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(name)
