"""The whole recipe of the shipped model ``models/convlstm_radar5min.pt`` (see models/README.md).

    python scripts/train_shipped.py [--radar ../shared/data/radar] [--folds]

1. Real 5-minute events, each preprocessed alone (its ``configs/data/<name>.yaml`` with one
   whole-day block and the Marshall–Palmer Z–R): FMI and MeteoSwiss for training, RMI
   (ODIM_H5) held out as the test split; one synthetic day as the val split (monitoring
   only). Merged into one store (``nowcast.preprocess.merge``).
2. Training (``configs/shipped/train.yaml``): a ConvLSTM on top of pysteps extrapolation
   (``model.advection``); the last checkpoint is exported without its optimiser state.
3. ``nowcast evaluate`` on the held-out test split against persistence and pysteps
   extrapolation; report.json / report.md / plots copied to ``models/eval/``.
   ``--folds`` repeats the training with FMI, then MeteoSwiss held out (RMI then trains),
   and scores each on its held-out event (how much the scores depend on the event).

Every step whose output exists is skipped (an interrupted training run is resumed), so a
second call only redoes what is missing. Wall-clock seconds of each step go to
``runs/shipped/timings.json``. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from nowcast.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint
from nowcast.config import Config, load_config
from nowcast.preprocess import preprocess
from nowcast.preprocess.merge import merge_stores
from nowcast.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
WORK = Path("runs/shipped")
CONFIG = Path("configs/shipped/train.yaml")
SHIPPED = Path("models/convlstm_radar5min.pt")
EVAL_COPY = Path("models/eval")

#: real 5-minute events: (folder under --radar, data config, split of the whole event)
EVENTS = {
    "fmi": ("fmi_20160928_5min", "configs/data/fmi.yaml", "train"),
    "mch": ("mch_20150515_5min", "configs/data/mch.yaml", "train"),
    "rmi": ("rmi_20210704_5min_odim", "configs/data/rmi.yaml", "test"),
}
#: split_ratio that puts a one-block day wholly in a split
RATIO = {"train": [1, 0, 0], "val": [0, 1, 0], "test": [0, 0, 1]}
timings: dict[str, float] = {}


def step(name: str, output: Path, run) -> None:
    """Run ``run()`` unless ``output`` exists; time it."""
    if output.exists():
        print(f"[{name}] {output} exists, skipped")
        return
    print(f"[{name}] …", flush=True)
    t0 = time.perf_counter()
    run()
    timings[name] = round(time.perf_counter() - t0, 1)
    print(f"[{name}] done in {timings[name]:.0f} s", flush=True)


def common_sets(cfg: Config) -> list[str]:
    """--set items giving a store the recipe's transform, Z–R and window."""
    pre, zr, data = cfg.preprocess, cfg.zr, cfg.data
    return [
        f"zr.a={zr.a}",
        f"zr.b={zr.b}",
        f"preprocess.interval_minutes={pre.interval_minutes}",
        f"preprocess.z_min={pre.z_min}",
        f"preprocess.z_max={pre.z_max}",
        f"preprocess.crop={pre.crop}",
        f"preprocess.disk_radius={pre.disk_radius}",
        f"preprocess.size={pre.size}",
        f"data.n_in={data.n_in}",
        f"data.n_out={data.n_out}",
    ]


def one_split(split: str, block_frames: int = 288) -> list[str]:
    """--set items putting every block in ``split`` (a gap only costs the windows that touch
    it); 288 frames = one block a day, the whole event."""
    return [
        f"preprocess.block_frames={block_frames}",
        "preprocess.drop_gappy_blocks=false",
        f"preprocess.split_ratio={RATIO[split]}",
    ]


def train_stage(cfg: Config) -> None:
    """Train, or resume an interrupted run in the same folder."""
    from nowcast.cli import train_summary
    from nowcast.train import train

    resume = (cfg.train.out_dir / "checkpoints" / "last.pt").exists()
    print(train_summary(train(cfg, resume=resume)))


def export(run_last: Path, out: Path) -> None:
    """The training checkpoint without what only a resume needs (optimiser, RNG, …)."""
    ckpt = load_checkpoint(run_last)
    keep = {k: ckpt[k] for k in (*REQUIRED_KEYS, "step", "version", "git_commit") if k in ckpt}
    keep.pop("format")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radar", type=Path, default=REPO.parent / "shared" / "data" / "radar")
    parser.add_argument(
        "--folds",
        action="store_true",
        help="also train and score with FMI, then MeteoSwiss held out instead of RMI",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    # 1. the store: each real event alone, merged with a synthetic val day
    cfg = load_config(CONFIG)
    sets = common_sets(cfg)
    val_store = WORK / "synth_val_store.nc"
    val_cfg = load_config(
        CONFIG,
        [*sets, *one_split("val", block_frames=40)],
        {"data.store": str(val_store)},
    )
    step("synth val archive", val_cfg.synth.out, lambda: synthesize(val_cfg.synth))
    step("synth val store", val_store, lambda: preprocess(val_cfg))
    roles = {name: split for name, (_, _, split) in EVENTS.items()}
    real_store(args.radar, roles, WORK, val_store, cfg.data.store, sets)

    # 2. training, export
    step("train", cfg.train.out_dir / "DONE", lambda: train_stage(cfg))
    _mark_done(cfg)
    step("export", SHIPPED, lambda: export(cfg.train.out_dir / "checkpoints" / "last.pt", SHIPPED))

    # 3. held-out scores
    from nowcast.cli import print_evaluation
    from nowcast.evaluate import evaluate

    report = Path(cfg.evaluate.out)
    step(
        "evaluate",
        report / "report.json",
        lambda: print_evaluation(evaluate(cfg, [SHIPPED]), quiet=False),
    )
    EVAL_COPY.mkdir(parents=True, exist_ok=True)
    for name in (
        "report.json",
        "report.md",
        "csi_vs_lead.png",
        "errors_vs_lead.png",
        "example.png",
    ):
        shutil.copyfile(report / name, EVAL_COPY / name)
    if args.folds:
        for held_out in ("fmi", "mch"):
            _fold(args.radar, held_out, cfg, val_store, sets)
    _write_timings(round(time.perf_counter() - t_all, 1))
    print(card_tables(EVAL_COPY))
    print(f"shipped: {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.2f} MB); scores in {EVAL_COPY}")


def real_store(
    radar: Path, roles: dict[str, str], folder: Path, val_store: Path, out: Path, sets: list[str]
) -> Path:
    """Preprocess each real event alone into ``folder`` with the split ``roles[name]`` for
    the whole event, and merge them with the synthetic val store into ``out``."""
    stores = []
    for name, (sub, config, _) in EVENTS.items():
        split = roles[name]
        store = folder / f"{name}_store.nc"
        ev = load_config(
            config,
            [*sets, *one_split(split)],
            {"input.paths": [str(radar / sub)], "data.store": str(store)},
        )
        step(f"{folder.name}/{name} store ({split})", store, lambda ev=ev: preprocess(ev))
        stores.append(store)
    step(f"{folder.name}/merge", out, lambda: merge_stores([*stores, val_store], out))
    return out


def _fold(radar: Path, held_out: str, cfg: Config, val_store: Path, sets: list[str]) -> None:
    """The shipped model's training with another event held out: its test scores say how
    much the shipped model's depend on the event."""
    from nowcast.cli import print_evaluation
    from nowcast.evaluate import evaluate

    folder = WORK / f"fold_{held_out}"
    roles = {name: "test" if name == held_out else "train" for name in EVENTS}
    store = real_store(radar, roles, folder, val_store, folder / "real_store.nc", sets)
    cfg = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"store": store}),
            "train": cfg.train.model_copy(update={"out_dir": folder / "train"}),
        }
    )
    step(f"fold {held_out}: train", folder / "train" / "DONE", lambda: train_stage(cfg))
    _mark_done(cfg)
    report = folder / "evaluation"
    last = folder / "train" / "checkpoints" / "last.pt"
    step(
        f"fold {held_out}: evaluate",
        report / "report.json",
        lambda: print_evaluation(evaluate(cfg, [last], out=report), quiet=False),
    )
    shutil.copyfile(report / "report.json", EVAL_COPY / f"report_fold_{held_out}.json")


def card_tables(folder: Path) -> str:
    """The model card's score tables (markdown), from the report.json files in ``folder``:
    scores at each threshold averaged over leads, CSI per lead at 1 mm/h, and the
    CSI at 1 mm/h of every held-out event that was scored."""
    main = json.loads((folder / "report.json").read_text())
    thresholds = main["convlstm"]["thresholds_mmh"]
    lines = ["| method | score | " + " | ".join(f"≥ {t:g} mm/h" for t in thresholds) + " |"]
    lines.append("|---|---|" + "---|" * len(thresholds))
    for name, rep in main.items():
        for score in ("csi", "hss", "pod", "far", "ets", "bias"):
            cells = [_mean_over_leads(rep[score], j) for j in range(len(thresholds))]
            lines.append(f"| {name} | {score.upper()} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| method | MSE | MAE | B-MSE | B-MAE | MSE rate | MAE rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rep in main.items():
        errs = [
            sum(rep[k]) / len(rep[k])
            for k in ("mse", "mae", "b_mse", "b_mae", "mse_rate", "mae_rate")
        ]
        lines.append(f"| {name} | " + " | ".join(f"{e:.4g}" for e in errs) + " |")
    j = thresholds.index(1)
    leads = main["convlstm"]["lead_minutes"]
    lines += ["", "| CSI ≥ 1 mm/h, lead | " + " | ".join(f"{m:g}" for m in leads) + " | mean |"]
    lines.append("|---|" + "---|" * (len(leads) + 1))
    for name, rep in main.items():
        row = [_fmt(rep["csi"][i][j]) for i in range(len(leads))]
        lines.append(f"| {name} | " + " | ".join(row) + f" | {_mean_over_leads(rep['csi'], j)} |")
    events = {"rmi (shipped model)": "report.json"}
    for path in sorted(folder.glob("report_fold_*.json")):
        events[path.stem.removeprefix("report_fold_")] = path.name
    if len(events) > 1:
        lines += [
            "",
            "| held-out event | windows | method | CSI ≥ 1 mm/h, mean over leads "
            "| leads above persistence (of 12) |",
            "|---|---|---|---|---|",
        ]
        for event, name in events.items():
            reports = json.loads((folder / name).read_text())
            pers = reports["persistence"]["csi"]
            for method, r in reports.items():
                above = sum(a[j] > b[j] for a, b in zip(r["csi"], pers))
                above_text = "" if method == "persistence" else str(above)
                lines.append(
                    f"| {event} | {r['n_sequences']} | {method} "
                    f"| {_mean_over_leads(r['csi'], j)} | {above_text} |"
                )
    return "\n".join(lines)


def _mean_over_leads(table: list[list[float | None]], j: int) -> str:
    """Mean over leads of column ``j`` (leads where the score is undefined skipped)."""
    values = [row[j] for row in table if row[j] is not None]
    return _fmt(sum(values) / len(values)) if values else "n/a"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mark_done(cfg: Config) -> None:
    """A finished run gets a DONE file (its final step), so that a rerun skips it."""
    done = cfg.train.out_dir / "DONE"
    last = cfg.train.out_dir / "checkpoints" / "last.pt"
    if not done.exists() and last.exists():
        done.write_text(f"{load_checkpoint(last)['step']}\n")


def _write_timings(total: float) -> None:
    """Add this call's step times (and its total, to ``calls``) to runs/shipped/timings.json."""
    path = WORK / "timings.json"
    old: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    calls = old.pop("calls", [])
    old.pop("total (this call)", None)
    old.update(timings)
    old["calls"] = [*calls, total]
    old["hardware"] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    path.write_text(json.dumps(old, indent=2) + "\n")
    shutil.copyfile(path, EVAL_COPY / "timings.json")


if __name__ == "__main__":
    main()
