"""`predict`: nowcasts from new radar files (`nowcast predict`).

The preprocessing itself (gray-level bounds, Z–R, crop, disk filter, resize) is never set
here: it is read from the checkpoint, so that a nowcast sees exactly what training saw.
These keys only say how strictly to check the new files, which noise mask to apply, how
far ahead to predict and how to draw the pictures.
"""

from __future__ import annotations

from typing import Literal, Optional

from nowcast.config.base import (
    Amp,
    Dpi,
    FrameCount,
    NonNegativeFloat,
    PositiveInt,
    ProcessCount,
    Section,
)


class PredictConfig(Section):
    """Checks on the input frames, the noise-mask policy, the number of leads, the pictures."""

    time_tolerance_minutes: NonNegativeFloat = 0.5
    """Consecutive input frames must be the model's interval apart ± this many minutes;
    two frames at most this far apart are duplicates (an error). Half a minute lets time
    stamps jitter by seconds but refuses a 6-minute archive for a 5-minute model (its
    leads would be labelled 5, 10, … min while each step is 6)."""
    noise_mask: Literal["nearest_month", "union"] = "nearest_month"
    """Which of the checkpoint's monthly noise masks blanks the nowcast: the calendar month
    of the last input frame (the nearest month the checkpoint has, if it lacks that one),
    as training masks a window by its month; or the union of all months (blanks more)."""
    leads: Optional[FrameCount] = None
    """Number of lead times to predict; null = as many as the model was trained to predict
    (the checkpoint's data.n_out). Leads beyond the trained ones are extrapolations of the
    network and are less skilful."""
    threads: ProcessCount = 1
    """CPU threads torch runs the network with during a nowcast (0 = torch's default, one per
    core); restored afterwards. One nowcast is a chain of small batch-1 convolutions, for
    which threads that wait on each other (OpenMP) cost more than they gain when other work
    shares the cores."""
    amp: Amp = "auto"
    """Mixed precision of the network's forward pass (autocast; the nowcast is written as
    float32): auto = bf16 on a CPU with native bf16 units (AVX512-BF16 or AMX) and on CUDA,
    else float32; bf16 = bf16 anywhere; fp16 = CUDA only; off = float32."""
    dpi: Dpi = 100
    """Resolution of the PNG frames and of the GIF [dots per inch of a 6.4 × 5.2 inch figure]."""
    gif_frame_ms: PositiveInt = 500
    """Time each lead is shown in the GIF [ms]."""
