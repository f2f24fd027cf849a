"""Reference forecasts scored on exactly the same windows as the models.

- ``persistence``: the last input frame, repeated for every lead time.
- ``extrapolation``: pysteps Lucas–Kanade motion (``pysteps.motion.get_method("LK")``) from
  the last ``n_frames`` inputs, then semi-Lagrangian advection of the last input
  (``pysteps.nowcasts.get_method("extrapolation")``) with ``extrap_kwargs={"outval": 0}``.
- ``extrapolation_proesmans``: the same advection, with pysteps' Proesmans et al. (1994)
  anisotropic-diffusion optical flow (``get_method("proesmans")``, its defaults) from the
  last two inputs instead of LK. A dense variational flow: on each of the three real
  5-minute events it scores higher CSI ≥ 1 mm/h than LK (models/README.md), at about 3×
  LK's cost.

All run on **gray levels**, i.e. in dBZ up to the affine map P = (dBZ − z_min)/(z_max −
z_min): LK's feature tracking, and Proesmans' flow, which rescales its two inputs to
0–255, are insensitive to an affine rescaling, advection moves values
without changing them, and outval 0 is gray 0 = z_min dBZ ("no echo") for what flows in from
beyond the grid, so no NaN border. The forecasts are therefore directly comparable with the
model outputs, which are gray levels too.

Every baseline is a callable ``(inputs, n_out) -> forecast`` with inputs
``(B, T_in, H, W)`` gray-level tensor and forecast ``(B, n_out, H, W)`` on the same device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from nowcast.errors import UserError
from nowcast.evaluate.quiet_import import import_pysteps

Baseline = Callable[[torch.Tensor, int], torch.Tensor]
NAMES = ("persistence", "extrapolation", "extrapolation_proesmans")
#: motion method → (pysteps name, how many of the last inputs it reads; None: n_frames)
MOTIONS: dict[str, tuple[str, int | None]] = {"lk": ("LK", None), "proesmans": ("proesmans", 2)}


def persistence(inputs: torch.Tensor, n_out: int) -> torch.Tensor:
    """The last input frame repeated: (B, T_in, H, W) → (B, n_out, H, W) (a view, no copy)."""
    return inputs[:, -1:].expand(-1, n_out, -1, -1)


class Extrapolation:
    """pysteps motion + semi-Lagrangian extrapolation, one window at a time on the CPU.

    Args:
        n_frames: how many of the last input frames LK estimates the motion from (≥ 2).
        motion: ``"lk"`` (Lucas–Kanade from ``n_frames`` frames) or ``"proesmans"`` (from
            the last 2 frames, ``n_frames`` unused), see :data:`MOTIONS`.
    """

    def __init__(self, n_frames: int = 3, motion: str = "lk"):
        motion_module = import_pysteps("pysteps.motion")  # here: pysteps is slow to import
        nowcasts = import_pysteps("pysteps.nowcasts")
        if n_frames < 2:
            raise ValueError("extrapolation needs at least 2 frames for the motion")
        method, frames = MOTIONS[motion]
        self.motion = motion
        self.n_frames = frames or n_frames
        self._motion = motion_module.get_method(method)
        self._extrapolate = nowcasts.get_method("extrapolation")

    def forecast(self, frames: np.ndarray, n_out: int) -> np.ndarray:
        """One window: gray frames (T_in, H, W) → extrapolated gray frames (n_out, H, W), float64."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.shape[0] < self.n_frames:
            key = "evaluate.extrapolation_frames" if self.motion == "lk" else "data.n_in"
            raise UserError(
                f"{key}: {self.n_frames} frames needed for the {self.motion} motion, "
                f"but windows have only {frames.shape[0]} inputs"
            )
        last = frames[-1]
        if not np.any(frames[-self.n_frames :] > 0):  # nothing to track or move
            return np.zeros((n_out, *last.shape))
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            # pysteps' outlier filter warns (singular covariance) when few features are found
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            velocity = self._velocity(frames[-self.n_frames :])
            return self._extrapolate(last, velocity, n_out, extrap_kwargs={"outval": 0.0})

    def _velocity(self, frames: np.ndarray, tries: int = 2) -> np.ndarray:
        """Motion (2, H, W) [pixels a frame] of ``frames``; finite everywhere.

        pysteps' Proesmans flow once returned NaN in a full test run on a 32×32 synthetic
        window that gives a finite flow when rerun (not reproduced in 600 reruns), which
        the advection would refuse. A non-finite flow is therefore computed again, and
        what is still not finite after ``tries`` attempts is read as no motion.
        """
        for _ in range(tries):
            velocity = self._motion(frames, verbose=False)
            if np.isfinite(velocity).all():
                return velocity
        return np.nan_to_num(velocity, nan=0.0, posinf=0.0, neginf=0.0)

    def __call__(self, inputs: torch.Tensor, n_out: int) -> torch.Tensor:
        """(B, T_in, H, W) gray tensor → (B, n_out, H, W) float32 on the inputs' device."""
        batch = inputs.detach().cpu().numpy()
        out = np.stack([self.forecast(window, n_out) for window in batch])
        return torch.from_numpy(out.astype(np.float32)).to(inputs.device)


def describe(name: str, n_frames: int = 3) -> str:
    """One line saying what baseline ``name`` does (for the report)."""
    if name == "persistence":
        return "last input repeated"
    if name == "extrapolation_proesmans":
        motion = f"Proesmans optical flow from the last {MOTIONS['proesmans'][1]} inputs"
    else:
        motion = f"LK motion from the last {n_frames} inputs"
    return (
        f"pysteps {motion} + semi-Lagrangian extrapolation of the last input, "
        "on gray levels (dBZ), outval 0"
    )


def build_baselines(names: Sequence[str], n_frames: int = 3) -> dict[str, Baseline]:
    """Baselines by name (:data:`NAMES`), in the order given."""
    out: dict[str, Baseline] = {}
    for name in names:
        if name == "persistence":
            out[name] = persistence
        elif name == "extrapolation":
            out[name] = Extrapolation(n_frames)
        elif name == "extrapolation_proesmans":
            out[name] = Extrapolation(motion="proesmans")
        else:
            raise UserError(f"unknown baseline {name!r} (expected {', '.join(NAMES)})")
    return out
