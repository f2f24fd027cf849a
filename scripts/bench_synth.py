"""Synthetic-archive generation speed (target ≥ 50 frames/s on the 2-core CI machine).

Reference measured in the same run: writing the same number of frames of a constant field
(no generation), i.e. the bare netCDF write cost.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from nowcast.config.synth import SynthConfig
from nowcast.progress import set_quiet
from nowcast.synth import frame_times, grid_coordinates, synthesize, write_frame

TARGET_FPS = 50.0


def run(quick: bool = False) -> None:
    set_quiet(True)
    days = 1 if quick else 2
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(out=Path(tmp) / "synth", days=days)
        t0 = time.perf_counter()
        archive = synthesize(cfg)
        gen_s = time.perf_counter() - t0
        n = len(archive.files)

        x, y = grid_coordinates(cfg.size, cfg.pixel_km)
        field = np.full((cfg.size, cfg.size), -32.0, dtype=np.float32)
        times = frame_times(cfg)[:n]
        t0 = time.perf_counter()
        for i, t in enumerate(times):
            write_frame(Path(tmp) / f"w{i}.nc", t, field, x, y, cfg)
        write_s = time.perf_counter() - t0

    fps = n / gen_s
    print(
        f"{'frames':>8} {'synth s':>9} {'frames/s':>9} {'write-only frames/s':>20} {'synth/write':>12} {'target':>8}"
    )
    print(
        f"{n:>8} {gen_s:>9.2f} {fps:>9.1f} {n / write_s:>20.1f} {write_s / gen_s:>12.2f} {'≥ 50':>8}"
    )
    print(
        f"synth: {fps:.1f} frames/s ({'meets' if fps >= TARGET_FPS else 'MISSES'} the ≥ {TARGET_FPS:g} frames/s target)"
    )
