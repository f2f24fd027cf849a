"""`evaluate`: which split and thresholds to score, which baselines, where the report goes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from nowcast.config.base import Amp, NonNegativeInt, PositiveFloat, PositiveInt, Section

#: the keys of ``nowcast.evaluate.baselines.BASELINES`` (tests/test_layout.py checks they agree)
BaselineName = Literal["persistence", "extrapolation", "extrapolation_proesmans"]


class EvaluateConfig(Section):
    """Scores (HKO-7 protocol), baselines, report; the store and window sizes come from `data`."""

    split: Literal["train", "val", "test"] = "test"
    """Which split of the store's windows to score (`--split`)."""
    thresholds_mmh: Annotated[list[PositiveFloat], Field(min_length=1)] = [
        0.5,
        2.0,
        5.0,
        10.0,
        30.0,
    ]
    """Rain-rate event thresholds [mm/h], strictly increasing (HKO-7: 0.5, 2, 5, 10, 30). Each is
    converted to a gray level with the store's Z–R relation and gray bounds; an event is
    rain rate ≥ threshold. A threshold above the gray scale's maximum (z_max in mm/h) is an
    error."""
    baselines: list[BaselineName] = ["persistence", "extrapolation"]
    """Baselines scored on the same windows (`--baselines`; empty: none): `persistence`
    (last input repeated), `extrapolation` (pysteps Lucas–Kanade + semi-Lagrangian) and
    `extrapolation_proesmans` (the same advection with pysteps' Proesmans optical flow from
    the last 2 inputs)."""
    extrapolation_frames: Annotated[int, Field(ge=2)] = 3
    """How many of the last input frames the Lucas–Kanade motion is estimated from (≤ data.n_in)."""
    out: Path = Path("evaluation")
    """Folder for report.json, report.md, the PNG plots and the resolved config (`--out`)."""
    batch_size: PositiveInt = 8
    """Windows per batch through the models and the metrics (memory: a few MB per window)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where models run and metrics are summed: `auto` = the GPU when torch sees one."""
    amp: Amp = "auto"
    """Mixed precision of the networks' forward pass (autocast; the metric sums stay float32):
    auto = bf16 on a CPU with native bf16 units and on CUDA (fp16 where the GPU lacks bf16),
    else float32; bf16 = bf16 anywhere; fp16 = CUDA only; off = float32. Recorded in
    report.json (``run.amp``)."""
    example_window: NonNegativeInt | None = None
    """Index (in time order, within the split) of the window drawn in example.png;
    null = the wettest window (highest mean observed gray level)."""
    example_leads_min: Annotated[list[PositiveFloat], Field(min_length=1, max_length=8)] = [
        6.0,
        30.0,
        60.0,
        90.0,
    ]
    """Lead times [min] shown in example.png; each is drawn at the nearest available lead."""
