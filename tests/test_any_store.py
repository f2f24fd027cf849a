"""Any checkpoint on any store whose frames mean the same: evaluate compares only the
preprocess keys that give a stored frame its meaning (gray bounds, Z–R, crop, disk filter,
output size, frame interval); other products, grids, blocks, splits, seeds and clutter rules
are scored and named in the report, and a different frame meaning is still refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_support import assert_one_line_error, checksums
from typer.testing import CliRunner

from nowcast.cli import app

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "convlstm_radar5min.pt"
FMI_CONFIG = REPO / "configs" / "data" / "fmi.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def fmi_store(radar_dir, tmp_path_factory):
    """A store preprocessed from 20 frames (15:00–16:35 UTC) of the real FMI event with the
    documented config, 20-frame blocks all in the test split: one test window of 5 + 15."""
    tmp = tmp_path_factory.mktemp("fmi")
    folder = tmp / "in"
    folder.mkdir()
    for minute in range(0, 100, 5):
        hhmm = f"{15 + minute // 60:02d}{minute % 60:02d}"
        name = f"fmi_20160928{hhmm}.nc"
        (folder / name).symlink_to(radar_dir / "fmi_20160928_5min" / name)
    store = tmp / "fmi_store.nc"
    result = runner.invoke(
        app,
        ["preprocess", "-q", "--config", str(FMI_CONFIG), "--input", str(folder)]
        + ["--set", f"data.store={store}", "--set", "preprocess.block_frames=20"]
        + ["--set", "preprocess.split_ratio=[0,0,1]"],
    )
    assert result.exit_code == 0, result.output
    return store


def _evaluate(store: Path, checkpoint: Path, out: Path):
    return runner.invoke(
        app,
        ["evaluate", "-q", "--config", str(FMI_CONFIG), "--checkpoint", str(checkpoint)]
        + ["--set", f"data.store={store}", "--out", str(out), "--baselines", "persistence"],
    )


def test_shipped_model_scores_a_store_preprocessed_with_the_documented_config(fmi_store, tmp_path):
    """The shipped model was trained on a merged store (no grid, 288-frame blocks, other
    splits); the FMI store differs in all of that but its frames mean the same."""
    out = tmp_path / "report"
    result = _evaluate(fmi_store, SHIPPED, out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    model = report["convlstm"]
    assert model["kind"] == "model" and model["n_sequences"] == 1
    assert model["csi"][0][0] is not None and 0 < model["csi"][0][0] <= 1
    differs = model["preprocess_differs"]
    assert {"block_frames", "grid", "split_ratio", "merged_from", "input"} <= set(differs)
    assert not {"z_min", "z_max", "zr", "crop", "disk_radius", "size", "interval_minutes"} & set(
        differs
    )
    assert "preprocess_differs" not in report["persistence"]  # a baseline has no training store
    md = (out / "report.md").read_text()
    assert "`convlstm` was trained on a store preprocessed otherwise in" in md
    assert "`block_frames`" in md and "`grid`" in md


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("crop", 300, "preprocess.crop = 300 in the checkpoint, 330 in the store"),
        ("z_max", 55.0, "preprocess.z_max = 55.0 in the checkpoint, 60.0 in the store"),
        ("zr", {"a": 300.0, "b": 1.4}, "preprocess.zr.a = 300.0 in the checkpoint, 200.0"),
        ("interval_minutes", 10, "preprocess.interval_minutes = 10 in the checkpoint, 5 in"),
        ("disk_radius", None, "preprocess.disk_radius = '<absent>' in the checkpoint, 10.0"),
    ],
)
def test_a_different_frame_meaning_is_still_refused_naming_the_key(
    fmi_store, tmp_path, key, value, shown
):
    payload = torch.load(SHIPPED, map_location="cpu", weights_only=False)
    pre = dict(payload["preprocess"])
    if value is None:
        del pre[key]
    else:
        pre[key] = value
    payload["preprocess"] = pre
    checkpoint = tmp_path / "other.pt"
    torch.save(payload, checkpoint)
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("an earlier report")
    before = checksums(fmi_store, checkpoint, out)
    result = _evaluate(fmi_store, checkpoint, out)
    assert_one_line_error(result, str(checkpoint), "preprocessing differs from the store", shown)
    assert checksums(fmi_store, checkpoint, out) == before
