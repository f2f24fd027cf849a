"""Wall-clock seconds of the steps of one stage call (what the benchmarks print)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Timings:
    """Seconds [s] per named step, in the order the steps were first timed; a step timed
    more than once adds up::

        t = Timings()
        with t.step("read"):
            ...
        t.add("write", 0.25)
        t["read"], t["never timed"]  # seconds, 0.0
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to step ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to step ``name`` (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def __getitem__(self, name: str) -> float:
        """Seconds of step ``name`` (0.0 if never timed)."""
        return self.seconds.get(name, 0.0)

    def starting(self, prefix: str) -> dict[str, float]:
        """The steps whose names start with ``prefix``, by the rest of their name."""
        return {k[len(prefix) :]: v for k, v in self.seconds.items() if k.startswith(prefix)}
