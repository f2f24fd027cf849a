"""Latency of one nowcast: read → preprocess → model → write, per model, against extrapolation.

For every registered network at the radar size of ``configs/models/<name>.yaml`` (and the
ConvLSTM also in channels-last memory format, and at the demo size of configs/demo.yaml) the
whole :func:`nowcast.predict.predict` path runs on the newest ``n_in`` real radar frames
(the Melbourne folder of ../shared/data/radar, 512×512; synthetic frames where that is
absent), and its steps are timed. In the same run, on the same frames, the reference:
the same read and preprocess, then pysteps Lucas–Kanade motion + semi-Lagrangian
extrapolation (:class:`nowcast.extrapolation.semilagrangian.Extrapolation`, as evaluate runs it)
instead of the network, then the same write. The total is read + preprocess + model +
write; loading the checkpoint (once per process) is shown apart. Target: a ConvLSTM nowcast is no slower than
the extrapolation nowcast (ratio ≤ 1). Medians over repeats; untrained weights (the cost
does not depend on them).

End to end, as a user runs it: ``python -m nowcast predict`` on the same frames with the
demo-size ConvLSTM, timed from process start to the nowcast file written (its modification
time) and to the process's exit, against a bare ``python -c "import torch, pysteps"``
timed in the same rounds: the ratio says how much of a nowcast is more than the libraries'
import.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nowcast.checkpoint import save_checkpoint
from nowcast.config import load_config
from nowcast.config.model import ModelConfig
from nowcast.config.synth import SynthConfig
from nowcast.extrapolation.semilagrangian import Extrapolation
from nowcast.io import read_frame
from nowcast.models import REGISTRY, build
from nowcast.predict import predict
from nowcast.predict.pipeline import nowcast_fields, prepare, read_inputs
from nowcast.predict.trained import TrainedModel
from nowcast.predict.writer import write_nowcast
from nowcast.preprocess.transform import TransformSettings, output_coordinates
from nowcast.progress import set_quiet
from nowcast.synth import grid_coordinates, write_frame
from nowcast.timings import Timings
from nowcast.units import uint8_to_gray

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "radar" / "bom-melbourne_20180616_6min"
N_IN, N_OUT, INTERVAL = 5, 15, 6


def _inputs(tmp: Path) -> list[Path]:
    """The newest N_IN frames of the Melbourne folder, or synthetic frames (480×480)."""
    if REAL.is_dir():
        return sorted(REAL.glob("*.nc"))[-N_IN:]
    cfg = SynthConfig()
    x, y = grid_coordinates(cfg.size, cfg.pixel_km)
    rng = np.random.default_rng(0)
    files = []
    for k in range(N_IN):
        t = dt.datetime(2024, 6, 1, 12) + dt.timedelta(minutes=INTERVAL * k)
        dbz = rng.uniform(-32, 50, (cfg.size, cfg.size)).astype(np.float32)
        files.append(tmp / f"f{k}.nc")
        write_frame(files[-1], t, dbz, x, y, cfg)
    return files


def _variants() -> dict[str, tuple[str, list[str]]]:
    """Networks timed: label → (YAML with its ``model`` section, --set overrides)."""
    models = REPO / "configs" / "models"
    out: dict[str, tuple[str, list[str]]] = {}
    for name in REGISTRY:
        out[name] = (str(models / f"{name}.yaml"), [f"model.name={name}"])
        if name == "convlstm":
            out["convlstm, channels_last"] = (out[name][0], ["model.channels_last=true"])
            out["convlstm, demo size"] = (str(REPO / "configs" / "demo.yaml"), [])
    return out


def _checkpoint(path: Path, model_yaml: str, sets: list[str], files: list[Path], cfg) -> Path:
    """An untrained network (``model`` section of ``model_yaml`` + ``sets``) in a checkpoint
    made for the frames' grid."""
    frame = read_frame(files[0], cfg.input, cfg.zr, INTERVAL)
    settings = TransformSettings.from_config(cfg.preprocess)
    x, y = output_coordinates(frame.x, frame.y, settings)
    mcfg = load_config(model_yaml, sets).model if Path(model_yaml).is_file() else ModelConfig()
    torch.manual_seed(0)
    dump = cfg.model_dump(mode="json")
    dump["model"] = mcfg.model_dump(mode="json")
    size = settings.size
    month = str(np.datetime64(frame.time, "M"))
    return save_checkpoint(
        path,
        {
            "model_name": mcfg.name,
            "config": dump,
            "state_dict": build(mcfg.name, mcfg).state_dict(),
            "preprocess": {**cfg.preprocess.model_dump(mode="json"), "zr": cfg.zr.model_dump()},
            "masks": {
                "months": [month],
                "noise_mask": np.zeros((1, size, size), bool),
                "coverage": np.ones((size, size), bool),
            },
            "grid": {"x": x, "y": y, "grid_mapping": frame.grid_mapping},
            "step": 0,
        },
    )


def _extrapolation(ckpt: Path, files: list[Path], out: Path, cfg, lk: Extrapolation) -> Timings:
    """The same path with pysteps extrapolation in place of the network."""
    t = Timings()
    with t.step("load_checkpoint"):
        trained = TrainedModel.load(ckpt)
    with t.step("read"):
        frames = read_inputs(files, cfg.input, trained, cfg.predict.time_tolerance_minutes)
    with t.step("preprocess"):
        prep = prepare(frames, trained, cfg.predict.noise_mask)
    with t.step("model"):
        gray = lk.forecast(uint8_to_gray(prep.frames), trained.n_out)
    with t.step("write"):
        dbz, rate = nowcast_fields(gray, prep.mask, trained)
        leads = trained.interval_minutes * np.arange(1, trained.n_out + 1)
        reference = np.datetime64(frames[-1].time, "s")
        write_nowcast(out, dbz, rate, reference, leads, prep.x, prep.y, prep.grid_mapping, {})
    return t


def _median(runs: list[Timings]) -> dict[str, float]:
    parts = ("read", "preprocess", "model", "write")
    med = {p: statistics.median(r[p] for r in runs) for p in parts}
    med["total"] = statistics.median(sum(r[p] for p in parts) for r in runs)
    med["load"] = statistics.median(r["load_checkpoint"] for r in runs)
    return med


def _process(args: list[str]) -> float:
    """Wall seconds of ``python ARGS`` from start to exit (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args}: exit {done.returncode}: {done.stderr.strip()}")
    return seconds


def _end_to_end(ckpt: Path, files: list[Path], out: Path) -> tuple[float, float]:
    """(seconds to the nowcast file written, seconds to exit) of one `nowcast predict`
    process."""
    out.unlink(missing_ok=True)
    start = time.time()
    total = _process(
        [
            "-m",
            "nowcast",
            "predict",
            "--checkpoint",
            str(ckpt),
            "--out",
            str(out),
            "--set",
            f"preprocess.interval_minutes={INTERVAL}",
            "--quiet",
            "--input",
            *map(str, files),
        ]
    )
    return os.stat(out).st_mtime - start, total


def _end_to_end_line(ckpt: Path, files: list[Path], tmp: Path, repeats: int) -> str:
    """The end-to-end `nowcast predict` time against the bare imports (interleaved rounds)."""
    written, exited, imports = [], [], []
    for _round in range(repeats + 1):  # the first round warms the file cache
        w, e = _end_to_end(ckpt, files, tmp / "e2e.nc")
        written.append(w)
        exited.append(e)
        imports.append(_process(["-c", "import torch, pysteps"]))
    w, e, i = (statistics.median(v[1:]) for v in (written, exited, imports))
    return (
        f"predict end to end (`python -m nowcast predict`, demo-size ConvLSTM): file written "
        f"{w:.2f} s, process done {e:.2f} s after start; bare `import torch, pysteps` process "
        f"{i:.2f} s; ratio {w / i:.2f}× (written) / {e / i:.2f}× (done)"
    )


def run(quick: bool = False) -> None:
    set_quiet(True)
    repeats = 2 if quick else 5
    cfg = load_config(None, [f"preprocess.interval_minutes={INTERVAL}"])
    runs: dict[str, list[Timings]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = _inputs(tmp)
        source = REAL.name if REAL.is_dir() else "synthetic 480×480"
        print(
            f"inputs: newest {N_IN} frames of {source}; {N_OUT} leads; network on "
            f"predict.threads = {cfg.predict.threads} of {torch.get_num_threads()} torch threads; "
            f"median of {repeats} rounds after a warm-up round, "
            "methods interleaved within each round (same machine load)"
        )
        ckpts = {
            label: _checkpoint(tmp / f"m{i}.pt", yaml, sets, files, cfg)
            for i, (label, (yaml, sets)) in enumerate(_variants().items())
        }
        lk = Extrapolation(n_frames=3)
        lk_label = "pysteps LK extrapolation"
        for _round in range(repeats + 1):
            for label, ckpt in ckpts.items():
                t = Timings()
                predict(cfg, ckpt, files, tmp / "nowcast.nc", timings=t)
                runs.setdefault(label, []).append(t)
            first = next(iter(ckpts.values()))
            runs.setdefault(lk_label, []).append(
                _extrapolation(first, files, tmp / "lk.nc", cfg, lk)
            )
        end_to_end = _end_to_end_line(ckpts["convlstm, demo size"], files, tmp, repeats)
    rows = {label: _median(r[1:]) for label, r in runs.items()}

    ref = rows[lk_label]
    print(
        f"{'method':<26} {'load ms':>8} {'read ms':>8} {'prep ms':>8} {'model ms':>9} {'write ms':>9} "
        f"{'total ms':>9} {'total/LK':>9} {'model/LK':>9}"
    )
    for name, r in rows.items():
        print(
            f"{name:<26} {r['load'] * 1e3:>8.1f} {r['read'] * 1e3:>8.1f} {r['preprocess'] * 1e3:>8.1f} "
            f"{r['model'] * 1e3:>9.1f} {r['write'] * 1e3:>9.1f} {r['total'] * 1e3:>9.1f} "
            f"{r['total'] / ref['total']:>9.2f} {r['model'] / ref['model']:>9.2f}"
        )
    for label in (k for k in rows if k.startswith("convlstm")):
        ratio = rows[label]["total"] / ref["total"]
        verdict = "meets" if ratio <= 1.0 else "MISSES"
        print(
            f"predict: {label} nowcast {rows[label]['total'] * 1e3:.0f} ms vs extrapolation "
            f"{ref['total'] * 1e3:.0f} ms = {ratio:.2f}× ({verdict} the ≤ 1× target)"
        )
    print(end_to_end)
