"""Preprocessing throughput against the bare cost of reading the same files, and peak memory.

Archive: synthetic CF-netCDF reflectivity frames of 512×512 (``nowcast synth``, size 512),
one file per 6-minute frame (full run: a month, 30 days; ``--quick``: one day).

1. Throughput, in this process and with 1 and 2 dask workers (LocalCluster, one thread
   each), on the same files, chunks and (warm) cluster:
   * read-only: every file read into dBZ and nothing else (``tasks.read_chunk``);
   * preprocess: the whole ``run_preprocess`` (read, transform, clutter statistics, spool,
     K-means masks, store writing), cluster start-up excluded;
   ratio = preprocess frames/s ÷ read-only frames/s; target ≥ 0.80 with 1 and 2 workers.
   Preprocess reads only the central crop and the disk filter's margin of each file
   (``read_frames(window=…)``); read-only reads and converts whole grids.
   The same is then measured on each real radar event in ../shared/data/radar, if present,
   and on the OPERA composite (2200×1900) with ``preprocess.crops: tiles`` (30 tiles of
   330, each transformed and masked) against its central crop (:func:`run_tiled`).
2. Memory: ``nowcast preprocess`` of one day and of the whole archive (a month of 512×512
   frames) in a fresh process; peak RSS of its process tree. Target < 2 GB, flat with
   the archive's length.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from nowcast.config import load_config
from nowcast.config.synth import SynthConfig
from nowcast.io.paths import expand_inputs
from nowcast.preprocess import run_preprocess
from nowcast.preprocess.parallel import Runner
from nowcast.preprocess.tasks import TaskSpec, read_chunk
from nowcast.preprocess.transform import TransformSettings
from nowcast.progress import set_quiet
from nowcast.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
RADAR = REPO.parent / "shared" / "data" / "radar"
REAL = {
    "bom": "bom-melbourne_20180616_6min",
    "fmi": "fmi_20160928_5min",
    "mch": "mch_20150515_5min",
    "rmi": "rmi_20210704_5min_odim",
}
TARGET_RATIO = 0.80
TARGET_RSS_GB = 2.0
SIZE = 512


def run(quick: bool = False) -> None:
    set_quiet(True)
    days = 1 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        archive = synthesize(
            SynthConfig(out=tmp / "synth", start=dt.date(2024, 6, 1), days=days, size=SIZE, seed=3)
        )
        files = sorted(archive.files)
        print(
            f"archive: {len(files)} frames of {SIZE}×{SIZE} ({days} day(s)), made in {time.perf_counter() - t0:.0f} s"
        )
        _memory(archive.folder, tmp, days)
        subset = files[: 240 if quick else 480]  # throughput on 1 (quick) or 2 days
        _throughput(subset, tmp, quick)


# --------------------------------------------------------------------------- throughput


def _cfg(files: list[Path], store: Path, workers: int):
    return load_config(
        None,
        [f"data.store={store}", f"preprocess.workers={workers}"],
        {"input.paths": [str(f) for f in files]},
    )


def _read_only(runner: Runner, files: list[Path], cfg) -> tuple[float, int]:
    spec = TaskSpec(
        cfg.input,
        cfg.zr,
        TransformSettings.from_config(cfg.preprocess),
        cfg.preprocess.interval_minutes,
    )
    items = [(i, str(p)) for i, p in enumerate(files)]
    n = cfg.preprocess.chunk_files
    chunks = [items[k : k + n] for k in range(0, len(items), n)]
    t0 = time.perf_counter()
    frames = sum(r.frames_read for r in runner.map_unordered(read_chunk, chunks, spec))
    return time.perf_counter() - t0, frames


def _measure(
    files: list[Path], cfg_for, repeats: int, workers_list: tuple[int, ...] = (0, 1, 2)
) -> list[tuple]:
    """Best-of-``repeats`` read-only and preprocess throughput in process and with 1, 2 workers.

    cfg_for(workers) -> the run's Config. Rows: (workers, read fr/s, preprocess fr/s, ratio,
    in-task read ms/frame, in-task transform ms/frame, K-means s).
    """
    rows = []
    for workers in workers_list:
        cfg = cfg_for(workers)
        with Runner(workers) as runner:
            # warm the workers (imports, FFT plans) and the page cache
            _read_only(runner, files[:16], cfg)
            best_read, best_pre, summary = 0.0, 0.0, None
            for _ in range(repeats):
                seconds, frames = _read_only(runner, files, cfg)
                best_read = max(best_read, frames / seconds)
                summary = run_preprocess(cfg, show_summary=False, runner=runner)
                best_pre = max(best_pre, summary.frames_read / summary.seconds)
        per = summary.frames_read
        rows.append(
            (
                workers,
                best_read,
                best_pre,
                best_pre / best_read,
                1e3 * summary.task_read_seconds / per,
                1e3 * summary.task_transform_seconds / per,
                summary.clutter_seconds,
            )
        )
    return rows


def _table(rows: list[tuple]) -> None:
    """One line per worker count. ceiling: the ratio if the run cost nothing but each task's
    own read and transform — read-only ms a frame per worker ÷ (in-task read + transform ms)."""
    print(
        f"{'workers':>8} {'read-only fr/s':>15} {'preprocess fr/s':>16} {'ratio':>6} {'in-task read ms':>16} {'transform ms':>13} {'ceiling':>8} {'K-means s':>10}"
    )
    for w, r, p, ratio, rd, tr, km in rows:
        label = "in-proc" if w == 0 else str(w)
        ceiling = (max(w, 1) * 1e3 / r) / (rd + tr)
        print(
            f"{label:>8} {r:>15.1f} {p:>16.1f} {ratio:>6.2f} {rd:>16.2f} {tr:>13.2f} {ceiling:>8.2f} {km:>10.1f}"
        )


def _throughput(files: list[Path], tmp: Path, quick: bool) -> None:
    repeats = 2
    rows = _measure(files, lambda w: _cfg(files, tmp / f"store{w}.nc", w), repeats)
    print(
        f"\nthroughput on {len(files)} files (best of {repeats}); target: preprocess ≥ {TARGET_RATIO:.0%} of read-only with 1 and 2 workers"
    )
    _table(rows)
    for w, _, _, ratio, *_ in rows:
        if w:
            verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
            print(
                f"preprocess with {w} worker(s): {ratio:.0%} of read-only throughput ({verdict} the ≥ {TARGET_RATIO:.0%} target)"
            )
    _real_folders(tmp, repeats)
    _tiled(tmp, 1 if quick else repeats, (0,) if quick else (0, 1, 2))


def run_tiled(quick: bool = True) -> None:
    """Only the tiled OPERA measurement (see :func:`_tiled`)."""
    set_quiet(True)
    with tempfile.TemporaryDirectory() as tmp:
        _tiled(Path(tmp), 1 if quick else 2, (0,) if quick else (0, 1, 2))


def _tiled(tmp: Path, repeats: int, workers_list: tuple[int, ...]) -> None:
    """Read-only against preprocess of the OPERA event, central crop and tiles.

    Read-only reads and converts the whole 2200×1900 grid; the central crop reads the
    crop and its margin; tiles read the tiles' bounding window (nearly the whole grid)
    and run the transform and clutter sums once per tile (30 tiles of 330 with the
    default stride), so their cost per frame is about 30 central crops.
    """
    folder = RADAR / "opera_20180824_15min_odim"
    if not folder.is_dir():
        print(f"\ntiled OPERA: skipped ({folder} not found)")
        return
    cfg_file = REPO / "configs" / "data" / "opera.yaml"
    inputs = [str(folder)]
    for crops in ("center", "tiles"):

        def cfg_for(workers: int, crops=crops):
            return load_config(
                cfg_file,
                [
                    f"data.store={tmp / f'opera_{crops}{workers}.nc'}",
                    f"preprocess.workers={workers}",
                    f"preprocess.crops={crops}",
                    "preprocess.block_frames=24",
                ],
                {"input.paths": inputs},
            )

        files = expand_inputs(inputs, cfg_for(0).input.pattern)
        rows = _measure(files, cfg_for, repeats, workers_list)
        print(f"\nOPERA {folder.name}, crops: {crops}: {len(files)} files (best of {repeats})")
        _table(rows)


def _real_folders(tmp: Path, repeats: int) -> None:
    """The same measurement on each real radar event beside the project (if present).

    A 40–61-file event: the per-run costs (first-file read, K-means, store of whole days,
    cluster round trips) weigh far more than on an archive. Read-only converts the whole
    grid; preprocess reads and converts only the crop and the disk filter's margin.
    """
    if not RADAR.is_dir():
        print(f"\nreal radar events: skipped ({RADAR} not found)")
        return
    for name, folder in REAL.items():
        cfg_file = REPO / "configs" / "data" / f"{name}.yaml"
        inputs = [str(RADAR / folder)]

        def cfg_for(workers: int, name=name, cfg_file=cfg_file, inputs=inputs):
            return load_config(
                cfg_file,
                [
                    f"data.store={tmp / f'{name}{workers}.nc'}",
                    f"preprocess.workers={workers}",
                    "preprocess.block_frames=20",  # these short events fill no 40-frame block
                ],
                {"input.paths": inputs},
            )

        files = expand_inputs(inputs, cfg_for(0).input.pattern)
        rows = _measure(files, cfg_for, repeats)
        print(f"\nreal event {folder}: {len(files)} files (best of {repeats})")
        _table(rows)


# --------------------------------------------------------------------------- memory

_CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    import psutil
    from nowcast.config import load_config
    from nowcast.preprocess import run_preprocess
    from nowcast.progress import set_quiet

    def main():
        set_quiet(True)
        inputs, store, workers = json.loads(sys.argv[1])
        me = psutil.Process()
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                procs = [me] + me.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                time.sleep(0.2)

        threading.Thread(target=sample, daemon=True).start()
        cfg = load_config(None, [f"data.store={store}", f"preprocess.workers={workers}"], {"input.paths": inputs})
        summary = run_preprocess(cfg, show_summary=False)
        done.set()
        print(json.dumps({"peak": peak[0], "frames": summary.frames_read, "seconds": summary.seconds}))

    if __name__ == "__main__":
        main()
    """
)


def _memory(folder: Path, tmp: Path, days: int) -> None:
    script = tmp / "child.py"
    script.write_text(_CHILD)
    runs = [("1 day", [str(folder / "synth_20240601*.nc")], 0)]
    if days > 1:
        every = [str(folder / "synth_*.nc")]
        runs += [(f"{days} days", every, 0), (f"{days} days, 2 workers", every, 2)]
    print(
        f"\npeak memory of `preprocess` (RSS of its process tree); target < {TARGET_RSS_GB:g} GB "
        f"for a month of {SIZE}×{SIZE} frames, flat with the archive's length"
    )
    print(f"{'archive':>20} {'frames':>7} {'seconds':>8} {'peak RSS GB':>12}")
    peaks = []
    for label, inputs, workers in runs:
        arg = json.dumps([inputs, str(tmp / "mem.nc"), workers])
        proc = subprocess.run(
            [sys.executable, str(script), arg], capture_output=True, text=True, check=True
        )
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        gb = res["peak"] / 1e9
        peaks.append(gb)
        print(f"{label:>20} {res['frames']:>7} {res['seconds']:>8.0f} {gb:>12.2f}", flush=True)
    worst = max(peaks)
    verdict = "meets" if worst < TARGET_RSS_GB else "MISSES"
    print(f"peak RSS {worst:.2f} GB ({verdict} the < {TARGET_RSS_GB:g} GB target)", flush=True)
