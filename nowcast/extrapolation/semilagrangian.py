"""Semi-Lagrangian extrapolation: the last frame advected by a motion field, on gray levels.

pysteps' ``nowcasts.get_method("extrapolation")`` moves the last input frame along the
motion of :mod:`nowcast.extrapolation.motion`, with ``extrap_kwargs={"outval": 0}``: what
flows in from beyond the grid is gray 0 (z_min dBZ, "no echo"), so there is no NaN border.

Everything runs on **gray levels**, i.e. in dBZ up to the affine map P = (dBZ − z_min)/(z_max
− z_min): LK's feature tracking, and Proesmans' flow, which rescales its two inputs to
0–255, are insensitive to an affine rescaling, and advection moves values without changing
them. The forecasts are therefore directly comparable with the models' outputs, which are
gray levels too.

One window at a time, on the CPU in numpy (float64): :func:`extrapolate` with any motion
function; :class:`Extrapolation` with a registered motion, also as a forecast method on
(B, T_in, 1, H, W) tensors (:mod:`nowcast.forecast`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from nowcast.extrapolation.motion import check_frames, get_motion, motion_frames
from nowcast.pysteps_import import import_pysteps


def finite_velocity(
    motion: Callable[[np.ndarray], np.ndarray], frames: np.ndarray, tries: int = 2
) -> np.ndarray:
    """Motion (2, H, W) [pixels a frame] of ``frames`` (T, H, W); finite everywhere.

    A motion method may return a non-finite flow (pysteps' Proesmans flow on a small,
    nearly uniform window), which the advection would refuse: a non-finite flow is
    computed again, and what is still not finite after ``tries`` attempts is read as no
    motion (0).
    """
    for _ in range(tries):
        velocity = motion(frames)
        if np.isfinite(velocity).all():
            return velocity
    return np.nan_to_num(velocity, nan=0.0, posinf=0.0, neginf=0.0)


def extrapolate(
    frames: np.ndarray,
    n_out: int,
    motion: Callable[[np.ndarray], np.ndarray],
    n_frames: int,
) -> np.ndarray:
    """One window: gray frames (T_in ≥ ``n_frames``, H, W) → (n_out, H, W) float64.

    The motion is estimated by ``motion`` from the last ``n_frames`` inputs
    (:func:`finite_velocity`), then the last input is advected ``n_out`` frames ahead. A
    window with no rain in those inputs gives zeros (nothing to track or move).
    """
    frames = np.asarray(frames, dtype=np.float64)
    last = frames[-1]
    if not np.any(frames[-n_frames:] > 0):
        return np.zeros((n_out, *last.shape))
    advect = import_pysteps("pysteps.nowcasts").get_method("extrapolation")
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # pysteps' outlier filter warns (singular covariance) when few features are found
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        velocity = finite_velocity(motion, frames[-n_frames:])
        return advect(last, velocity, n_out, extrap_kwargs={"outval": 0.0})


class Extrapolation:
    """A registered motion + semi-Lagrangian extrapolation, one window at a time on the CPU.

    Args:
        n_frames: how many of the last inputs an adjustable motion (``lk``) reads (≥ 2);
            ``None``: the motion's registered count. Fixed motions (``proesmans``: the last
            2) ignore it.
        motion: a key of :data:`nowcast.extrapolation.motion.MOTIONS`.
        key: the config key a window with too few inputs is reported under.
    """

    def __init__(self, n_frames: int | None = 3, motion: str = "lk", key: str = "data.n_in"):
        for module in ("pysteps.motion", "pysteps.nowcasts"):  # here, not in the first window
            import_pysteps(module)  # (slow to import)
        self.motion = motion
        self.n_frames = motion_frames(motion, n_frames)
        self.key = key
        self._motion = get_motion(motion).estimate

    def forecast(self, frames: np.ndarray, n_out: int) -> np.ndarray:
        """One window: gray frames (T_in, H, W) → extrapolated gray frames (n_out, H, W), float64."""
        check_frames(self.motion, self.n_frames, np.shape(frames)[0], self.key)
        return extrapolate(frames, n_out, self._motion, self.n_frames)

    def __call__(self, inputs: torch.Tensor, n_out: int) -> torch.Tensor:
        """(B, T_in, 1, H, W) gray tensor → (B, n_out, 1, H, W) float32 on the inputs' device."""
        batch = inputs.detach()[:, :, 0].cpu().numpy()
        out = np.stack([self.forecast(window, n_out) for window in batch])
        return torch.from_numpy(out.astype(np.float32))[:, :, None].to(inputs.device)
