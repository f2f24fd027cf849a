"""The run directory of a training run and its metrics log.

Layout::

    <out_dir>/config.yaml            the resolved config (nowcast.config.save_config)
    <out_dir>/metrics.jsonl          one JSON object per line: start, baseline, train, val,
                                     resume and end events, each with its "step"
    <out_dir>/checkpoints/last.pt    the latest state (resume continues from it)
    <out_dir>/checkpoints/best.pt    the state with the best validation score

A run directory that holds ``checkpoints/last.pt`` is never overwritten: starting a run
there is an error unless ``--resume`` continues it. A run stopped before its first last.pt
left nothing to continue: a new start (with or without ``--resume``) takes its folder over
and begins its metrics log afresh. While a run trains, its main process holds an exclusive
lock (``flock``) on the folder, so a second run started on the same folder is refused; the
kernel drops the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from nowcast.atomic import write_text_atomic
from nowcast.config import Config, save_config
from nowcast.errors import UserError
from nowcast.progress import warn

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

    def check(self, resume: bool) -> bool:
        """Whether this run continues from last.pt (True) or starts at step 0 (False).

        A new run needs a folder without last.pt in it; ``resume`` needs last.pt and a
        readable metrics log, except in a folder whose run stopped before its first last.pt,
        which starts again at step 0 (with a warning). Anything else is a UserError.
        """
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"train.out_dir: {self.root} exists and is not a folder")
        has_last = self.last.is_file()
        if resume and has_last:
            self.read_events()  # a damaged log fails here, before anything is written
            return True
        if not resume and has_last:
            raise UserError(
                f"train.out_dir: {self.root} already holds a training run (checkpoints/last.pt); "
                "continue it with --resume or choose another train.out_dir"
            )
        found = [name for name in RUN_FILES if (self.root / name).exists()]
        if not found:
            if resume:
                raise UserError(
                    f"--resume: {self.last} not found (train.out_dir {self.root} holds no run "
                    "to continue)"
                )
            return False
        if self.writer:
            warn(
                f"train.out_dir: {self.root} holds a run that stopped before its first "
                f"checkpoint ({found[0]}, no checkpoints/last.pt); starting it again at step 0"
            )
        return False

    def lock(self, resume: bool) -> None:
        """Take the folder's run lock for this process (the writer only; creates the folder
        for a new run). A folder locked by a live process is a UserError naming it."""
        if not self.writer or getattr(self, "_lock_fd", None) is not None:
            return
        if not self.root.exists() and resume:
            return  # check() names the missing run
        try:
            if not resume:
                self.root.mkdir(parents=True, exist_ok=True)
            if not self.root.is_dir():
                return  # check() names the problem
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise UserError(
                f"train.out_dir: cannot create or open {self.root}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"train.out_dir: {self.root} is in use by another `nowcast train` process "
                "(wait for it to end or choose another train.out_dir)"
            ) from None
        except OSError:  # a file system without flock: train unlocked
            os.close(fd)
            return
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (nothing if none is held)."""
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            self._lock_fd = None
            os.close(fd)  # closing the last descriptor releases the flock

    def start(self, cfg: Config, fresh: bool = True) -> None:
        """Create the folders and write config.yaml; a ``fresh`` run (step 0) starts the
        metrics log anew (a run that stopped before its first checkpoint leaves one)."""
        if self.writer:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.config)
            if fresh:
                self.metrics.unlink(missing_ok=True)

    def rewind(self, step: int) -> int:
        """Drop metrics lines logged after ``step`` (work lost with a killed process, to be
        redone) and a torn last line; returns how many lines were dropped."""
        if not self.writer or not self.metrics.is_file():
            return 0
        events, torn = self.read_events()
        kept = [line for line, event in events if int(event.get("step", 0)) <= step]
        dropped = len(events) - len(kept) + torn
        if dropped:
            write_text_atomic(self.metrics, "".join(f"{line}\n" for line in kept))
        return dropped

    def read_events(self) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        """The metrics log as (line, event) pairs, and whether its last line is torn (see
        :func:`parse_metrics`); no log yet: no events."""
        if not self.metrics.is_file():
            return [], False
        return parse_metrics(self.metrics)

    def log(self, event: str, step: int, **fields: Any) -> dict[str, Any]:
        """Append one event line to metrics.jsonl (NaN and inf are written as null)."""
        record = {"event": event, "step": step, "time": round(time.time(), 3), **fields}
        record = {k: _json_value(v) for k, v in record.items()}
        if self.writer:
            with open(self.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
        return record


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All events of a metrics.jsonl file (a torn last line left out)."""
    return [event for _, event in parse_metrics(path)[0]]


def parse_metrics(path: str | Path) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """The (line, event) pairs of a metrics.jsonl file, and whether it ends in a torn line.

    Every line ends in a newline when written, so text after the last newline is a line
    cut short by a killed process: it is left out (``torn`` True). Any complete line that
    is not UTF-8 JSON of an event (an object with an integer "step") is a UserError naming
    the file and the line number; blank lines are skipped.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the metrics log: {exc.strerror or exc}") from None
    *lines, tail = data.split(b"\n")
    events = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
            event = json.loads(line)
        except (UnicodeDecodeError, ValueError) as exc:
            what = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "is not JSON"
            raise UserError(
                f"{path}: line {number} {what}: the metrics log is damaged "
                "(remove or repair that line)"
            ) from None
        if not isinstance(event, dict) or not isinstance(event.get("step", 0), int):
            raise UserError(
                f"{path}: line {number} is not a metrics event (a JSON object with an "
                "integer step): the metrics log is damaged (remove or repair that line)"
            )
        events.append((line, event))
    return events, bool(tail.strip())


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
