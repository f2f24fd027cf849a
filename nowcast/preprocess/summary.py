"""What `nowcast preprocess` found and wrote, as printed at the end of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Summary:
    """Counts of one preprocessing run (all plain numbers, for printing and tests)."""

    store: Path
    files: int = 0  # input files found
    frames_read: int = 0  # frames read from good files
    frames_found: int = 0  # grid times with a frame
    frames_missing: int = 0  # grid times without one
    duplicates: int = 0  # frames dropped because another one had the same grid time
    off_grid: int = 0  # frames further than the tolerance from every grid time
    empty_frames: int = 0  # frames with no data (all NaN) in the crop, left out
    bad_files: list[str] = field(default_factory=list)  # one-line reasons (--skip-bad)
    days: int = 0
    interval_minutes: int = 0
    blocks: dict[str, int] = field(default_factory=dict)  # usable blocks per split
    blocks_dropped: int = 0  # blocks with a missing frame (no split)
    window_frames: int = 0
    windows: dict[str, int] = field(default_factory=dict)  # windows per split
    masked: dict[str, int] = field(default_factory=dict)  # noise-mask cells per month
    covered_cells: int = 0
    cells: int = 0
    tiles: int = 0  # tiles stored (preprocess.crops: tiles); 0 = the central crop
    tiles_found: int = 0  # tiles of the grid
    tiles_without_data: int = 0  # tiles dropped: no valid frame
    tiles_below_coverage: int = 0  # tiles dropped: below preprocess.tile_min_coverage
    seconds: float = 0.0  # whole run
    read_seconds: float = 0.0  # reading and transforming the files (incl. starting workers)
    clutter_seconds: float = 0.0  # K-means masks
    task_read_seconds: float = 0.0  # summed over tasks: reading files
    task_transform_seconds: float = 0.0  # summed over tasks: transforming frames

    def lines(self) -> list[str]:
        """The summary as short lines of text."""
        per = ", ".join(f"{k} {v}" for k, v in self.blocks.items())
        win = ", ".join(f"{k} {v}" for k, v in self.windows.items())
        masked = ", ".join(f"{m} {n}" for m, n in self.masked.items()) or "none"
        lines = [
            f"preprocess: wrote {self.store} in {self.seconds:.1f} s",
            f"  files: {self.files} found, {len(self.bad_files)} bad (skipped)",
            f"  frames: {self.frames_found} found, {self.frames_missing} missing on the "
            f"{self.interval_minutes}-minute grid of {self.days} day(s)"
            f" ({self.frames_read} read, {self.duplicates} duplicate, {self.off_grid} off the grid,"
            f" {self.empty_frames} without data)",
            f"  blocks per split: {per} ({self.blocks_dropped} dropped for a missing frame)",
            f"  {self.window_frames}-frame windows per split: {win}",
            f"  masked (noise) cells per month: {masked}; covered cells {self.covered_cells} of {self.cells}",
        ]
        if self.tiles:
            lines.insert(
                1,
                f"  tiles: {self.tiles} of {self.tiles_found} stored ({self.tiles_without_data} "
                f"without a valid frame, {self.tiles_below_coverage} below tile_min_coverage); "
                "counts below are summed over the tiles, frames are per input frame",
            )
        lines += [f"  bad file: {reason}" for reason in self.bad_files[:10]]
        if len(self.bad_files) > 10:
            lines.append(f"  … and {len(self.bad_files) - 10} more bad files")
        return lines
