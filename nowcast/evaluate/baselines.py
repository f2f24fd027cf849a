"""The registry of reference forecasts scored on exactly the same windows as the models.

- ``persistence``: the last input frame, repeated for every lead time.
- ``extrapolation``: pysteps Lucas–Kanade motion from the last ``n_frames`` inputs
  (``evaluate.extrapolation_frames``), then semi-Lagrangian advection of the last input
  (:mod:`nowcast.extrapolation`).
- ``extrapolation_proesmans``: the same advection, with pysteps' Proesmans optical flow
  from the last two inputs instead of LK.

Every baseline is a forecast method (:mod:`nowcast.forecast`): gray inputs
(B, T_in, 1, H, W) → forecast (B, n_out, 1, H, W) on the same device.
A baseline's name is written once, in :data:`BASELINES` (and, for config validation, in the
``Literal`` of ``EvaluateConfig.baselines``). This module imports neither torch nor pysteps:
the command line reads the names from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nowcast.errors import UserError
from nowcast.extrapolation.motion import check_frames, get_motion, motion_frames
from nowcast.forecast import ForecastMethod, persistence


@dataclass(frozen=True)
class BaselineSpec:
    """A registered baseline: ``motion`` is the key of its motion method
    (:data:`nowcast.extrapolation.motion.MOTIONS`), ``None`` for no extrapolation."""

    motion: str | None = None

    def frames(self, n_frames: int) -> int:
        """Inputs the motion reads, given ``evaluate.extrapolation_frames`` = ``n_frames``."""
        return motion_frames(self.motion, n_frames) if self.motion else 1

    def key(self) -> str:
        """The config key that sets how many inputs the motion reads."""
        adjustable = self.motion is not None and get_motion(self.motion).adjustable
        return "evaluate.extrapolation_frames" if adjustable else "data.n_in"


#: baseline name → :class:`BaselineSpec`
BASELINES: dict[str, BaselineSpec] = {
    "persistence": BaselineSpec(),
    "extrapolation": BaselineSpec(motion="lk"),
    "extrapolation_proesmans": BaselineSpec(motion="proesmans"),
}


def _spec(name: str) -> BaselineSpec:
    if name not in BASELINES:
        raise UserError(f"unknown baseline {name!r} (expected {', '.join(BASELINES)})")
    return BASELINES[name]


def check_baseline_frames(names: Sequence[str], n_frames: int, n_in: int) -> None:
    """Raise a UserError naming the key if a window of ``n_in`` inputs is too short for the
    motion of any baseline in ``names`` (``n_frames``: ``evaluate.extrapolation_frames``)."""
    for name in names:
        spec = _spec(name)
        if spec.motion:
            check_frames(spec.motion, spec.frames(n_frames), n_in, spec.key())


def describe(name: str, n_frames: int = 3) -> str:
    """One line saying what baseline ``name`` does (for the report)."""
    spec = _spec(name)
    if spec.motion is None:
        return "last input repeated"
    motion = f"{get_motion(spec.motion).label} from the last {spec.frames(n_frames)} inputs"
    return (
        f"pysteps {motion} + semi-Lagrangian extrapolation of the last input, "
        "on gray levels (dBZ), outval 0"
    )


def build_baselines(names: Sequence[str], n_frames: int = 3) -> dict[str, ForecastMethod]:
    """Baselines by name (keys of :data:`BASELINES`), in the order given."""
    out: dict[str, ForecastMethod] = {}
    for name in names:
        spec = _spec(name)
        if spec.motion is None:
            out[name] = persistence
        else:
            from nowcast.extrapolation.semilagrangian import Extrapolation  # torch, pysteps

            out[name] = Extrapolation(n_frames, spec.motion, spec.key())
    return out
