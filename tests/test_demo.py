"""`make demo` end to end (slow): the demo model beats persistence where the issue asks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_beats_persistence(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("report.json", "report.md"):
        assert (out / "eval" / name).is_file()
    assert (out / "nowcast.nc").is_file()
    assert "CSI" in proc.stdout
    report = json.loads((out / "eval" / "report.json").read_text())
    model, persistence = report["convlstm"], report["persistence"]
    thresholds = model["thresholds_mmh"]
    for thr in (0.5, 2.0):
        j = thresholds.index(thr)
        for i, lead in enumerate(model["lead_minutes"]):
            if lead >= 12:
                ours, theirs = model["csi"][i][j], persistence["csi"][i][j]
                assert ours > theirs, (
                    f"CSI at {thr} mm/h, lead {lead} min: {ours:.3f} ≤ persistence {theirs:.3f}"
                )
