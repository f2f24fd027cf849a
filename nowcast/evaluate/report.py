"""report.json (docs/evaluate.md), report.md, the terminal table and the stage's result.

report.json maps each method name to::

    kind, source                       "model" + checkpoint path, or "baseline" + description
    preprocess_differs                 (models) preprocess keys of the training store that
                                       differ from the scored store's (sorted; [] = none)
    amp                                (models only) the precision the network ran in:
                                       "bf16", "fp16" or "off" (float32)
    lead_minutes [L], thresholds_mmh [K], n_sequences
    csi, hss, pod, far, ets, bias      [lead][threshold]
    hits, misses, false_alarms, correct_negatives   [lead][threshold] (summed tables)
    mse, mae, b_mse, b_mae             [lead]  gray level, summed over the counting pixels of
                                               a frame, averaged over sequences (HKO-7)
    mse_rate, mae_rate                 [lead]  (mm/h)², mm/h, per counting pixel
    pixels                             [lead]  counting pixels over all sequences

Undefined scores (0/0) are NaN in memory and ``null`` in report.json (strict JSON);
report.md and the terminal show them as "n/a". Means over lead times skip undefined leads.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.table import Table

from nowcast.verification.metrics import CATEGORICAL, Scores

COUNTS = ("hits", "misses", "false_alarms", "correct_negatives")
ERRORS = ("mse", "mae", "b_mse", "b_mae", "mse_rate", "mae_rate")


@dataclass
class MethodResult:
    """One method's scores and where it came from."""

    scores: Scores
    kind: str  # "model" | "baseline"
    source: str
    #: a model's training-store ``preprocess`` keys that differ from the scored store's
    preprocess_differs: list[str] = field(default_factory=list)


@dataclass
class RunInfo:
    """What was evaluated, for the report header."""

    store: str
    split: str
    n_windows: int
    n_in: int
    n_out: int
    frame_minutes: float
    device: str
    amp: str = "off"  # precision of the networks: bf16, fp16 or off (float32)
    example: str = ""
    plots: list[str] = field(default_factory=list)

    @property
    def lead_minutes(self) -> list[float]:
        return [(k + 1) * self.frame_minutes for k in range(self.n_out)]


@dataclass(frozen=True)
class EvaluateResult:
    """What `nowcast evaluate` produced: the report ``folder``, each method's scores
    (``methods``: name → :class:`MethodResult`, in the order scored), what was evaluated
    (``run``), and the paths of the files written into ``folder``."""

    folder: Path
    methods: dict[str, MethodResult]
    run: RunInfo
    report_md: Path
    report_json: Path
    config: Path
    plots: list[Path]

    @property
    def files(self) -> list[Path]:
        """Every file of the report: report.md, report.json, the plots, config.yaml."""
        return [self.report_md, self.report_json, *self.plots, self.config]


def _clean(value: Any) -> Any:
    """numpy → JSON-ready Python; NaN/inf → None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def report_dict(results: Mapping[str, MethodResult], info: RunInfo) -> dict[str, Any]:
    """The report.json content: ``{method: {...}}`` (see module docstring)."""
    out: dict[str, Any] = {}
    for name, res in results.items():
        s = res.scores
        entry: dict[str, Any] = {
            "kind": res.kind,
            "source": res.source,
            **({"amp": info.amp} if res.kind == "model" else {}),
            "lead_minutes": info.lead_minutes,
            "thresholds_mmh": s.thresholds_mmh,
            "n_sequences": s.n_sequences,
        }
        if res.kind == "model":
            entry["preprocess_differs"] = list(res.preprocess_differs)
        for key in (*CATEGORICAL, *ERRORS, *COUNTS, "pixels"):
            entry[key] = getattr(s, key)
        out[name] = _clean(entry)
    return out


def report_json(results: Mapping[str, MethodResult], info: RunInfo) -> str:
    """report.json text (strict JSON: no NaN tokens)."""
    return json.dumps(report_dict(results, info), indent=1, allow_nan=False) + "\n"


def lead_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the lead axis (0) of the defined values; NaN where none is defined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=0)


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _fmt_err(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.4g}"


def reference_threshold(thresholds: Sequence[float], wanted: float = 2.0) -> int:
    """Index of the threshold closest (in log space) to ``wanted`` mm/h."""
    return int(np.argmin([abs(np.log(t / wanted)) for t in thresholds]))


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def report_markdown(results: Mapping[str, MethodResult], info: RunInfo) -> str:
    """report.md: score tables (methods × thresholds, per lead at 2 mm/h), errors, plots."""
    names = list(results)
    thresholds = next(iter(results.values())).scores.thresholds_mmh
    thr_head = [f"≥ {t:g} mm/h" for t in thresholds]
    lines = [
        "# nowcast evaluation",
        "",
        f"- store: `{info.store}`, split `{info.split}`: {info.n_windows} windows of "
        f"{info.n_in} inputs + {info.n_out} forecasts, every {info.frame_minutes:g} min",
        f"- lead times {info.lead_minutes[0]:g}–{info.lead_minutes[-1]:g} min; scores from "
        "contingency tables summed over all windows (HKO-7 protocol); event = rain rate ≥ "
        "threshold; pixels outside coverage or in the month's noise mask never count",
        "- methods: " + ", ".join(f"`{n}` ({results[n].kind}: {results[n].source})" for n in names),
        f"- device: {info.device}; networks in "
        + ("float32" if info.amp == "off" else f"{info.amp} autocast"),
        "",
    ]
    for n in names:
        if results[n].kind == "model" and results[n].preprocess_differs:
            keys = ", ".join(f"`{k}`" for k in results[n].preprocess_differs)
            lines.append(
                f"- `{n}` was trained on a store preprocessed otherwise in {keys}; its frames "
                "mean the same (gray bounds, Z–R, crop, disk filter, size and interval agree), "
                "and the store's own masks are used"
            )
    lines.append("")
    for key, title in (("csi", "CSI"), ("hss", "HSS")):
        lines += [f"## {title} per threshold (mean over lead times)", ""]
        rows = [[n, *(_fmt(v) for v in lead_mean(getattr(results[n].scores, key)))] for n in names]
        lines += _md_table(["method", *thr_head], rows)
    k = reference_threshold(thresholds)
    lines += [f"## Per lead time at {thresholds[k]:g} mm/h (CSI / HSS)", ""]
    rows = []
    for li, lead in enumerate(info.lead_minutes):
        cells = [
            f"{_fmt(results[n].scores.csi[li, k])} / {_fmt(results[n].scores.hss[li, k])}"
            for n in names
        ]
        rows.append([f"{lead:g} min", *cells])
    lines += _md_table(["lead", *names], rows)
    lines += [
        "## Errors (mean over lead times)",
        "",
        "MSE, MAE, B-MSE, B-MAE in gray levels (P = (dBZ − z_min)/(z_max − z_min)), summed over "
        "the counting pixels of a frame and averaged over windows, as in HKO-7; rain-rate "
        "errors per pixel, in (mm/h)² and mm/h.",
        "",
    ]
    rows = [
        [n, *(_fmt_err(float(lead_mean(getattr(results[n].scores, e)))) for e in ERRORS)]
        for n in names
    ]
    lines += _md_table(["method", "MSE", "MAE", "B-MSE", "B-MAE", "MSE rate", "MAE rate"], rows)
    if info.plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in info.plots] + [""]
    if info.example:
        lines += [info.example, ""]
    return "\n".join(lines)


def terminal_table(results: Mapping[str, MethodResult], info: RunInfo) -> Table:
    """The main table for the terminal: CSI and HSS per threshold (mean over lead times),
    MSE and B-MSE (gray level, mean over lead times); fits 80 columns for 5 thresholds."""
    thresholds = next(iter(results.values())).scores.thresholds_mmh
    table = Table(
        title=f"{info.split} split, {info.n_windows} windows, leads {info.lead_minutes[0]:g}–"
        f"{info.lead_minutes[-1]:g} min; scores at rain ≥ threshold \\[mm/h], mean over leads",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    table.add_column("method", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    for t in thresholds:
        table.add_column(f"≥{t:g}", justify="right", no_wrap=True)
    table.add_column("MSE", justify="right", no_wrap=True)
    table.add_column("B-MSE", justify="right", no_wrap=True)
    for name, res in results.items():
        s = res.scores
        mse, b_mse = float(lead_mean(s.mse)), float(lead_mean(s.b_mse))
        csi = [_fmt(v) for v in lead_mean(s.csi)]
        hss = [_fmt(v) for v in lead_mean(s.hss)]
        table.add_row(name, "CSI", *csi, _fmt_err(mse), _fmt_err(b_mse))
        table.add_row("", "HSS", *hss, "", "", end_section=True)
    return table
