"""`nowcast evaluate`: streaming scores (metrics), persistence / extrapolation baselines,
report.json / report.md and plots. The stage function is :func:`evaluate` (imported lazily
so that ``nowcast.evaluate.metrics`` stays light)."""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from nowcast.evaluate.stage import evaluate

        return evaluate
    raise AttributeError(name)
