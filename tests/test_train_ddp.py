"""Multi-process DDP on the CPU: real torchrun processes talking over gloo give the weights
of one process trained on the same global batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_support import REPO, run_cli, subprocess_env, tiny_config, weights

from nowcast.data.toy import write_blob_store
from nowcast.models import REGISTRY
from nowcast.train.rundir import read_metrics

# PredRNN feeds predictions back: each process must take its rows of the global batch's
# scheduled-sampling mask
MODEL = {"name": "predrnn", "sampling_iters": 20} if "predrnn" in REGISTRY else {"name": "convlstm"}
TORCHRUN = Path(sys.executable).parent / "torchrun"


def _assert_same_training(one: Path, two: Path) -> None:
    wa, wb = weights(one / "checkpoints" / "last.pt"), weights(two / "checkpoints" / "last.pt")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-6, msg=k)
    ea, eb = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    la = [e["loss"] for e in ea if e["event"] == "train"]
    lb = [e["loss"] for e in eb if e["event"] == "train"]
    assert lb == pytest.approx(la, rel=1e-5)
    # validation is shared out over the processes: the same scores of the whole split
    keys = ("mse", "bmse", "csi@0.5", "csi@2", "csi_mean")
    va, vb = ([[e[k] for k in keys] for e in es if e["event"] == "val"] for es in (ea, eb))
    assert va and len(vb) == len(va)
    for a, b in zip(va, vb):
        assert b == pytest.approx(a, rel=1e-4, nan_ok=True)


def test_two_torchrun_processes_match_one_process(tmp_path):
    store = write_blob_store(
        tmp_path / "store.nc", splits=("train", "train", "val"), h=16, w=16, seed=4
    )
    keys = dict(steps=5, batch_size=4, val_every=5, model=MODEL)
    tiny_config(store, tmp_path / "one", tmp_path / "one.yaml", **keys)
    tiny_config(store, tmp_path / "two", tmp_path / "two.yaml", **keys)
    one = run_cli("train", "--config", str(tmp_path / "one.yaml"), "--quiet")
    assert one.returncode == 0, one.stderr
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "nowcast", "train"]
    two = subprocess.run(
        [*cmd, "--config", str(tmp_path / "two.yaml"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        cwd=REPO,
    )
    assert two.returncode == 0, two.stderr
    events = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert events[0]["event"] == "start" and events[0]["world_size"] == 2
    # only rank 0 writes: one line per step, one summary line
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3, 4, 5]
    assert two.stderr.count("train: 5 steps, done") == 1
    _assert_same_training(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
def test_resume_a_one_process_run_with_nproc_2(tmp_path):
    store = write_blob_store(
        tmp_path / "store.nc", splits=("train", "train", "val"), h=16, w=16, seed=4
    )
    keys = dict(batch_size=4, val_every=3, model=MODEL)
    tiny_config(store, tmp_path / "whole", tmp_path / "whole.yaml", steps=6, **keys)
    tiny_config(store, tmp_path / "split", tmp_path / "split.yaml", steps=3, **keys)
    assert run_cli("train", "--config", str(tmp_path / "whole.yaml"), "--quiet").returncode == 0
    assert run_cli("train", "--config", str(tmp_path / "split.yaml"), "--quiet").returncode == 0
    resumed = run_cli(
        "train",
        "--config",
        str(tmp_path / "split.yaml"),
        "--set",
        "train.steps=6",
        "--resume",
        "--nproc",
        "2",
        "--quiet",
    )
    assert resumed.returncode == 0, resumed.stderr
    resume = [
        e for e in read_metrics(tmp_path / "split" / "metrics.jsonl") if e["event"] == "resume"
    ]
    assert resume[0]["step"] == 3 and resume[0]["world_size"] == 2
    _assert_same_training(tmp_path / "whole", tmp_path / "split")


# Run under torchrun: train with the cyclic garbage collector off (no collection happens by
# chance) and report, at destroy_process_group, how many DDP wrappers are still alive; a
# live one keeps the gloo process group alive past it, to be destructed at some later
# collection or at interpreter shutdown with gloo's threads running (SIGABRT).
_PROBE = """
import gc, os, sys
gc.disable()
import nowcast.train.trainer as trainer
from torch.nn.parallel import DistributedDataParallel
from nowcast.config import load_config
from nowcast.progress import set_quiet

destroy = trainer.destroy_process_group

def probe():
    alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    print(f"rank {os.environ['RANK']} ddp alive {alive}", flush=True)
    destroy()

trainer.destroy_process_group = probe
set_quiet(True)
trainer.train(load_config(sys.argv[1]))
"""


def test_no_process_group_outlives_its_destruction(tmp_path):
    store = write_blob_store(
        tmp_path / "store.nc", splits=("train", "train", "val"), h=16, w=16, seed=4
    )
    tiny_config(store, tmp_path / "run", tmp_path / "c.yaml", steps=2, val_every=2)
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE)
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(probe)]
    result = subprocess.run(
        [*cmd, str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**subprocess_env(), "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank "))
    assert lines == ["rank 0 ddp alive 0", "rank 1 ddp alive 0"], result.stdout
