"""What the command line shows when a stage succeeds: the stage functions return results and
the CLI prints them — a rendered score table and file paths for evaluate, one summary line
for train — made for a terminal, not Markdown."""

from __future__ import annotations

import re

import pytest
import torch
from train_support import tiny_config
from typer.testing import CliRunner

from nowcast.checkpoint import save_checkpoint
from nowcast.cli import app
from nowcast.config import load_config
from nowcast.data.toy import write_blob_store
from nowcast.evaluate.stage import PLOTS
from nowcast.models import build
from nowcast.store import read_meta
from nowcast.train.rundir import read_metrics
from nowcast.train.state import store_payload

runner = CliRunner()
TINY = {"name": "convlstm", "layers": 1, "hidden": 4, "kernel": 3, "patch": 4}
SETS = ["--set", "data.n_in=3", "--set", "data.n_out=4"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "store.nc"
    return write_blob_store(path, splits=("train", "train", "val", "test"), h=16, w=24, seed=5)


@pytest.fixture(scope="module")
def checkpoint(store, tmp_path_factory):
    """An untrained tiny ConvLSTM saved with the store's preprocessing, masks and grid."""
    torch.manual_seed(0)
    over = {"data.store": str(store), **{f"model.{k}": v for k, v in TINY.items()}}
    cfg = load_config(None, overrides=over)
    path = tmp_path_factory.mktemp("run") / "best.pt"
    payload = {"model_name": "convlstm", "config": cfg.model_dump(mode="json"), "step": 0}
    model = build("convlstm", cfg.model)
    meta = read_meta(store)
    return save_checkpoint(
        path, {**payload, "state_dict": model.state_dict(), **store_payload(meta)}
    )


def _evaluate(store, checkpoint, out, *extra):
    args = ["evaluate", "--set", f"data.store={store}", *SETS, "--checkpoint", str(checkpoint)]
    args += ["--baselines", "persistence", "--out", str(out), "--split", "test", *extra]
    return runner.invoke(app, args)


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_prints_a_rendered_table_and_the_report_paths(store, checkpoint, tmp_path):
    out = tmp_path / "eval"
    result = _evaluate(store, checkpoint, out, "--set", "evaluate.thresholds_mmh=[0.5, 5]")
    assert result.exit_code == 0, result.output
    shown = result.stdout
    assert "![" not in shown and "](" not in shown and "| ---" not in shown  # no Markdown
    header = next(line for line in shown.splitlines() if "≥0.5" in line)
    assert re.search(r"method\s+≥0\.5\s+≥5\s+MSE\s+B-MSE", header), header
    rows = shown.splitlines()
    cells = [line.split() for line in rows]
    for method in ("convlstm", "persistence"):  # a CSI row of 2 thresholds + MSE, B-MSE
        row = next(c for c in cells if c[:2] == [method, "CSI"])
        assert len(row) == 6 and all(re.fullmatch(r"\d+\.\d+|n/a", v) for v in row[2:]), row
    assert any(set(line.strip()) == {"─"} for line in rows), shown  # the rule under the header
    # every file of the report, by its full path, one a line
    listed = [line.strip() for line in rows if line.startswith("  ")]
    for name in (*PLOTS, "report.md", "report.json", "config.yaml"):
        assert str(out / name) in listed, (name, shown)
        assert (out / name).is_file()
    # --quiet: the table still, the paths not
    quiet = _evaluate(store, checkpoint, tmp_path / "q", "--quiet")
    assert quiet.exit_code == 0, quiet.output
    assert "persistence" in quiet.stdout and str(tmp_path / "q") not in quiet.stdout
    assert quiet.stderr == ""


@pytest.mark.usefixtures("one_torch_thread")
def test_train_prints_its_summary_from_the_cli(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", tmp_path / "c.yaml", steps=4, val_every=2)
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    events = read_metrics(cfg.train.out_dir / "metrics.jsonl")
    best = max((e for e in events if e["event"] == "val"), key=lambda e: e["csi_mean"])
    persistence = next(e for e in events if e["event"] == "baseline")["csi_mean"]
    assert lines[0] == (
        f"train: 4 steps, done; best val csi_mean {best['csi_mean']:.4g} at step "
        f"{best['step']} (persistence {persistence:.4g}); checkpoints in "
        f"{cfg.train.out_dir / 'checkpoints'} (best.pt, last.pt)"
    )
