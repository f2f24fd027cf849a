"""`nowcast train` under faults: a run killed before its first checkpoint, a store truncated
while it is read, a damaged metrics log, an out-of-range list entry in the config. Real
processes, real stores and checkpoints; each failure is one line, exit 2, nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from cli_support import assert_one_line_error, checksums
from train_support import REPO, nowcast_cmd, subprocess_env, tiny_config
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.data import WindowDataset, worker_context
from nowcast.data.toy import write_blob_store
from nowcast.store import StoreReadError, read_meta
from nowcast.train.rundir import read_metrics

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# long enough never to end by itself: the test stops it
ENDLESS = dict(steps=1_000_000, val_every=1_000_000, log_every=1)


@pytest.fixture
def store(tmp_path):
    return write_blob_store(
        tmp_path / "store.nc", splits=("train", "train", "val"), h=16, w=16, seed=3
    )


def _train(*args: str):
    return runner.invoke(app, ["train", *args])


def _start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        nowcast_cmd("train", "--config", str(config), "--quiet"),
        env=subprocess_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
    """Poll until ``ready()`` (the process must still run)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"train ended (exit {proc.returncode}) before {what}: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.02)


def _trained_steps(metrics: Path) -> int:
    """Steps logged so far (complete lines only)."""
    if not metrics.is_file():
        return 0
    steps = 0
    for line in metrics.read_bytes().split(b"\n")[:-1]:
        event = json.loads(line)
        if event["event"] == "train":
            steps = event["step"]
    return steps


def _finished(proc: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ---------------------------------------------------------------- killed before a checkpoint


def test_run_killed_before_its_first_checkpoint_starts_again(store, tmp_path):
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    tiny_config(store, run, cfg, checkpoint_every=1_000_000, **ENDLESS)
    proc = _start(cfg)
    try:
        _wait_for(proc, lambda: _trained_steps(run / "metrics.jsonl") >= 2, "two logged steps")
        # while it trains, a second run on the same folder is refused and changes nothing
        before = checksums(run / "config.yaml", store)
        busy = _train("--config", str(cfg), "--quiet")
        assert_one_line_error(busy, f"train.out_dir: {run} is in use by another")
        assert checksums(run / "config.yaml", store) == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "checkpoints" / "last.pt").exists()
    assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
    again = tmp_path / "again"
    shutil.copytree(run, again)

    # --resume: nothing to continue, so it starts at step 0 (one warning line)
    short = ("--set", "train.steps=2", "--set", "train.val_every=2")
    resumed = _train("--config", str(cfg), "--resume", "--quiet", *short)
    assert resumed.exit_code == 0, resumed.output
    assert "stopped before its first checkpoint" in resumed.stderr
    events = read_metrics(run / "metrics.jsonl")
    assert events[0]["event"] == "start" and events[0]["step"] == 0
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 2

    # a plain new start takes the folder over too
    fresh = _train("--config", str(cfg), "--quiet", "--set", f"train.out_dir={again}", *short)
    assert fresh.exit_code == 0, fresh.output
    assert [e["step"] for e in read_metrics(again / "metrics.jsonl") if e["event"] == "train"] == [
        1,
        2,
    ]
    # a run with a checkpoint is still never overwritten
    refused = _train("--config", str(cfg), "--quiet", "--set", f"train.out_dir={again}")
    assert_one_line_error(refused, f"{again} already holds a training run", "--resume")


# ---------------------------------------------------------------- store truncated mid-run


def test_store_truncated_while_training_stops_with_one_line(store, tmp_path):
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    tiny_config(store, run, cfg, checkpoint_every=2, **ENDLESS)
    last = run / "checkpoints" / "last.pt"
    proc = _start(cfg)
    try:
        _wait_for(proc, last.is_file, "checkpoints/last.pt")
        os.truncate(store, int(store.stat().st_size * 0.8))
        result = _finished(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert_one_line_error(result, str(store), "was truncated", "while it was being read")
    saved = torch.load(last, weights_only=False)
    assert saved["step"] % 2 == 0 and saved["step"] < _trained_steps(run / "metrics.jsonl") + 1
    assert not any(e["event"] == "end" for e in read_metrics(run / "metrics.jsonl"))

    # continuing on the truncated store: one line naming it, the run folder untouched
    before = checksums(run, store)
    resumed = _train("--config", str(cfg), "--resume", "--quiet")
    assert_one_line_error(resumed, str(store), "cannot read dataset store")
    assert checksums(run, store) == before


def test_store_truncated_under_a_loader_worker_is_one_line(store):
    """A read error in a DataLoader worker process reaches the main process as the same
    one-line UserError (torch re-raises it with the worker's traceback)."""
    ds = WindowDataset(read_meta(store), "train", 3, 4)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=1, multiprocessing_context=worker_context(1)
    )
    os.truncate(store, int(store.stat().st_size * 0.8))
    with pytest.raises(StoreReadError) as caught:
        next(iter(loader))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(f"{store}: the dataset store was truncated")


# ---------------------------------------------------------------- damaged metrics log


@pytest.fixture
def two_step_run(store, tmp_path):
    cfg = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", cfg, steps=2, val_every=2)
    assert _train("--config", str(cfg), "--quiet").exit_code == 0
    return cfg, tmp_path / "run"


def test_resume_drops_a_torn_last_metrics_line(two_step_run):
    cfg, run = two_step_run
    metrics = run / "metrics.jsonl"
    with open(metrics, "ab") as f:  # a line cut by a kill, with bytes that are not UTF-8
        f.write(b'{"event": "train", "step": 3, "loss": \xff\xfe')
    result = _train("--config", str(cfg), "--resume", "--quiet", "--set", "train.steps=3")
    assert result.exit_code == 0, result.output
    events = read_metrics(metrics)
    resume = next(e for e in events if e["event"] == "resume")
    assert resume["dropped_lines"] == 1
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3]


@pytest.mark.parametrize(
    "garbage, what",
    [(b"\xff\xfe\x00garbage", "is not UTF-8 text"), (b"{not json", "is not JSON")],
)
def test_resume_refuses_a_damaged_metrics_line(two_step_run, garbage, what):
    cfg, run = two_step_run
    metrics = run / "metrics.jsonl"
    lines = metrics.read_bytes().split(b"\n")
    metrics.write_bytes(b"\n".join([lines[0], garbage, *lines[1:]]))
    before = checksums(run, cfg)
    result = _train("--config", str(cfg), "--resume", "--set", "train.steps=3")
    assert_one_line_error(result, str(metrics), f"line 2 {what}", "damaged")
    assert checksums(run, cfg) == before


# ---------------------------------------------------------------- config list entries


@pytest.mark.parametrize(
    "value, entry", [("100000", "model.hidden[0]"), ("[64,100000]", "model.hidden[1]")]
)
def test_hidden_out_of_range_names_the_key_and_the_rule(store, tmp_path, value, entry):
    cfg = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", cfg)
    before = checksums(cfg, store)
    result = _train("--config", str(cfg), "--set", f"model.hidden={value}")
    assert_one_line_error(result, f"{entry}: expected an integer in [1, 4096], got 100000")
    assert checksums(cfg, store) == before
    assert not (tmp_path / "run").exists()
