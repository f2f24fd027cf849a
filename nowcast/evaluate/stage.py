"""The `nowcast evaluate` stage: stream a split's windows through every method, score, report.

    evaluate(cfg, checkpoints=[Path("runs/x/checkpoints/best.pt")]) -> EvaluateResult

Everything the user can get wrong is checked before any window is read (missing files, a
checkpoint preprocessed differently from the store, an empty split, thresholds outside the
gray scale), and so is the report folder (:func:`check_report_folder`); the outputs are
written into a new folder beside it that replaces the report folder in one step at the
end, so a failure leaves no report behind and an earlier report intact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nowcast.atomic import is_write_failure, make_temp_dir, replace_folder, write_error
from nowcast.config import Config
from nowcast.config.loader import config_to_yaml
from nowcast.device import resolve_device
from nowcast.errors import UserError
from nowcast.evaluate.baselines import build_baselines, check_baseline_frames, describe
from nowcast.evaluate.methods import load_model, method_labels
from nowcast.evaluate.plots import Example, plot_csi, plot_errors, plot_example
from nowcast.evaluate.report import (
    EvaluateResult,
    MethodResult,
    RunInfo,
    report_json,
    report_markdown,
)
from nowcast.forecast import ForecastMethod
from nowcast.outputs import check_output, with_config
from nowcast.precision import amp_name, precision_line, resolve_amp
from nowcast.progress import info, make_progress
from nowcast.store import FrameReader, StoreMeta, read_meta, window_starts
from nowcast.timings import Timings
from nowcast.units import GrayScale, uint8_to_gray
from nowcast.verification.metrics import MetricAccumulator

PLOTS = ("csi_vs_lead.png", "errors_vs_lead.png", "example.png")
#: everything a report folder holds; a folder with anything else is not replaced
REPORT_FILES = (*PLOTS, "report.md", "report.json", "config.yaml")


@dataclass
class Method:
    """One scored method: ``kind`` "model" or "baseline", where it comes from, its forecast
    method (:mod:`nowcast.forecast`: (B, T_in, 1, H, W) → (B, n_out, 1, H, W)), and for a
    model the ``preprocess`` keys its training store had unlike the scored one."""

    kind: str
    source: str
    forecast: ForecastMethod
    preprocess_differs: list[str] = field(default_factory=list)


def check_thresholds(thresholds: Sequence[float], scale: GrayScale, store: Path) -> None:
    """Thresholds must increase and lie inside the gray scale (z_min … z_max in mm/h)."""
    if any(b <= a for a, b in zip(thresholds, thresholds[1:])):
        raise UserError(
            f"evaluate.thresholds_mmh: expected strictly increasing values, got {list(thresholds)}"
        )
    top, bottom = scale.max_mmh(), scale.min_mmh()
    for t in thresholds:
        if t > top:
            raise UserError(
                f"evaluate.thresholds_mmh: {t:g} mm/h is above the gray scale's maximum of {store} "
                f"(z_max = {scale.z_max:g} dBZ = {top:.4g} mm/h), so no pixel could ever reach it"
            )
        if t <= bottom:
            raise UserError(
                f"evaluate.thresholds_mmh: {t:g} mm/h is at or below the gray scale's minimum of "
                f"{store} (z_min = {scale.z_min:g} dBZ = {bottom:.4g} mm/h), so every pixel is an event"
            )


def frame_minutes(meta: StoreMeta) -> float:
    """The store's frame interval [min] (the most common step between frames)."""
    steps = np.diff(meta.times).astype("timedelta64[s]").astype(np.int64)
    if steps.size == 0:
        raise UserError(f"{meta.path}: a single frame has no frame interval")
    values, counts = np.unique(steps, return_counts=True)
    return float(values[np.argmax(counts)]) / 60.0


def lead_indices(leads_min: Sequence[float], step_min: float, n_out: int) -> list[int]:
    """Forecast-step indices nearest to the wanted lead times (deduplicated, in order)."""
    out: list[int] = []
    for m in leads_min:
        k = int(np.clip(round(m / step_min) - 1, 0, n_out - 1))
        if k not in out:
            out.append(k)
    return out


def read_windows(reader: FrameReader, starts: np.ndarray, length: int) -> np.ndarray:
    """Frames of windows starting at ``starts`` (ascending): uint8 (B, length, H, W).

    Overlapping windows (the sliding-by-one case) are read as one span."""
    lo, hi = int(starts[0]), int(starts[-1]) + length
    if hi - lo <= 2 * len(starts) * length:
        span = reader.read(lo, hi)
        return np.stack([span[s - lo : s - lo + length] for s in starts])
    return np.stack([reader.read(int(s), int(s) + length) for s in starts])


def evaluate(
    cfg: Config,
    checkpoints: Sequence[str | os.PathLike] = (),
    baselines: Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    *,
    timings: Timings | None = None,
) -> EvaluateResult:
    """Score checkpoints and baselines on ``cfg.evaluate.split`` of ``cfg.data.store``.

    ``baselines`` / ``out`` default to ``cfg.evaluate.baselines`` / ``cfg.evaluate.out``.
    Writes report.json, report.md, csi_vs_lead.png, errors_vs_lead.png, example.png and
    config.yaml into ``out`` and returns the scores and paths (prints nothing but the
    progress bar). ``timings``, when given, is filled with where the time went (for the
    benchmark).
    """
    t_start = time.perf_counter()
    ecfg = cfg.evaluate
    baselines = list(ecfg.baselines if baselines is None else baselines)
    out = check_report_folder(
        Path(ecfg.out if out is None else out), [cfg.data.store, *checkpoints]
    )
    n_in, n_out = cfg.data.n_in, cfg.data.n_out
    check_baseline_frames(baselines, ecfg.extrapolation_frames, n_in)

    meta = read_meta(cfg.data.store)
    meta.require_counting_pixels()
    # the Z–R relation the store was made with; the config's `zr` if the store does not say
    scale = GrayScale.from_preprocess(meta.preprocess, str(meta.path), cfg.zr.model_dump())
    check_thresholds(ecfg.thresholds_mmh, scale, meta.path)
    starts = window_starts(meta, ecfg.split, n_in + n_out)
    if starts.size == 0:
        raise UserError(
            f"{meta.path}: split '{ecfg.split}' has no complete window of {n_in + n_out} valid "
            f"frames (data.n_in + data.n_out) to evaluate"
        )
    if ecfg.example_window is not None and ecfg.example_window >= starts.size:
        raise UserError(
            f"evaluate.example_window: {ecfg.example_window} is past the last of the "
            f"{starts.size} windows of split '{ecfg.split}'"
        )
    device = resolve_device(ecfg.device, "evaluate.device")
    paths = [Path(p) for p in checkpoints]
    amp = resolve_amp(ecfg.amp, device, "evaluate.amp") if paths else None
    if paths:
        info(precision_line(amp, device, ecfg.amp))
    loaded = [load_model(p, meta, device, amp) for p in paths]
    labels = method_labels([name for name, _, _ in loaded], paths)
    methods = {
        label: Method("model", str(path), forecast, differing)
        for label, path, (_, forecast, differing) in zip(labels, paths, loaded)
    }
    for name, forecast in build_baselines(baselines, ecfg.extrapolation_frames).items():
        methods[name] = Method("baseline", describe(name, ecfg.extrapolation_frames), forecast)
    if not methods:
        raise UserError("nothing to evaluate: give --checkpoint and/or --baselines")

    step = frame_minutes(meta)
    timings = timings if timings is not None else Timings()
    for name in methods:
        timings.add(f"method:{name}", 0.0)
    accs, example = _score(meta, starts, methods, scale, cfg, device, step, timings)

    t0 = time.perf_counter()
    results = {
        name: MethodResult(accs[name].result(), m.kind, m.source, m.preprocess_differs)
        for name, m in methods.items()
    }
    run = RunInfo(
        store=str(meta.path),
        split=ecfg.split,
        n_windows=int(starts.size),
        n_in=n_in,
        n_out=n_out,
        frame_minutes=step,
        device=str(device),
        amp=amp_name(amp),
        plots=list(PLOTS),
        example=f"example.png: window {example[0]} of the split"
        + (" (the wettest)" if ecfg.example_window is None else ""),
    )
    _write_outputs(
        out, cfg, results, run, example[1], scale, lead_indices(ecfg.example_leads_min, step, n_out)
    )
    timings.add("writing", time.perf_counter() - t0)
    timings.add("total", time.perf_counter() - t_start)
    return EvaluateResult(
        folder=out,
        methods=results,
        run=run,
        report_md=out / "report.md",
        report_json=out / "report.json",
        config=out / "config.yaml",
        plots=[out / p for p in PLOTS],
    )


def _score(
    meta: StoreMeta,
    starts: np.ndarray,
    methods: dict[str, Method],
    scale: GrayScale,
    cfg: Config,
    device: torch.device,
    step: float,
    timings: Timings,
) -> tuple[dict[str, MetricAccumulator], tuple[int, Example]]:
    """Stream the windows in batches; keep only the sums and the example window's frames.

    Every method gets the same inputs: the window's first ``n_in`` frames with the noise
    mask of the window's month (that of its first frame) set to 0, no echo."""
    ecfg = cfg.evaluate
    n_in, n_out = cfg.data.n_in, cfg.data.n_out
    accs = {name: MetricAccumulator(n_out, ecfg.thresholds_mmh, scale, device) for name in methods}
    first = next(iter(accs.values()))  # all share thresholds and scale: observe once per batch
    masks = torch.from_numpy(meta.mask_stack()).to(device)  # (M, H, W), per tile in a tiled store
    noise = torch.from_numpy(meta.noise_stack()).to(device)  # (M, H, W), the same order
    month_of = torch.from_numpy(meta.mask_index(starts)).to(device)
    reader = FrameReader(meta.path)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best: tuple[float, int, Example | None] = (-np.inf, -1, None)
    bs = ecfg.batch_size
    try:
        with make_progress() as progress:
            task = progress.add_task(f"evaluate {ecfg.split}", total=int(starts.size))
            for b0 in range(0, starts.size, bs):
                t0 = time.perf_counter()
                frames = read_windows(reader, starts[b0 : b0 + bs], n_in + n_out)
                x = torch.from_numpy(uint8_to_gray(frames)).to(device)  # (B, n_in + n_out, H, W)
                months = month_of[b0 : b0 + bs]
                # every method's inputs: noise-mask (clutter) pixels are no echo
                inputs = x[:, :n_in].masked_fill(noise[months][:, None], 0.0)
                obs = x[:, n_in:]
                mask = masks[months]
                timings.add("reading", time.perf_counter() - t0)
                preds = {}
                for name, method in methods.items():
                    t0 = time.perf_counter()
                    # frames (B, n_out, H, W) for the scores
                    preds[name] = method.forecast(inputs[:, :, None], n_out)[:, :, 0]
                    sync()
                    timings.add(f"method:{name}", time.perf_counter() - t0)
                t0 = time.perf_counter()
                with _metric_threads(device):
                    observed = first.observe(obs, mask)
                    for name, pred in preds.items():
                        accs[name].update_observed(pred, observed)
                chosen = _example_choice(b0, ecfg.example_window, obs, mask, best[0])
                if chosen is not None:
                    i, score = chosen
                    best = (
                        score,
                        b0 + i,
                        _example(
                            i, int(starts[b0 + i]) + n_in - 1, step, inputs, obs, mask, preds, meta
                        ),
                    )
                sync()
                timings.add("metrics", time.perf_counter() - t0)
                progress.advance(task, len(frames))
    finally:
        reader.close()
    assert best[2] is not None
    return accs, (best[1], best[2])


@contextlib.contextmanager
def _metric_threads(device: torch.device) -> Iterator[None]:
    """Run the metrics on one CPU thread (models keep all of them).

    The metrics are a few dozen cheap elementwise passes; torch's per-op thread barriers
    cost more than they save, dramatically so when other processes share the cores."""
    if device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _example_choice(
    b0: int, wanted: int | None, obs: torch.Tensor, mask: torch.Tensor, best: float
) -> tuple[int, float] | None:
    """(index in the batch, wetness) of a window to keep for the example panel, or None.

    ``wanted`` is the window's index in the split (None: the wettest, by mean observed gray
    level over the counting pixels, replacing the best so far only when wetter)."""
    if wanted is not None:
        return (wanted - b0, 0.0) if b0 <= wanted < b0 + obs.shape[0] else None
    m = mask[:, None].to(obs.dtype)
    wet = (obs * m).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)).clamp_min(1) * obs.shape[1])
    i = int(torch.argmax(wet))
    return (i, float(wet[i])) if float(wet[i]) > best else None


def _example(i, last_input, step, inputs, obs, mask, preds, meta: StoreMeta) -> Example:
    """Window ``i`` of the batch, copied to the CPU for the example panel."""
    return Example(
        time=meta.times[last_input],
        frame_minutes=step,
        inputs=inputs[i].cpu().numpy(),
        observed=obs[i].cpu().numpy(),
        forecasts={name: p[i].float().cpu().numpy() for name, p in preds.items()},
        mask=mask[i].cpu().numpy(),
    )


def check_report_folder(out: Path, inputs: Sequence[str | os.PathLike]) -> Path:
    """The report folder to write (a symlink's target), checked before any work: UserError
    unless it is absent or a folder holding only report files (:data:`REPORT_FILES`), and
    a folder can be made beside it. ``inputs``: the store and checkpoints, which must not
    be inside it (the whole folder is replaced)."""
    what = "evaluate.out (--out)"
    if out.is_symlink():
        out = out.resolve()
    check_output(out, what, folder=True, inputs=inputs)
    if out.is_dir():
        for source in with_config(inputs):
            if Path(os.path.abspath(source)).is_relative_to(os.path.abspath(out)):
                raise UserError(f"{what}: {out} holds the input {source}; choose another folder")
        try:
            foreign = sorted(set(os.listdir(out)) - set(REPORT_FILES))
        except OSError as exc:
            raise UserError(f"{what}: {out}: cannot list it: {exc.strerror or exc}") from None
        if foreign:
            raise UserError(
                f"{what}: {out} holds {out / foreign[0]}, which is not part of a report; the "
                "report replaces the whole folder, so choose an empty or a new one"
            )
    return out


def _write_outputs(
    out: Path,
    cfg: Config,
    results: dict[str, MethodResult],
    run: RunInfo,
    example: Example,
    scale: GrayScale,
    example_leads: list[int],
) -> None:
    """Write every output into a new folder beside ``out``, then put it at ``out`` in one
    step (:func:`nowcast.atomic.replace_folder`): ``out`` is the complete old report or the
    complete new one, never a mix; a failure leaves the old one untouched."""
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(out, "report")
        scores = {name: r.scores for name, r in results.items()}
        plot_csi(scores, run.lead_minutes, tmp / PLOTS[0])
        plot_errors(scores, run.lead_minutes, tmp / PLOTS[1])
        plot_example(example, scale, example_leads, tmp / PLOTS[2])
        (tmp / "report.md").write_text(report_markdown(results, run))
        (tmp / "report.json").write_text(report_json(results, run))
        (tmp / "config.yaml").write_text(config_to_yaml(cfg))
        replace_folder(tmp, out)
        tmp = None
    except (OSError, RuntimeError) as exc:
        if is_write_failure(exc, out):
            raise write_error(out, exc) from None
        raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
