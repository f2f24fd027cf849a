"""The run directory of a training run and its metrics log.

Layout::

    <out_dir>/config.yaml            the resolved config (nowcast.config.save_config)
    <out_dir>/metrics.jsonl          one JSON object per line: start, baseline, train, val,
                                     resume and end events, each with its "step"
    <out_dir>/checkpoints/last.pt    the latest state (resume continues from it)
    <out_dir>/checkpoints/best.pt    the state with the best validation score

A run directory is never deleted or overwritten: starting a run where one exists is an
error unless ``--resume`` continues it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from nowcast.atomic import write_text_atomic
from nowcast.config import Config, save_config
from nowcast.errors import UserError

RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt")


class RunDir:
    """Paths of a run directory and the metrics log (only the main process writes)."""

    def __init__(self, out_dir: Path, writer: bool):
        self.root = Path(out_dir)
        self.writer = writer

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    def check(self, resume: bool) -> None:
        """A new run needs a folder without a run in it; a resumed one needs last.pt."""
        if resume:
            if not self.last.is_file():
                raise UserError(
                    f"--resume: {self.last} not found (train.out_dir {self.root} holds no run to continue)"
                )
            return
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"train.out_dir: {self.root} exists and is not a folder")
        found = [name for name in RUN_FILES if (self.root / name).exists()]
        if found:
            raise UserError(
                f"train.out_dir: {self.root} already holds a training run ({found[0]}); "
                "continue it with --resume or choose another train.out_dir"
            )

    def start(self, cfg: Config) -> None:
        """Create the folders and write config.yaml."""
        if self.writer:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.config)

    def rewind(self, step: int) -> int:
        """Drop metrics lines logged after ``step`` (work lost with a killed process, to be
        redone) and any torn last line; returns how many lines were dropped."""
        if not self.writer or not self.metrics.is_file():
            return 0
        kept, dropped = [], 0
        for line in self.metrics.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if int(event.get("step", 0)) > step:
                dropped += 1
                continue
            kept.append(line)
        if dropped:
            write_text_atomic(self.metrics, "".join(f"{line}\n" for line in kept))
        return dropped

    def log(self, event: str, step: int, **fields: Any) -> dict[str, Any]:
        """Append one event line to metrics.jsonl (NaN and inf are written as null)."""
        record = {"event": event, "step": step, "time": round(time.time(), 3), **fields}
        record = {k: _json_value(v) for k, v in record.items()}
        if self.writer:
            with open(self.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
        return record


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All events of a metrics.jsonl file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
