"""Motion estimation: the registry of motion methods, and the input-frame check they share.

A motion method is a function ``(frames) -> velocity``: ``frames`` (T, H, W) float64 gray
levels, oldest first, ``velocity`` (2, H, W) [pixels a frame], (u, v) with +u along the
columns (x) and +v down the rows (y), as pysteps returns it. Each is a pysteps method;
pysteps is imported on the first call (it is slow to import).

    estimate = get_motion("proesmans")
    velocity = estimate(frames[-MOTIONS["proesmans"].frames :])

Adding a motion = one function here and one line in :data:`MOTIONS` (and its name in the
``Literal`` of ``ModelConfig.advection_motion`` if the model's prior may use it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nowcast.errors import UserError
from nowcast.pysteps_import import import_pysteps

if TYPE_CHECKING:
    import numpy as np

MotionFunction = Callable[["np.ndarray"], "np.ndarray"]


@functools.cache
def pysteps_motion(method: str) -> Callable:
    """``pysteps.motion.get_method(method)``, pysteps imported on the first call."""
    return import_pysteps("pysteps.motion").get_method(method)


def lucas_kanade(frames: np.ndarray) -> np.ndarray:
    """pysteps' Lucas–Kanade feature tracking (``motion.get_method("LK")``, its defaults):
    (T ≥ 2, H, W) → (2, H, W) [pixels a frame]."""
    return pysteps_motion("LK")(frames, verbose=False)


def proesmans(frames: np.ndarray) -> np.ndarray:
    """pysteps' Proesmans et al. (1994) anisotropic-diffusion optical flow
    (``motion.get_method("proesmans")``, its defaults) of two frames: (2, H, W) → (2, H, W)
    [pixels a frame]. It rescales its two inputs to 0–255 itself."""
    return pysteps_motion("proesmans")(frames, verbose=False)


@dataclass(frozen=True)
class Motion:
    """A registered motion method.

    ``estimate``: the method. ``frames``: how many of the last inputs it reads by default.
    ``adjustable``: whether a caller may choose another count (≥ 2); otherwise it always
    reads ``frames``. ``label``: what it is, for reports (e.g. "LK motion").
    """

    estimate: MotionFunction
    frames: int
    adjustable: bool
    label: str


#: motion method name → :class:`Motion`
MOTIONS: dict[str, Motion] = {
    "lk": Motion(lucas_kanade, frames=3, adjustable=True, label="LK motion"),
    "proesmans": Motion(proesmans, frames=2, adjustable=False, label="Proesmans optical flow"),
}


def get_motion(name: str) -> Motion:
    """The registered motion ``name`` (a key of :data:`MOTIONS`); unknown: a UserError."""
    try:
        return MOTIONS[name]
    except KeyError:
        raise UserError(f"unknown motion method {name!r} (known: {', '.join(MOTIONS)})") from None


def motion_frames(name: str, n_frames: int | None = None) -> int:
    """How many of the last inputs motion ``name`` reads: ``n_frames`` where the method is
    adjustable and a count is given, else its registered count. Fewer than 2 is a ValueError."""
    motion = get_motion(name)
    frames = n_frames if motion.adjustable and n_frames is not None else motion.frames
    if frames < 2:
        raise ValueError(f"the {name} motion needs at least 2 frames, not {frames}")
    return frames


def check_frames(name: str, needed: int, available: int, key: str) -> None:
    """Raise a one-line UserError naming ``key`` unless ``available`` ≥ ``needed`` input
    frames for motion ``name`` (``available`` is what a window holds: ``data.n_in``)."""
    if available < needed:
        where = "" if key == "data.n_in" else " (data.n_in)"
        raise UserError(
            f"{key}: the {name} motion needs {needed} input frames, got {available}{where}"
        )
