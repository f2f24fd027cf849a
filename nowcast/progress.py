"""Rich progress bars for long work, silenced by ``--quiet`` (or when not wanted in tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
_quiet = False
console = Console(stderr=True)


def set_quiet(quiet: bool) -> None:
    """Turn progress bars and informational messages off (``True``) or on."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def info(message: str) -> None:
    """Print an informational line on stderr unless quiet."""
    if not _quiet:
        console.print(message)


def warn(message: str) -> None:
    """Print a warning line on stderr (shown even when quiet)."""
    console.print(
        f"[yellow]nowcast: warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True
    )


def make_progress(*extra_columns) -> Progress:
    """A Progress with the project's standard columns; disabled when quiet."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        disable=_quiet,
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
