"""The advection prior of ``model.advection``: pysteps extrapolation of the inputs.

For each window the last input frame is advected by the motion of ``model.advection_motion``
(a key of :data:`nowcast.extrapolation.motion.MOTIONS`, read from its registered number of
last inputs: Lucas–Kanade from 3, Proesmans optical flow from 2) by
:class:`nowcast.extrapolation.semilagrangian.Extrapolation`, the same extrapolation evaluate's
``extrapolation`` / ``extrapolation_proesmans`` baselines run, so a network that adds nothing
to the prior scores exactly as that baseline.

pysteps runs on the CPU in numpy, outside autograd: the prior is a constant input. Training
revisits the same windows every epoch, so forecasts are kept in a bounded LRU cache keyed
by the window's bytes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

from nowcast.extrapolation.motion import MOTIONS, check_frames
from nowcast.extrapolation.semilagrangian import Extrapolation  # pysteps loads on first use

#: inputs each motion is estimated from (its registered count)
MOTION_FRAMES = {name: motion.frames for name, motion in MOTIONS.items()}
#: windows whose forecasts are kept (12 leads of 100×100 float32: ~0.5 MB each)
CACHE_WINDOWS = 2048


def check_prior_inputs(motion: str, n_in: int) -> None:
    """UserError naming ``model.advection`` unless windows of ``n_in`` inputs are enough for
    the prior's ``motion`` (a key of :data:`MOTION_FRAMES`)."""
    check_frames(motion, MOTION_FRAMES[motion], n_in, "model.advection")


class AdvectionPrior:
    """``prior(inputs, n_out)``: gray (B, T_in, 1, H, W) → extrapolated (B, n_out, 1, H, W).

    The result has the inputs' dtype and device; values are gray levels in [0, 1] (what
    flows in from beyond the grid is 0). ``motion``: a key of :data:`MOTION_FRAMES`. At
    most ``cache_windows`` windows are remembered.
    """

    def __init__(self, motion: str = "lk", cache_windows: int = CACHE_WINDOWS) -> None:
        self.motion = motion
        self.frames = MOTION_FRAMES[motion]
        self.cache_windows = cache_windows
        self._extrapolation = None
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def __call__(self, inputs: Tensor, n_out: int) -> Tensor:
        check_prior_inputs(self.motion, inputs.shape[1])
        frames = inputs.detach()[:, :, 0].float().cpu().numpy()
        out = np.stack([self._window(w, n_out) for w in frames])
        return torch.from_numpy(out).unsqueeze(2).to(device=inputs.device, dtype=inputs.dtype)

    def _window(self, frames: np.ndarray, n_out: int) -> np.ndarray:
        """One window (T_in, H, W) float32 → (n_out, H, W) float32."""
        key = hashlib.blake2b(frames.tobytes(), digest_size=16)
        key.update(np.array([n_out, *frames.shape], dtype=np.int64).tobytes())
        digest = key.digest()
        hit = self._cache.get(digest)
        if hit is not None:
            self._cache.move_to_end(digest)
            return hit
        if self._extrapolation is None:  # its constructor imports pysteps (slow)
            self._extrapolation = Extrapolation(self.frames, self.motion, "model.advection")
        out = self._extrapolation.forecast(frames, n_out).astype(np.float32)
        if self.cache_windows:
            self._cache[digest] = out
            if len(self._cache) > self.cache_windows:
                self._cache.popitem(last=False)
        return out
