"""`nowcast predict`: new radar files → the checkpoint's preprocessing → model → CF-netCDF.

    path = predict(cfg, "runs/run/checkpoints/best.pt", ["data/new/"], "nowcast.nc",
                   png="pngs/", gif="nowcast.gif")

The steps, each a plain function that ``scripts/bench_predict.py`` times on its own:

1. :func:`read_inputs` — expand ``--input`` (files, directories, globs), read every frame
   with the readers of :mod:`nowcast.io` (Z–R and frame interval from the checkpoint;
   ``input.variable`` from the config, else the one training named), keep the newest
   ``n_in`` and check them
   (:mod:`nowcast.predict.inputs`).
2. :func:`prepare` — the very per-frame transform of training
   (:func:`nowcast.preprocess.transform.transform_field` with the checkpoint's settings,
   then the store's uint8 quantisation), the 100×100 grid's coordinates inside the input
   grid, and the mask of pixels the nowcast is given for.
3. :func:`forecast` — the network on ``(1, n_in, 1, h, w)`` gray levels.
4. :func:`nowcast_fields` + :func:`~nowcast.predict.writer.write_nowcast` — gray levels →
   dBZ and mm/h, masked pixels NaN, written atomically; PNG/GIF on request.

**Outputs.** Every output location (``--out``, ``--png`` and each PNG in it, ``--gif``) is
checked before any work (:func:`check_outputs`); the files are written to temporaries and
renamed into place together once all were written (:class:`nowcast.atomic.OutputSet`).

**Mask.** A nowcast pixel is given (not NaN) when its cell lies wholly inside radar
coverage in every input frame and, if the input is on the checkpoint's own grid, inside
the training coverage and outside the noise mask. Noise mask: by default the mask of the
calendar month of the last input frame, or of the nearest month the checkpoint has (the
rule training uses for a window); ``predict.noise_mask: union`` takes every month's. When
the input grid is not the training grid (another radar), the training masks say nothing
about it: they are not applied, and a warning says so. Where the noise mask is applied,
its pixels are also set to no echo in the input frames, as in training and evaluate.

**Rain rate.** ``rainfall_rate`` is Z = a·R^b of ``reflectivity`` (the checkpoint's a, b),
except where the predicted gray level rounds to 0 in the store's uint8 quantisation (below
z_min + ½ gray step: "no echo"), where it is 0.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast import __version__
from nowcast.atomic import OutputSet
from nowcast.config import Config
from nowcast.config.input import InputConfig
from nowcast.errors import UserError
from nowcast.io import Frame, expand_inputs, read_frames
from nowcast.io.crs import same_crs
from nowcast.io.frame import jsonable, no_pixels
from nowcast.io.paths import path_text
from nowcast.outputs import check_distinct, check_output
from nowcast.precision import autocast, precision_line, resolve_amp
from nowcast.predict.inputs import check_data, check_grid, check_same_grid, select_newest
from nowcast.predict.pictures import png_paths, render, write_gif, write_pngs
from nowcast.predict.trained import TrainedModel
from nowcast.predict.writer import write_nowcast
from nowcast.preprocess.crop import crop_origin
from nowcast.preprocess.transform import output_coordinates, transform_field
from nowcast.progress import info, track, warn
from nowcast.timings import Timings
from nowcast.units import dbz_to_rate, gray_to_uint8, uint8_to_gray

#: gray levels below this round to uint8 0, the store's "no echo"
NO_ECHO_GRAY = 0.5 / 255.0


@dataclass
class Prepared:
    """The model's inputs and where the nowcast lives.

    frames: (n_in, h, w) uint8, exactly as a training store would hold them;
    mask: (h, w) bool, pixels the nowcast is given for; x (w,), y (h,) cell centres [m].
    """

    frames: np.ndarray
    mask: np.ndarray
    x: np.ndarray
    y: np.ndarray
    grid_mapping: dict[str, Any]
    mask_note: str


def read_inputs(
    specs: Sequence[str | os.PathLike],
    input_cfg: InputConfig,
    trained: TrainedModel,
    tolerance_minutes: float,
) -> list[Frame]:
    """The newest ``trained.n_in`` frames of ``specs``, oldest first, checked (UserErrors name
    the file): consecutive at the model's interval, no duplicate, one grid at least as large
    as the crop, data inside the crop.

    Every file's header is read (time, grid, field and units are checked in all of them),
    but only the chosen frames' fields are decoded, so a large folder costs little more
    than its newest files."""
    if not specs:
        raise UserError("--input: no radar files given")
    if input_cfg.variable is None and trained.input_variable is not None:
        input_cfg = input_cfg.model_copy(update={"variable": trained.input_variable})
    files = expand_inputs(specs, input_cfg.pattern)
    # first only the times (headers: no field is decoded), then the chosen frames in full
    times: list[np.datetime64] = []
    where: list[tuple[Path, int]] = []  # (file, index of the frame in it)
    items = track(files, "scanning radar files") if len(files) > 20 else files
    for path in items:
        stamps = read_frames(path, input_cfg, trained.zr, trained.interval_minutes, no_pixels)
        for k, frame in enumerate(stamps):
            times.append(np.datetime64(frame.time, "s"))
            where.append((path, k))
    paths = [p for p, _ in where]
    chosen = select_newest(times, paths, trained.n_in, trained.interval_minutes, tolerance_minutes)
    read: dict[Path, list[Frame]] = {}
    frames = []
    for i in chosen:
        path, k = where[i]
        if path not in read:
            read[path] = read_frames(path, input_cfg, trained.zr, trained.interval_minutes)
        frames.append(read[path][k])
    settings = trained.settings
    first = frames[0]
    for frame in frames:
        path = frame.path or Path("?")
        check_grid(path, frame.shape, (settings.crop, settings.crop))
        check_same_grid(path, frame.x, frame.y, first.path or Path("?"), first.x, first.y)
        r0, c0 = crop_origin(frame.shape, settings.crop)
        crop = (slice(r0, r0 + settings.crop), slice(c0, c0 + settings.crop))
        check_data(path, frame.dbz, crop)
    return frames


def prepare(frames: Sequence[Frame], trained: TrainedModel, noise_policy: str) -> Prepared:
    """Training's per-frame transform on each frame, the output grid, the nowcast mask.

    On the checkpoint's own grid the noise mask (``noise_policy``) is set to 0 (no echo) in
    every input frame, as training and evaluate do."""
    settings = trained.settings
    u8, covered = [], []
    for frame in frames:
        gray, cov = transform_field(frame.dbz, settings)
        u8.append(gray_to_uint8(gray))
        covered.append(cov)
    first = frames[0]
    x, y = output_coordinates(first.x, first.y, settings)
    mask = np.logical_and.reduce(covered)
    if _same_grid(x, y, first.grid_mapping, trained):
        noise = trained.noise_mask_for(frames[-1].time, noise_policy)
        mask &= trained.coverage & ~noise
        for frame in u8:  # the network's inputs: clutter is no echo, as in training
            frame[noise] = 0
        if noise_policy == "union":
            note = (
                f"training coverage and the union of the noise masks of {', '.join(trained.months)}"
            )
        else:
            note = (
                f"training coverage and the noise mask of {trained.nearest_month(frames[-1].time)} "
                "(nearest month)"
            )
    else:
        note = "input coverage only: the input grid is not the checkpoint's training grid"
        warn(
            f"{first.path}: the input grid is not the grid {trained.path.name} was trained on; "
            "its noise mask and coverage are not applied"
        )
    return Prepared(
        frames=np.stack(u8),
        mask=mask,
        x=x,
        y=y,
        grid_mapping=dict(first.grid_mapping),
        mask_note=note,
    )


def forecast(
    model: torch.nn.Module,
    frames_u8: np.ndarray,
    leads: int,
    threads: int = 0,
    amp: torch.dtype | None = None,
) -> np.ndarray:
    """(n_in, h, w) uint8 store frames → (leads, h, w) float32 gray levels in [0, 1].

    threads: torch CPU threads for the call (0: leave torch's setting); restored after.
    amp: autocast dtype of the forward pass on the CPU (None: float32).
    """
    inputs = torch.from_numpy(uint8_to_gray(frames_u8))[None, :, None]
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode(), autocast(inputs.device, amp):
            out = model(inputs, leads)
    finally:
        torch.set_num_threads(before)
    return out[0, :, 0].float().numpy()


def nowcast_fields(
    gray: np.ndarray, mask: np.ndarray, trained: TrainedModel
) -> tuple[np.ndarray, np.ndarray]:
    """Gray levels (L, h, w) → (reflectivity dBZ, rain rate mm/h), NaN outside ``mask``."""
    s = trained.scale
    gray = np.asarray(gray, dtype=np.float64)
    dbz = s.z_min + gray * (s.z_max - s.z_min)
    rate = np.where(gray < NO_ECHO_GRAY, 0.0, dbz_to_rate(dbz, s.a, s.b))
    off = ~np.broadcast_to(mask, gray.shape)
    dbz[off] = np.nan
    rate[off] = np.nan
    return dbz, rate


def check_outputs(
    out: str | os.PathLike,
    png: str | os.PathLike | None,
    gif: str | os.PathLike | None,
    inputs: Sequence[str | os.PathLike] = (),
) -> None:
    """UserError (naming the option and path) for outputs that could not be written where
    they are asked for, checked before any work (:func:`nowcast.outputs.check_output`): an
    existing folder or special file as ``--out`` / ``--gif``, an existing file as ``--png``,
    an input (``inputs``: radar files, checkpoint) as any of them, two options naming the
    same path, or a place where nothing can be written."""
    check_distinct((("--out", out), ("--gif", gif), ("--png", png)))
    check_output(out, "--out", inputs=inputs)
    if gif is not None:
        check_output(gif, "--gif", inputs=inputs)
    if png is not None:
        check_output(png, "--png", folder=True, inputs=inputs)


def predict(
    cfg: Config,
    checkpoint: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    png: str | os.PathLike | None = None,
    gif: str | os.PathLike | None = None,
    timings: Timings | None = None,
) -> Path:
    """Nowcast from the newest frames of ``inputs`` with ``checkpoint``; returns ``out``.

    ``png``: folder for one PNG per lead; ``gif``: animated GIF file. Every check runs
    before anything is written; UserError (naming the file) on bad input. ``timings``, when
    given, gets the seconds of the steps ``load_checkpoint``, ``read``, ``preprocess``,
    ``model``, ``write`` and ``pictures``.
    """
    pc = cfg.predict
    sources = [checkpoint, *(expand_inputs(inputs, cfg.input.pattern) if inputs else [])]
    check_outputs(out, png, gif, sources)
    t = timings or Timings()
    clock = time.perf_counter()
    trained = TrainedModel.load(checkpoint)
    model = trained.build_model()
    t.add("load_checkpoint", time.perf_counter() - clock)
    leads = pc.leads or trained.n_out
    lead_minutes = trained.interval_minutes * np.arange(1, leads + 1)
    for path in png_paths(png, lead_minutes) if png is not None else []:
        check_output(path, "--png", inputs=sources)

    clock = time.perf_counter()
    frames = read_inputs(inputs, cfg.input, trained, pc.time_tolerance_minutes)
    t.add("read", time.perf_counter() - clock)

    clock = time.perf_counter()
    prep = prepare(frames, trained, pc.noise_mask)
    t.add("preprocess", time.perf_counter() - clock)

    clock = time.perf_counter()
    amp = resolve_amp(pc.amp, torch.device("cpu"), "predict.amp")
    info(precision_line(amp, torch.device("cpu"), pc.amp))
    gray = forecast(model, prep.frames, leads, pc.threads, amp)
    t.add("model", time.perf_counter() - clock)

    clock = time.perf_counter()
    dbz, rate = nowcast_fields(gray, prep.mask, trained)
    reference = np.datetime64(frames[-1].time, "s")
    t.add("write", time.perf_counter() - clock)

    clock = time.perf_counter()  # pictures are drawn before anything is written
    images = None
    if png is not None or gif is not None:
        images = render(rate, reference, lead_minutes, prep.x, prep.y, pc.dpi)
    t.add("pictures", time.perf_counter() - clock)

    clock = time.perf_counter()
    with OutputSet() as outputs:  # the files appear together, after all were written
        path = write_nowcast(
            out,
            dbz,
            rate,
            reference,
            lead_minutes,
            prep.x,
            prep.y,
            prep.grid_mapping,
            global_attributes(trained, frames, prep, leads),
            outputs=outputs,
        )
        t.add("write", time.perf_counter() - clock)
        clock = time.perf_counter()
        if images is not None and png is not None:
            write_pngs(png, images, lead_minutes, outputs=outputs)
        if images is not None and gif is not None:
            write_gif(gif, images, pc.gif_frame_ms, outputs=outputs)
    t.add("pictures", time.perf_counter() - clock)
    return path


def global_attributes(
    trained: TrainedModel, frames: Sequence[Frame], prep: Prepared, leads: int
) -> dict[str, Any]:
    """The nowcast file's global attributes: what made it, from what (no time stamps)."""
    return {
        "title": "radar precipitation nowcast",
        "source": f"nowcast {__version__}, {trained.model_name} network",
        "model": trained.model_name,
        "model_config": json.dumps(trained.model_cfg.model_dump(mode="json"), sort_keys=True),
        "checkpoint": str(trained.path),
        "checkpoint_sha256": trained.sha256,
        "checkpoint_step": -1 if trained.step is None else int(trained.step),
        "input_files": [path_text(f.path) for f in frames],
        "input_times": [str(np.datetime64(f.time, "s")) + "Z" for f in frames],
        "nowcast_version": __version__,
        "preprocess": json.dumps(jsonable(trained.preprocess), sort_keys=True),
        "leads_trained": trained.n_out,
        "leads": leads,
        "mask": prep.mask_note,
        "comment": (
            "reflectivity = z_min + P (z_max - z_min) of the predicted gray level P; "
            "rainfall_rate = (10^(dBZ/10) / a)^(1/b), 0 where P rounds to 0 (no echo); "
            "fill = not predicted (outside coverage or noise)"
        ),
    }


def _same_grid(
    x: np.ndarray, y: np.ndarray, mapping: dict[str, Any], trained: TrainedModel
) -> bool:
    """Whether the output grid (x, y, grid mapping) is the checkpoint's training grid."""
    if x.shape != trained.grid_x.shape or y.shape != trained.grid_y.shape:
        return False
    step = abs(float(x[1] - x[0])) if x.size > 1 else 0.0
    step = step if step > 0 else 1.0  # metres or degrees: 1 % of a cell either way
    close = np.allclose(x, trained.grid_x, rtol=0, atol=0.01 * step) and np.allclose(
        y, trained.grid_y, rtol=0, atol=0.01 * step
    )
    if not close:
        return False
    return same_crs(mapping, trained.grid_mapping)
