"""Exact resume: a real `nowcast train` process killed with SIGKILL at an arbitrary step,
then `--resume`, ends with the same weights as a run that was never interrupted."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import pytest
import torch
from train_support import REPO, nowcast_cmd, run_cli, subprocess_env, tiny_config, weights

from nowcast.data.toy import write_blob_store
from nowcast.models import REGISTRY
from nowcast.train.rundir import read_metrics

# PredRNN feeds its predictions back, so it draws a random scheduled-sampling mask mid-run
# (sampling_iters 30 of 40 steps): the resumed run must draw the same masks. The others
# run in `make test-slow`.
MODELS = [
    pytest.param(m, marks=() if m == "predrnn" else pytest.mark.slow)
    for m in ("predrnn", "convlstm", "mim")
    if m in REGISTRY
]


def _last_step(metrics) -> int:
    step = 0
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event["event"] == "train":
                step = event["step"]
    return step


@pytest.mark.parametrize("model", MODELS)
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path, model):
    check_sigkill_resume(tmp_path, model, amp="off")


def check_sigkill_resume(tmp_path, model: str, amp: str) -> None:
    """Train ``model`` 40 steps in precision ``amp`` whole, and again killed (SIGKILL) at a
    random step and resumed: both end with the same weights, optimiser state and log."""
    store = write_blob_store(
        tmp_path / "store.nc", splits=("train", "train", "val"), h=16, w=16, seed=2
    )
    keys = dict(
        steps=40,
        val_every=8,
        checkpoint_every=4,
        log_every=1,
        deterministic=True,
        amp=amp,
        model={"name": model, "sampling_iters": 30},
    )
    tiny_config(store, tmp_path / "whole", tmp_path / "whole.yaml", **keys)
    tiny_config(store, tmp_path / "killed", tmp_path / "killed.yaml", **keys)

    whole = run_cli("train", "--config", str(tmp_path / "whole.yaml"), "--quiet")
    assert whole.returncode == 0, whole.stderr

    kill_after = random.Random().randint(5, 22)  # an arbitrary step, a new one each run
    proc = subprocess.Popen(
        nowcast_cmd("train", "--config", str(tmp_path / "killed.yaml"), "--quiet"),
        env=subprocess_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while _last_step(metrics) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, proc.stderr.read().decode()
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    killed_at = _last_step(metrics)
    assert 4 <= saved["step"] <= killed_at < 40, (saved["step"], killed_at)
    assert saved["step"] % 4 == 0  # checkpoint_every (val_every 8 is a multiple)

    resumed = run_cli("train", "--config", str(tmp_path / "killed.yaml"), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr

    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 40
    assert a["amp"] == b["amp"] == amp
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[s], pb[s]) for s in pa)
    assert a["trainer"]["best_step"] == b["trainer"]["best_step"]
    wb = weights(tmp_path / "killed" / "checkpoints" / "best.pt")
    wa = weights(tmp_path / "whole" / "checkpoints" / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    # the log reads as one run: every step once, the same validation scores
    ea, eb = read_metrics(tmp_path / "whole" / "metrics.jsonl"), read_metrics(metrics)
    assert [e["step"] for e in eb if e["event"] == "train"] == list(range(1, 41))
    assert [e["event"] for e in eb].count("resume") == 1
    strip = lambda e: {k: v for k, v in e.items() if k != "time"}  # noqa: E731
    assert [strip(e) for e in ea if e["event"] == "val"] == [
        strip(e) for e in eb if e["event"] == "val"
    ]
    losses = lambda es: [e["loss"] for e in es if e["event"] == "train"]  # noqa: E731
    assert losses(ea) == losses(eb)
