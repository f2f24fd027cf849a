"""The parts of a training run that watch it: best score, early stopping, divergence.

Each part keeps its own counters and exposes ``state_dict()`` / ``load_state_dict(state)``
with plain values (numbers, booleans, None), so that resuming a run is restoring every part.
Their state dicts have disjoint keys; the checkpoint's ``trainer`` entry holds all of them
side by side (see :mod:`nowcast.train.state`)::

    BestCheckpoint    best_value, best_step
    EarlyStopping     bad_validations, stopped_early
    DivergenceGuard   (nothing: the last good checkpoint is the one a run resumes from)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from nowcast.errors import UserError
from nowcast.train.validate import higher_is_better


class TrainingDiverged(UserError):
    """The loss (or gradient) became NaN or inf; the last good checkpoint is kept."""


class BestCheckpoint:
    """Tracks the best validation value of ``metric`` and the step it was reached at.

    A value improves when it is finite and better than the best so far (larger for CSI
    scores, smaller for MSE / B-MSE; see :func:`nowcast.train.validate.higher_is_better`);
    an equal value does not improve. The trainer writes best.pt when :meth:`update` says so.
    """

    def __init__(self, metric: str):
        self.metric = metric
        self.higher_is_better = higher_is_better(metric)
        self.best_value: float | None = None
        self.best_step: int | None = None

    def improves(self, value: float) -> bool:
        """Whether ``value`` would be a new best."""
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher_is_better else value < self.best_value

    def update(self, scores: Mapping[str, float], step: int) -> bool:
        """Take the validation ``scores`` of ``step``; True when ``scores[metric]`` is a new best."""
        value = scores[self.metric]
        improved = self.improves(value)
        if improved:
            self.best_value, self.best_step = float(value), int(step)
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_step": self.best_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        value, step = state.get("best_value"), state.get("best_step")
        self.best_value = None if value is None else float(value)
        self.best_step = None if step is None else int(step)


class EarlyStopping:
    """Counts validations without improvement; stops after ``patience`` of them in a row
    (``patience`` None: never stops)."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.bad_validations = 0
        self.stopped = False

    def update(self, improved: bool) -> bool:
        """Count one validation; True once training should stop."""
        if improved:
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            if self.patience is not None and self.bad_validations >= self.patience:
                self.stopped = True
        return self.stopped

    def state_dict(self) -> dict[str, Any]:
        return {"bad_validations": self.bad_validations, "stopped_early": self.stopped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counter. Whether the run is stopped follows this object's patience,
        not the saved flag, so that a run resumed with a larger patience goes on."""
        self.bad_validations = int(state.get("bad_validations", 0))
        self.stopped = self.patience is not None and self.bad_validations >= self.patience


class DivergenceGuard:
    """Stops training when the loss, the gradient norm or the weights stop being finite.

    Each check raises :class:`TrainingDiverged` naming what went wrong, the step, and the
    last good checkpoint (``checkpoint`` at the step given to :meth:`saved`, or that none was
    written yet). ``on_diverged(what, step)`` is called first (e.g. to log the end of the run).
    """

    def __init__(
        self, checkpoint: Path, on_diverged: Callable[[str, int], None] | None = None
    ) -> None:
        self.checkpoint = checkpoint
        self.on_diverged = on_diverged
        self.last_good_step: int | None = None

    def saved(self, step: int) -> None:
        """A good checkpoint of ``step`` is at ``checkpoint`` (written, or resumed from)."""
        self.last_good_step = step

    def check_loss(self, value: float, step: int) -> None:
        if not math.isfinite(value):
            self.diverged(f"the training loss became {value}", step)

    def check_grad_norm(self, norm: float, step: int) -> None:
        if not math.isfinite(norm):
            self.diverged(f"the gradient norm became {norm}", step)

    def check_weights(self, parameters: Iterable[torch.Tensor], step: int) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in parameters):
            self.diverged("the weights became non-finite", step)

    def diverged(self, what: str, step: int) -> None:
        """Raise :class:`TrainingDiverged` for ``what`` at ``step``."""
        kept = (
            f"the last good checkpoint is {self.checkpoint} (step {self.last_good_step})"
            if self.last_good_step is not None
            else "no checkpoint had been written yet"
        )
        if self.on_diverged is not None:
            self.on_diverged(what, step)
        raise TrainingDiverged(
            f"train: {what} at step {step}; stopped, {kept} "
            "(try a lower train.lr or a train.grad_clip)"
        )

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: the trainer calls :meth:`saved` with the resumed step."""
