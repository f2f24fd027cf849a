#!/usr/bin/env python
"""Skill of a checkpoint with bf16 inference against float32: `nowcast evaluate` run twice.

    python scripts/amp_skill.py [--checkpoint models/convlstm_radar5min.pt]
        [--event ../shared/data/radar/rmi_20210704_5min_odim] [--config configs/data/rmi.yaml]

Preprocesses the event's files with the checkpoint's transform into a temporary store (the
whole event in the test split, as ``scripts/train_shipped.py`` does), runs
`nowcast evaluate` on it with ``evaluate.amp=off`` and ``evaluate.amp=bf16`` (no baselines),
and prints, per threshold, the CSI mean over leads in both precisions and their difference,
and the largest difference at any lead (target: within ±0.005).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from train_shipped import common_sets  # noqa: E402

from nowcast.checkpoint import checkpoint_config, load_checkpoint  # noqa: E402


def nowcast(*args: str) -> None:
    cmd = [sys.executable, "-m", "nowcast", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"amp_skill: `nowcast {args[0]}` failed:\n{proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "models/convlstm_radar5min.pt")
    parser.add_argument(
        "--event", type=Path, default=REPO.parent / "shared/data/radar/rmi_20210704_5min_odim"
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs/data/rmi.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amp_skill_") as tmp:
        work = Path(tmp)
        store = work / "store.nc"
        # the checkpoint's own transform, Z–R and window; the whole event in the test split
        sets = [*common_sets(checkpoint_config(args.checkpoint, load_checkpoint(args.checkpoint)))]
        sets += ["preprocess.drop_gappy_blocks=false", "preprocess.split_ratio=[0, 0, 1]"]
        sets += [f"data.store={store}", f"input.paths=[{args.event}]"]
        base = ["--config", str(args.config)]
        for item in sets:
            base += ["--set", item]
        nowcast("preprocess", *base, "--input", str(args.event), "--quiet")
        ckpt = args.checkpoint  # evaluate compares only the keys that give frames their meaning
        csi, seconds = {}, {}
        for amp in ("off", "bf16"):
            t0 = time.perf_counter()
            nowcast(
                "evaluate",
                *base,
                "--set",
                f"evaluate.amp={amp}",
                "--checkpoint",
                str(ckpt),
                "--baselines",
                "",
                "--out",
                str(work / f"eval_{amp}"),
                "--quiet",
            )
            seconds[amp] = time.perf_counter() - t0
            report = json.loads((work / f"eval_{amp}" / "report.json").read_text())
            entry = next(iter(report.values()))
            assert entry["amp"] == amp, entry["amp"]
            csi[amp] = np.array(entry["csi"], dtype=float)  # [lead][threshold], null → nan
            thresholds = entry["thresholds_mmh"]
            windows = entry["n_sequences"]
    f32, b16 = csi["off"], csi["bf16"]
    print(f"{args.checkpoint.name} on {args.event.name}: {windows} windows")
    print(f"evaluate wall time: float32 {seconds['off']:.1f} s, bf16 {seconds['bf16']:.1f} s")
    print(f"{'threshold':>10}{'CSI f32':>10}{'CSI bf16':>10}{'diff':>10}{'max |diff| lead':>17}")
    for k, t in enumerate(thresholds):
        with warnings.catch_warnings():  # a threshold never reached: all-nan → nan
            warnings.simplefilter("ignore", RuntimeWarning)
            a, b = np.nanmean(f32[:, k]), np.nanmean(b16[:, k])
        worst = np.nanmax(np.abs(b16[:, k] - f32[:, k])) if np.isfinite(f32[:, k]).any() else np.nan
        print(f"{t:>8g} mm/h{a:>10.4f}{b:>10.4f}{b - a:>+10.4f}{worst:>17.4f}")


if __name__ == "__main__":
    main()
