"""The whole recipe of the shipped model ``models/convlstm_radar5min.pt`` (see models/README.md).

    python scripts/train_shipped.py [--radar ../shared/data/radar]

Leave-one-radar-out over the three real 5-minute events (FMI, MeteoSwiss, RMI; the native
FMI PGM and MeteoSwiss GIF copies are the same frames and are not read again):

1. Each event preprocessed alone (its ``configs/data/<name>.yaml`` with one whole-day
   block and the Marshall–Palmer Z–R); for each held-out event, a store with it as the
   test split, the two others as train and one synthetic day as val (monitoring only).
2. For each fold, training (``configs/shipped/train.yaml``: a ConvLSTM on top of pysteps
   Proesmans extrapolation) on the two other events.
3. For each fold, ``nowcast evaluate`` on the held-out event of the last checkpoint at
   every ``model.correction_scale`` of :data:`SCALES` (0 = the extrapolation prior
   exactly), persistence, pysteps LK and Proesmans extrapolation.
4. The scale of each lead for the model of held-out event E is chosen on the two other
   folds only (:func:`choose_scales`); E's scores at that scale are its held-out scores.
5. The pretrained recipe (:data:`PRETRAIN`): one network pretrained on real radar at other
   frame steps that is in no fold (MRMS tiles at 2 minutes, then BOM Melbourne at 6
   minutes), then steps 2–4 again with every fold fine-tuning from it
   (``runs/shipped/pretrained/``).
6. The shipped model is the RMI fold's network (trained on FMI and MeteoSwiss) of the
   recipe that, judged on all three held-out events, is never worse than its prior and
   ahead of it pooled (the pretrained one when both are and it is ahead pooled,
   :func:`shipped_variant`), with the scales chosen on the FMI and MeteoSwiss folds;
   when neither is, the plain recipe's network with scale 0 at every lead, the prior
   exactly (:func:`shipped_scales`). Exported in the safe checkpoint format.
7. ``models/eval/folds.json`` / ``folds_pretrained.json`` (every method, fold, lead and
   threshold, with the contingency counts) and ``folds.md`` / ``folds_pretrained.md`` (the
   card's tables), plus the shipped network's fold report (report.json, report.md, plots)
   in ``models/eval/``.

Every step whose output exists is skipped (an interrupted training run is resumed), so a
second call only redoes what is missing. Training is deterministic on the CPU. Wall-clock
seconds of each step go to ``runs/shipped/timings.json``. Run it from the repository root.
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

#: real 5-minute events: (folder under --radar, data config)
EVENTS = {
    "fmi": ("fmi_20160928_5min", "configs/data/fmi.yaml"),
    "mch": ("mch_20150515_5min", "configs/data/mch.yaml"),
    "rmi": ("rmi_20210704_5min_odim", "configs/data/rmi.yaml"),
}
#: the shipped network's held-out event (its fold's training events: the two others)
SHIPPED_FOLD = "rmi"
#: the pretrained recipe's stages, in order, on real radar that is not at 5 minutes (none of
#: it is in a fold): (name, folder under --radar, data config, --set items, steps, lr). Each
#: stage starts from the previous one's last checkpoint; the folds then fine-tune from the
#: last stage as the plain recipe trains from scratch. MRMS at its own 2-minute step
#: (continental composite cut into 330×330 tiles; block 0:00–0:34 train, 0:36–1:10 val —
#: what preprocess.seed 4 draws for 2019-06-10); BOM Melbourne at its 6-minute step (block
#: 12:00–15:54 train, 8:00–11:54 val: seed 2 for 2018-06-16). OPERA is not used: at its
#: 15-minute step 12 leads span 3 hours, far from the 5-minute task.
PRETRAIN = (
    (
        "mrms",
        "mrms_20190610_2min_grib2",
        "configs/data/mrms.yaml",
        [
            "preprocess.crops=tiles",
            "preprocess.tile_min_coverage=0.5",
            "preprocess.block_frames=18",
            "preprocess.seed=4",
            "preprocess.split_ratio=[1,1,0]",
        ],
        300,
        2e-4,
    ),
    (
        "bom",
        "bom-melbourne_20180616_6min",
        "configs/data/bom.yaml",
        [
            "preprocess.block_frames=40",
            "preprocess.seed=2",
            "preprocess.drop_gappy_blocks=false",
            "preprocess.split_ratio=[1,1,0]",
        ],
        100,
        1e-4,
    ),
)
PRETRAINED = WORK / "pretrained"
#: split_ratio that puts a one-block day wholly in a split
RATIO = {"train": [1, 0, 0], "val": [0, 1, 0], "test": [0, 0, 1]}
#: model.correction_scale values scored on every fold (0: the prior; 1: the whole change)
SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: the thresholds [mm/h] of the goals, and how far below its prior the model may score
GOAL_THRESHOLDS = (1.0, 2.0)
TOLERANCE = 0.01
#: the report names of the reference methods
PRIOR, LK, PERSISTENCE = "extrapolation_proesmans", "extrapolation", "persistence"
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


def export(run_last: Path, out: Path, scales: list[float]) -> None:
    """The training checkpoint without what only a resume needs (optimiser, RNG, …), with
    ``model.correction_scale = scales``, in the safe checkpoint format."""
    ckpt = load_checkpoint(run_last)
    keep = {k: ckpt[k] for k in (*REQUIRED_KEYS, "step", "version", "git_commit") if k in ckpt}
    keep.pop("format")
    config = json.loads(json.dumps(keep["config"]))
    config["model"]["correction_scale"] = [float(s) for s in scales]
    keep["config"] = config
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radar", type=Path, default=REPO.parent / "shared" / "data" / "radar")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

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

    reports = {held_out: fold(args.radar, held_out, cfg, val_store, sets) for held_out in EVENTS}
    folds = fold_tables(reports)
    start = pretrain(args.radar, cfg)
    reports_pre = {
        held_out: fold(args.radar, held_out, cfg, val_store, sets, PRETRAINED, start)
        for held_out in EVENTS
    }
    folds_pre = fold_tables(reports_pre)
    variant = shipped_variant(folds, folds_pre)
    chosen = (
        shipped_scales(
            folds_pre,
            f"the pretrained recipe's {SHIPPED_FOLD} fold's (pretrained on "
            f"{' and '.join(p[0].upper() for p in PRETRAIN)}, fine-tuned on the other events)",
        )
        if variant
        else shipped_scales(folds)
    )
    # always written (the tracked file is the result of the folds, not a step to skip)
    export(fold_dir(cfg, SHIPPED_FOLD, variant) / "checkpoints" / "last.pt", SHIPPED, chosen)
    EVAL_COPY.mkdir(parents=True, exist_ok=True)
    for stem, tables in (("folds", folds), ("folds_pretrained", folds_pre)):
        (EVAL_COPY / f"{stem}.json").write_text(json.dumps(tables, indent=1) + "\n")
        (EVAL_COPY / f"{stem}.md").write_text(folds_markdown(tables))
    report = fold_report_dir(SHIPPED_FOLD, variant)
    for name in ("report.json", "report.md", "csi_vs_lead.png", "errors_vs_lead.png"):
        shutil.copyfile(report / name, EVAL_COPY / name)
    shutil.copyfile(report / "example.png", EVAL_COPY / "example.png")
    for old in EVAL_COPY.glob("report_fold_*.json"):
        old.unlink()
    _write_timings(round(time.perf_counter() - t_all, 1))
    print(folds_markdown(folds))
    print(f"shipped: {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.2f} MB); scores in {EVAL_COPY}")


def sound(folds: dict[str, Any]) -> bool:
    """Whether a recipe, judged on every held-out event, is never worse than its prior
    (goal 1) and ahead of it pooled."""
    g = folds["goals"]
    pooled = g["beats_best_extrapolation_pooled"]
    return bool(
        g["never_worse_than_prior"]["met"]
        and pooled["model"] > pooled["prior (Proesmans extrapolation)"]
    )


def shipped_variant(plain: dict[str, Any], pretrained: dict[str, Any]) -> Path | None:
    """The recipe whose network is shipped: the pretrained one (its folder,
    :data:`PRETRAINED`) when it is sound (:func:`sound`) and the plain one is not, or both
    are and it is ahead pooled; else the plain one (None)."""

    def pooled(f: dict[str, Any]) -> float:
        return f["goals"]["beats_best_extrapolation_pooled"]["model"]

    if sound(pretrained) and (not sound(plain) or pooled(pretrained) > pooled(plain)):
        return PRETRAINED
    return None


def shipped_scales(folds: dict[str, Any], network: str = "") -> list[float]:
    """The shipped network's ``model.correction_scale``: the scales chosen on its training
    folds when the recipe, judged on every held-out event, is never worse than its prior
    (goal 1) and ahead of it pooled; otherwise 0 at every lead (the prior exactly). The
    choice and its reason are added to ``folds`` under ``shipped``."""
    ok = sound(folds)
    chosen = folds["folds"][SHIPPED_FOLD]["scales"]
    scales = chosen if ok else [0.0] * len(chosen)
    folds["shipped"] = {
        "network": network or f"the {SHIPPED_FOLD} fold's (trained on the other events)",
        "scales": scales,
        "reason": "the recipe is never worse than its prior and ahead of it pooled"
        if ok
        else "the recipe is worse than its prior on a held-out event or not ahead of it "
        "pooled: the prior-equivalent network (scale 0 at every lead) is shipped",
    }
    return scales


def fold_dir(cfg: Config, held_out: str, variant: Path | None = None) -> Path:
    """The training folder of the fold holding ``held_out`` out: the plain recipe's shipped
    fold trains in the config's own ``train.out_dir``; ``variant`` (the pretrained recipe's
    folder) puts every fold under it."""
    if variant is not None:
        return variant / f"fold_{held_out}" / "train"
    return cfg.train.out_dir if held_out == SHIPPED_FOLD else WORK / f"fold_{held_out}" / "train"


def fold_report_dir(held_out: str, variant: Path | None = None) -> Path:
    return (variant or WORK) / f"fold_{held_out}" / "evaluation"


def fold(
    radar: Path,
    held_out: str,
    cfg: Config,
    val_store: Path,
    sets: list[str],
    variant: Path | None = None,
    init_from: Path | None = None,
) -> dict:
    """Train with ``held_out`` as the test split and the other events as train (from
    ``init_from``'s weights when given, in the folder of ``variant``); score the last
    checkpoint at every scale of :data:`SCALES` and the baselines on the held-out event.
    Returns the report.json contents, the model's entries keyed ``scale=<s>``."""
    from nowcast.cli import print_evaluation
    from nowcast.evaluate import evaluate

    roles = {name: "test" if name == held_out else "train" for name in EVENTS}
    # the shipped fold keeps its per-event stores in runs/shipped (scripts/motion_study.py)
    folder = WORK if held_out == SHIPPED_FOLD else WORK / f"fold_{held_out}"
    store_path = cfg.data.store if held_out == SHIPPED_FOLD else folder / "real_store.nc"
    store = real_store(radar, roles, folder, val_store, Path(store_path), sets)
    train_dir = fold_dir(cfg, held_out, variant)
    cfg = run_config(cfg, store, out_dir=train_dir, init_from=init_from)
    label = f"fold {held_out}" + (f" ({variant.name})" if variant else "")
    step(f"{label}: train", train_dir / "DONE", lambda: train_stage(cfg))
    _mark_done(cfg)
    last = train_dir / "checkpoints" / "last.pt"
    base = (variant or WORK) / f"fold_{held_out}" / "scaled"
    scaled = {s: base / f"scale_{s:.2f}.pt" for s in SCALES}
    for s, path in scaled.items():
        step(f"{label}: scale {s:g}", path, lambda s=s, p=path: export(last, p, [s]))
    report = fold_report_dir(held_out, variant)
    step(
        f"{label}: evaluate",
        report / "report.json",
        lambda: print_evaluation(evaluate(cfg, list(scaled.values()), out=report), quiet=True),
    )
    raw = json.loads((report / "report.json").read_text())
    by_source = {str(path): f"scale={s:g}" for s, path in scaled.items()}
    return {by_source.get(r.get("source", ""), name): r for name, r in raw.items()}


def run_config(cfg: Config, store: Path, **train: Any) -> Config:
    """``cfg`` training on ``store`` with the ``train`` section's keys ``train`` replaced."""
    return cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"store": store}),
            "train": cfg.train.model_copy(update=train),
        }
    )


def pretrain(radar: Path, cfg: Config) -> Path:
    """The stages of :data:`PRETRAIN`, each preprocessed with the recipe's gray bounds, Z–R
    and window at its own frame step, trained from the previous stage's last checkpoint.
    Returns the last stage's last checkpoint."""
    init: Path | None = None
    pre_sets = [s for s in common_sets(cfg) if not s.startswith("preprocess.interval")]
    for name, sub, config, extra, steps, lr in PRETRAIN:
        folder = PRETRAINED / "pretrain" / name
        store = folder / "store.nc"
        ev = load_config(
            config,
            [*pre_sets, *extra],
            {"input.paths": [str(radar / sub)], "data.store": str(store)},
        )
        step(f"pretrain {name}: store", store, lambda ev=ev: preprocess(ev))
        stage = run_config(
            cfg,
            store,
            out_dir=folder / "train",
            init_from=init,
            steps=steps,
            lr=lr,
            lr_min=lr / 10,
            val_every=steps // 2,
        )
        step(f"pretrain {name}: train", folder / "train" / "DONE", lambda c=stage: train_stage(c))
        _mark_done(stage)
        init = folder / "train" / "checkpoints" / "last.pt"
    assert init is not None
    return init


def _csi(r: dict, lead: int, j: int) -> float | None:
    """CSI of report entry ``r`` at lead index ``lead``, threshold index ``j``."""
    return r["csi"][lead][j]


def _pooled_csi(entries: list[dict], lead: int | None, j: int) -> float | None:
    """CSI of the contingency counts summed over ``entries`` (over every lead when ``lead``
    is None); None when nothing was observed nor forecast."""
    leads = range(len(entries[0]["hits"])) if lead is None else [lead]
    h = sum(e["hits"][i][j] for e in entries for i in leads)
    m = sum(e["misses"][i][j] for e in entries for i in leads)
    f = sum(e["false_alarms"][i][j] for e in entries for i in leads)
    return h / (h + m + f) if h + m + f else None


def choose_scales(reports: dict[str, dict], training_folds: list[str], n_out: int) -> list[float]:
    """Per lead, the scale of :data:`SCALES` for a model whose held-out event is in none of
    ``training_folds``: among the scales at which, on every fold of ``training_folds`` and
    at every threshold of :data:`GOAL_THRESHOLDS`, the model's CSI is at least its prior's
    minus :data:`TOLERANCE` (undefined CSIs skipped; scale 0 is the prior, always allowed),
    the one with the highest CSI of the counts pooled over those folds, summed over the
    thresholds (the smaller scale on a tie)."""
    chosen = []
    for k in range(n_out):
        best = (-1.0, 0.0)
        for s in SCALES:
            name = f"scale={s:g}"
            ok = True
            for f in training_folds:
                rep = reports[f]
                for t in GOAL_THRESHOLDS:
                    j = rep[PRIOR]["thresholds_mmh"].index(t)
                    a, b = _csi(rep[name], k, j), _csi(rep[PRIOR], k, j)
                    if a is not None and b is not None and a < b - TOLERANCE:
                        ok = False
            if not ok:
                continue
            score = 0.0
            for t in GOAL_THRESHOLDS:
                j = reports[training_folds[0]][PRIOR]["thresholds_mmh"].index(t)
                value = _pooled_csi([reports[f][name] for f in training_folds], k, j)
                score += value or 0.0
            if score > best[0] + 1e-12:
                best = (score, s)
        chosen.append(best[1])
    return chosen


def fold_tables(reports: dict[str, dict]) -> dict[str, Any]:
    """Everything the card reports, from the folds' reports: for each held-out event the
    chosen scales and, per method, CSI per lead at each goal threshold with the counts;
    the pooled table over the held-out events; the goals with their numbers."""
    any_rep = next(iter(reports.values()))
    n_out = len(any_rep[PRIOR]["lead_minutes"])
    leads = any_rep[PRIOR]["lead_minutes"]
    thresholds = any_rep[PRIOR]["thresholds_mmh"]
    js = {t: thresholds.index(t) for t in GOAL_THRESHOLDS}
    keys = ("hits", "misses", "false_alarms", "correct_negatives")
    out: dict[str, Any] = {
        "lead_minutes": leads,
        "thresholds_mmh": list(GOAL_THRESHOLDS),
        "scales_scored": list(SCALES),
        "tolerance": TOLERANCE,
        "folds": {},
    }
    methods: dict[str, dict[str, dict]] = {}
    for held_out, rep in reports.items():
        others = [e for e in reports if e != held_out]
        scales = choose_scales(reports, others, n_out)
        # the model at its chosen scales: lead k from the report entry of scale s_k
        model = {key: [] for key in keys}
        model["csi"] = []
        for k, s in enumerate(scales):
            entry = rep[f"scale={s:g}"]
            for key in (*keys, "csi"):
                model[key].append(entry[key][k])
        entries = {
            "model": model,
            "model, scale 1": rep["scale=1"],
            "prior (Proesmans extrapolation)": rep[PRIOR],
            "LK extrapolation": rep[LK],
            "persistence": rep[PERSISTENCE],
        }
        fold_out: dict[str, Any] = {
            "held_out": held_out,
            "trained_on": others,
            "windows": rep[PRIOR]["n_sequences"],
            "scales": scales,
            "methods": {},
        }
        for name, e in entries.items():
            methods.setdefault(name, {})[held_out] = e
            fold_out["methods"][name] = {
                f"{t:g}": {
                    "csi": [e["csi"][k][j] for k in range(n_out)],
                    "mean_over_leads": _mean([e["csi"][k][j] for k in range(n_out)]),
                    **{key: [e[key][k][j] for k in range(n_out)] for key in keys},
                }
                for t, j in js.items()
            }
        out["folds"][held_out] = fold_out
    pooled: dict[str, Any] = {}
    for name, per_fold in methods.items():
        entries = list(per_fold.values())
        pooled[name] = {
            f"{t:g}": {
                "csi": [_pooled_csi(entries, k, j) for k in range(n_out)],
                "mean_over_leads": _mean([_pooled_csi(entries, k, j) for k in range(n_out)]),
            }
            for t, j in js.items()
        }
    out["pooled"] = pooled
    out["goals"] = goals(out)
    return out


def goals(tables: dict[str, Any]) -> dict[str, Any]:
    """Goal 1: on every held-out event, lead and goal threshold, model ≥ prior − tolerance
    (the worst margin and where). Goal 2: pooled CSI ≥ 1 mm/h averaged over leads above
    the prior's and LK's."""
    worst = (float("inf"), "", 0.0, 0)
    for held_out, f in tables["folds"].items():
        for t in f["methods"]["model"]:
            model = f["methods"]["model"][t]["csi"]
            prior = f["methods"]["prior (Proesmans extrapolation)"][t]["csi"]
            for k, (a, b) in enumerate(zip(model, prior)):
                if a is not None and b is not None and a - b < worst[0]:
                    worst = (a - b, held_out, float(t), tables["lead_minutes"][k])
    pooled = tables["pooled"]
    mean = {name: pooled[name]["1"]["mean_over_leads"] for name in pooled}
    best_extrapolation = max(mean["prior (Proesmans extrapolation)"], mean["LK extrapolation"])
    return {
        "never_worse_than_prior": {
            "met": worst[0] >= -tables["tolerance"] - 1e-12,
            "worst_margin": worst[0],
            "worst_at": {"held_out": worst[1], "threshold_mmh": worst[2], "lead_min": worst[3]},
        },
        "beats_best_extrapolation_pooled": {
            "met": mean["model"] > best_extrapolation,
            "model": mean["model"],
            "prior (Proesmans extrapolation)": mean["prior (Proesmans extrapolation)"],
            "LK extrapolation": mean["LK extrapolation"],
        },
    }


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def folds_markdown(tables: dict[str, Any]) -> str:
    """The model card's tables (markdown) from :func:`fold_tables`' result."""
    leads = tables["lead_minutes"]
    head = "| method | " + " | ".join(f"{m:g}" for m in leads) + " | mean |"
    rule = "|---|" + "---|" * (len(leads) + 1)
    lines: list[str] = []

    def table(title: str, rows: dict[str, dict], t: str) -> None:
        lines.extend([title, "", head, rule])
        for name, r in rows.items():
            cells = " | ".join(_fmt(v) for v in r[t]["csi"])
            lines.append(f"| {name} | {cells} | {_fmt(r[t]['mean_over_leads'])} |")
        lines.append("")

    for held_out, f in tables["folds"].items():
        scales = ", ".join(f"{s:g}" for s in f["scales"])
        lines += [
            f"**Held out: {held_out}** ({f['windows']} windows; trained on "
            f"{' and '.join(f['trained_on'])}; scale per lead, chosen on the "
            f"{' and '.join(f['trained_on'])} folds: {scales})",
            "",
        ]
        for t in f["methods"]["model"]:
            table(f"CSI ≥ {t} mm/h, lead [min]:", f["methods"], t)
    lines += ["**Pooled over the three held-out events** (contingency counts summed)", ""]
    for t in tables["thresholds_mmh"]:
        table(f"CSI ≥ {t:g} mm/h, lead [min]:", tables["pooled"], f"{t:g}")
    g = tables["goals"]
    a, b = g["never_worse_than_prior"], g["beats_best_extrapolation_pooled"]
    at = a["worst_at"]
    if "shipped" in tables:
        lines += [
            f"Shipped: {tables['shipped']['network']} network, model.correction_scale "
            f"{tables['shipped']['scales']}: {tables['shipped']['reason']}.",
            "",
        ]
    lines += [
        f"- Never worse than the prior (−{tables['tolerance']:g}): "
        f"{'met' if a['met'] else 'not met'}; worst margin {a['worst_margin']:+.3f} "
        f"({at['held_out']}, {at['threshold_mmh']:g} mm/h, {at['lead_min']:g} min).",
        f"- Beat the best extrapolation pooled (CSI ≥ 1 mm/h, mean over leads): "
        f"{'met' if b['met'] else 'not met'}; model {b['model']:.3f}, Proesmans "
        f"{b['prior (Proesmans extrapolation)']:.3f}, LK {b['LK extrapolation']:.3f}.",
        "",
    ]
    return "\n".join(lines)


def real_store(
    radar: Path, roles: dict[str, str], folder: Path, val_store: Path, out: Path, sets: list[str]
) -> Path:
    """Preprocess each real event alone into ``folder`` with the split ``roles[name]`` for
    the whole event, and merge them with the synthetic val store into ``out``."""
    stores = []
    for name, (sub, config) in EVENTS.items():
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
