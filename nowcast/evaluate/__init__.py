"""`nowcast evaluate`: the stage that scores checkpoints and baselines on a store's split.

It streams windows through every method (models from checkpoints, the baselines of
:mod:`nowcast.evaluate.baselines`), sums the scores of :mod:`nowcast.verification`, and
writes report.json / report.md and the report's plots. The stage function is
:func:`evaluate` (imported lazily, so that the baseline registry stays light to import).
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from nowcast.evaluate.stage import evaluate

        return evaluate
    raise AttributeError(name)
