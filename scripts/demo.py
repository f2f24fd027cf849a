#!/usr/bin/env python
"""`make demo`: the whole pipeline on the embedded synthetic data, with the real CLI.

synthetic archive → preprocess → train (configs/demo.yaml) → evaluate against persistence
and extrapolation → predict on freshly generated "new" files. Each step is the `nowcast`
command a user would type; the commands are printed as they run. Output goes to demo_out/.
A stage that is not built yet is reported as such and the demo stops there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "demo.yaml"
console = Console()


def nowcast(*args: str) -> bool:
    """Run one `nowcast` command; True on success, False if its stage is not built yet."""
    cmd = [sys.executable, "-m", "nowcast", *args]
    console.print(f"[bold cyan]$ nowcast {escape(' '.join(args))}[/bold cyan]", highlight=False)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode == 2 and "is not built yet" in proc.stderr:
        console.print("[yellow]  → this stage is not built yet; the demo stops here.[/yellow]")
        return False
    if proc.returncode != 0:
        raise SystemExit(f"demo: `nowcast {args[0]}` failed with exit code {proc.returncode}")
    console.print(f"  [dim]done in {time.perf_counter() - t0:.1f} s[/dim]")
    return True


def archive_table(folder: Path) -> Table:
    manifest = json.loads((folder / "manifest.json").read_text())
    cfg = manifest["config"]
    table = Table(title=f"synthetic archive {folder}")
    for col in ("days", "start", "frames written", "missing", "clutter pixels", "grid"):
        table.add_column(col)
    table.add_row(
        str(cfg["days"]),
        cfg["start"],
        str(manifest["frames_written"]),
        str(len(manifest["missing"])),
        str(manifest["clutter_pixels"]),
        f"{cfg['size']}×{cfg['size']} @ {cfg['pixel_km']} km",
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (emptied first)"
    )
    parser.add_argument(
        "--amp",
        choices=("auto", "bf16", "off"),
        default=None,
        help="precision of train, evaluate and predict (train.amp, evaluate.amp, predict.amp; "
        "default: the config's, auto); run twice with bf16 and off to compare the skill",
    )
    args = parser.parse_args()
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    # the config's demo_out/ paths, moved under --out
    cfg = ["--config", str(CONFIG)]
    for key, path in (
        ("synth.out", out / "synth"),
        ("input.paths", f"[{out / 'synth'}]"),
        ("data.store", out / "store.nc"),
        ("train.out_dir", out / "run"),
    ):
        cfg += ["--set", f"{key}={path}"]
    if args.amp is not None:
        for key in ("train.amp", "evaluate.amp", "predict.amp"):
            cfg += ["--set", f"{key}={args.amp}"]
    ran = nowcast("synth", *cfg)
    console.print(archive_table(out / "synth"))
    ran = ran and nowcast("preprocess", *cfg, "--input", str(out / "synth"))
    ran = ran and nowcast("train", *cfg)
    ran = ran and nowcast(
        "evaluate",
        *cfg,
        "--checkpoint",
        str(out / "run" / "checkpoints" / "best.pt"),
        "--baselines",
        "persistence,extrapolation",
        "--out",
        str(out / "eval"),
    )
    if ran:
        new_day = json.loads((out / "synth" / "manifest.json").read_text())["config"]["start"]
        new_start = dt.date.fromisoformat(new_day) + dt.timedelta(days=30)
        ran = nowcast(
            "synth",
            *cfg,
            "--out",
            str(out / "new"),
            "--start",
            new_start.isoformat(),
            "--days",
            "1",
            "--seed",
            "99",
            "--quiet",
        )
        ran = ran and nowcast(
            "predict",
            *cfg,
            "--checkpoint",
            str(out / "run" / "checkpoints" / "best.pt"),
            "--input",
            str(out / "new"),
            "--out",
            str(out / "nowcast.nc"),
            "--png",
            str(out / "nowcast_png"),
        )
    console.print(
        f"[bold]demo finished in {time.perf_counter() - t0:.0f} s; outputs in "
        f"{escape(str(out))}/[/bold] (the score table is the one `nowcast evaluate` printed)"
    )
    report = [out / "eval" / name for name in ("report.md", "report.json")]
    for path in report + sorted(out.glob("eval/*.png")) + [out / "nowcast.nc"]:
        if path.exists():
            console.print(f"  {path}", highlight=False, markup=False, soft_wrap=True)


if __name__ == "__main__":
    main()
