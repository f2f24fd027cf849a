"""Synthetic radar archive: one CF-netCDF reflectivity file per frame, like a single-radar product.

What a frame holds (``size`` × ``size`` grid, ``pixel_km`` spacing, azimuthal-equidistant
projection around a fictitious radar):

* rain: two periodic power-law ("multi-scale") random fields whose mixture rotates slowly in
  time (growth and decay of cells: the field at a point decorrelates over ~90 min, a
  quarter of :data:`EVOLUTION_HOURS`), advected at 35–55 km/h (:data:`SPEED_KMH`, one speed
  per seed) by a slowly turning velocity, thresholded by a
  slowly varying level that gives widespread rain, scattered showers and dry spells (each
  day passes through a dry spell and a wet spell);
* no echo: ``NO_ECHO_DBZ`` (−32 dBZ, as FMI); outside the circular coverage: NaN;
* ground clutter: fixed patches (discs, and one radial spoke when there are ≥ 2 patches)
  of strong echo present in ~90 % of frames, listed in ``clutter_mask.nc``;
* missing frames: ``missing_per_day`` frames a day are not written (``manifest.json``).

Every day is seeded by (seed, date), so a day is identical whatever ``start``/``days`` are.
"""

from __future__ import annotations

import datetime as dt
import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np

from nowcast.atomic import atomic_path, write_error, write_text_atomic
from nowcast.config.synth import SynthConfig
from nowcast.errors import UserError
from nowcast.outputs import check_output
from nowcast.progress import track

NO_ECHO_DBZ = -32.0
CLUTTER_DBZ = 50.0
FILL_INT16 = np.int16(-32768)
SPEED_KMH = (35.0, 55.0)  # range of the archive's advection speed (drawn once per seed)
EVOLUTION_HOURS = 6.0  # period of the mixture's rotation: cells decorrelate over ~90 min
DBZ_SCALE = 0.01  # packed int16 resolution [dBZ]
FIELD_SIZE = 1024  # period of the base random fields [px]
TIME_UNITS = "minutes since 1970-01-01 00:00:00"
EPOCH = dt.datetime(1970, 1, 1)
RADAR_LAT, RADAR_LON = 22.41, 114.12  # a made-up site


#: most frames one run writes (about 11 years at 6 minutes; a frame file is ~0.1 MB)
MAX_FRAMES = 1_000_000


@dataclass(frozen=True)
class Archive:
    """What :func:`synthesize` wrote: ``present`` holds the valid time of every frame file,
    (N,) datetime64[m] in time order (8 bytes a frame); :attr:`files` names them."""

    folder: Path
    present: np.ndarray
    missing: list[dt.datetime]
    clutter_file: Path
    manifest_file: Path

    @property
    def files(self) -> list[Path]:
        """The frame files, in time order."""
        return [self.folder / frame_filename(t) for t in self.present.astype(dt.datetime)]


def frame_filename(time: dt.datetime) -> str:
    """File name of the frame valid at ``time`` (UTC), e.g. ``synth_202406010006.nc``."""
    return f"synth_{time:%Y%m%d%H%M}.nc"


def frame_times(cfg: SynthConfig) -> list[dt.datetime]:
    """All nominal frame times of the archive (missing ones included), ``interval_minutes`` apart."""
    start = dt.datetime.combine(cfg.start, dt.time())
    per_day = 24 * 60 // cfg.interval_minutes
    step = dt.timedelta(minutes=cfg.interval_minutes)
    return [start + i * step for i in range(cfg.days * per_day)]


def coverage_mask(size: int) -> np.ndarray:
    """Circular radar coverage, ``(size, size)`` bool: True inside radius ``size/2 − 1`` pixels."""
    r = _radius_px(size)
    return r <= size / 2.0 - 1.0


def clutter_mask(cfg: SynthConfig) -> np.ndarray:
    """Fixed ground-clutter pixels, ``(size, size)`` bool; the same for every day of a seed.

    Patches lie between 15 % and 60 % of the coverage radius from the radar, so that they
    survive a central crop of ~70 % of the grid.
    """
    n, size = cfg.clutter_patches, cfg.size
    mask = np.zeros((size, size), dtype=bool)
    if n == 0:
        return mask
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7919]))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2.0
    r_max = size / 2.0
    n_discs = n - 1 if n >= 2 else n
    for _ in range(n_discs):
        dist = rng.uniform(0.15, 0.6) * r_max
        ang = rng.uniform(0, 2 * np.pi)
        cy, cx = c - dist * np.cos(ang), c + dist * np.sin(ang)
        rad = rng.uniform(0.018, 0.03) * size
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rad**2
    if n >= 2:  # a radial spoke, like the Melbourne one
        ang = rng.uniform(0, 2 * np.pi)
        uy, ux = -np.cos(ang), np.sin(ang)
        along = (yy - c) * uy + (xx - c) * ux
        across = np.abs(-(yy - c) * ux + (xx - c) * uy)
        mask |= (along >= 0.12 * r_max) & (along <= 0.5 * r_max) & (across <= 0.012 * size)
    return mask & coverage_mask(size)


def synthesize(cfg: SynthConfig) -> Archive:
    """Write the archive described by ``cfg`` into ``cfg.out`` and return what was written.

    Files: one ``synth_YYYYMMDDHHMM.nc`` per present frame, ``clutter_mask.nc`` and
    ``manifest.json`` (written last). Each file is written atomically. The size and the
    output folder are checked first (UserError naming ``synth.days`` / ``synth.out``);
    memory does not grow with the archive beyond 8 bytes a frame.
    """
    total = check_size(cfg)
    out = check_output(cfg.out, "synth.out", folder=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc) from None
    clutter = clutter_mask(cfg)
    x, y = grid_coordinates(cfg.size, cfg.pixel_km)
    present = array("q")  # minutes since 1970, 8 bytes a frame
    missing: list[dt.datetime] = []
    frames = iter_frames(cfg, clutter)
    for time, field in track(frames, "synth: frames", total=total):
        if field is None:
            missing.append(time)
            continue
        write_frame(out / frame_filename(time), time, field, x, y, cfg)
        present.append(int((time - EPOCH).total_seconds()) // 60)
    clutter_file = out / "clutter_mask.nc"
    _write_clutter(clutter_file, clutter, x, y)
    manifest = {
        "generator": "nowcast synth",
        "config": cfg.model_dump(mode="json"),
        "frames_written": len(present),
        "missing": [f"{t:%Y-%m-%dT%H:%M}" for t in missing],
        "clutter_file": clutter_file.name,
        "clutter_pixels": int(clutter.sum()),
    }
    manifest_file = write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2))
    minutes = np.frombuffer(present, dtype=np.int64).astype("timedelta64[m]")
    return Archive(out, np.datetime64(EPOCH, "m") + minutes, missing, clutter_file, manifest_file)


def check_size(cfg: SynthConfig) -> int:
    """Frames the archive has (missing ones included); UserError naming ``synth.days`` when
    that is more than :data:`MAX_FRAMES` or the last day is past the calendar's end."""
    per_day = 24 * 60 // cfg.interval_minutes
    total = cfg.days * per_day
    if total > MAX_FRAMES:
        raise UserError(
            f"synth.days: {cfg.days} days at synth.interval_minutes {cfg.interval_minutes} are "
            f"{total} frames, more than the {MAX_FRAMES} one run writes"
        )
    if (dt.date.max - cfg.start).days < cfg.days - 1:
        raise UserError(f"synth.days: {cfg.days} days from {cfg.start} run past the year 9999")
    return total


def iter_frames(
    cfg: SynthConfig, clutter: np.ndarray | None = None
) -> Iterator[tuple[dt.datetime, np.ndarray | None]]:
    """Yield ``(time, dBZ field (size, size) float32)`` per frame; the field is None if missing."""
    if clutter is None:
        clutter = clutter_mask(cfg)
    per_day = 24 * 60 // cfg.interval_minutes
    cover = coverage_mask(cfg.size)
    clutter_px = np.flatnonzero(clutter)
    for d in range(cfg.days):
        day = cfg.start + dt.timedelta(days=d)
        yield from _day_frames(cfg, day, per_day, cover, clutter_px)


# --------------------------------------------------------------------------- internals


def _day_frames(cfg, day: dt.date, per_day: int, cover: np.ndarray, clutter_px: np.ndarray):
    day_seed = np.random.SeedSequence([cfg.seed, day.toordinal()])
    rng = np.random.default_rng(day_seed)
    f1 = _periodic_pad(_powerlaw_field(rng, FIELD_SIZE), cfg.size)
    f2 = _periodic_pad(_powerlaw_field(rng, FIELD_SIZE), cfg.size)
    missing = set(
        rng.choice(per_day, size=min(cfg.missing_per_day, per_day), replace=False).tolist()
    )
    clutter_on = rng.random(per_day) < 0.9
    # a global (seed-only) clock makes velocity and wetness continuous across midnight
    glob = np.random.default_rng(np.random.SeedSequence([cfg.seed, 104729]))
    speed_kmh = glob.uniform(*SPEED_KMH)
    heading = glob.uniform(0, 2 * np.pi)
    wet_phase = glob.uniform(0, 2 * np.pi)
    evolve_phase = glob.uniform(0, 2 * np.pi)
    day_start = dt.datetime.combine(day, dt.time())
    minutes = (day_start - EPOCH).total_seconds() / 60.0 + cfg.interval_minutes * np.arange(per_day)
    hours = minutes / 60.0
    ang = heading + 0.6 * np.sin(2 * np.pi * hours / 18.0)
    step_px = speed_kmh * cfg.interval_minutes / 60.0 / cfg.pixel_km
    vy, vx = step_px * np.sin(ang), step_px * np.cos(ang)
    pos_y = np.cumsum(vy) - vy[0] + rng.uniform(0, FIELD_SIZE)
    pos_x = np.cumsum(vx) - vx[0] + rng.uniform(0, FIELD_SIZE)
    # wetness threshold: from 0.2 (widespread, ~40 % wet) to 3.2 (dry) once a day
    level = 1.7 + 1.5 * np.sin(2 * np.pi * hours / 24.0 + wet_phase)
    theta = 2 * np.pi * hours / EVOLUTION_HOURS + evolve_phase  # a quarter turn: independent
    size = cfg.size
    noise_rng = np.random.default_rng(day_seed.spawn(1)[0])
    for k in range(per_day):
        time = day_start + dt.timedelta(minutes=cfg.interval_minutes * k)
        if k in missing:
            yield time, None
            continue
        g = np.float32(np.cos(theta[k])) * _window(f1, pos_y[k], pos_x[k], size)
        g += np.float32(np.sin(theta[k])) * _window(f2, pos_y[k], pos_x[k], size)
        g -= np.float32(level[k])
        dbz = np.minimum(np.float32(12.0) + np.float32(14.0) * g, np.float32(62.0))
        dbz[g <= 0] = NO_ECHO_DBZ
        if clutter_on[k] and clutter_px.size:
            flat = dbz.reshape(-1)
            clutter_val = CLUTTER_DBZ + 3.0 * noise_rng.standard_normal(clutter_px.size)
            flat[clutter_px] = np.maximum(flat[clutter_px], clutter_val.astype(np.float32))
        dbz[~cover] = np.nan
        yield time, dbz


def _powerlaw_field(rng: np.random.Generator, n: int, beta: float = 3.2) -> np.ndarray:
    """Periodic Gaussian field ``(n, n)`` with power spectrum ∝ k^(−beta), zero mean, unit std."""
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    amp = k ** (-beta / 2.0)
    noise = rng.standard_normal((n, n // 2 + 1)) + 1j * rng.standard_normal((n, n // 2 + 1))
    field = np.fft.irfft2(noise * amp, s=(n, n))
    field -= field.mean()
    field /= field.std()
    return field.astype(np.float32)


def _periodic_pad(field: np.ndarray, size: int) -> np.ndarray:
    """The periodic field extended by ``size + 1`` wrapped rows/columns, so windows are slices."""
    return np.pad(field, ((0, size + 1), (0, size + 1)), mode="wrap")


def _window(padded: np.ndarray, py: float, px: float, size: int) -> np.ndarray:
    """Bilinearly interpolated ``(size, size)`` window at offset (py, px) of a padded periodic field."""
    n = padded.shape[0] - size - 1
    iy, ix = int(np.floor(py)), int(np.floor(px))
    fy, fx = np.float32(py - iy), np.float32(px - ix)
    iy, ix = iy % n, ix % n
    block = padded[iy : iy + size + 1, ix : ix + size + 1]
    top = block[:-1, :-1] * (1 - fx) + block[:-1, 1:] * fx
    bottom = block[1:, :-1] * (1 - fx) + block[1:, 1:] * fx
    return top * (1 - fy) + bottom * fy


def _radius_px(size: int) -> np.ndarray:
    c = (size - 1) / 2.0
    yy, xx = np.ogrid[0:size, 0:size]
    return np.hypot(yy - c, xx - c)


def grid_coordinates(size: int, pixel_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Projected pixel-centre coordinates ``(x, y)`` in metres; y decreases down the rows."""
    centre = (np.arange(size) - (size - 1) / 2.0) * pixel_km * 1000.0
    return centre.copy(), centre[::-1].copy()


def _define_grid(nc: netCDF4.Dataset, x: np.ndarray, y: np.ndarray) -> None:
    nc.createDimension("y", y.size)
    nc.createDimension("x", x.size)
    vx = nc.createVariable("x", "f8", ("x",))
    vx[:] = x
    vx.setncatts({"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"})
    vy = nc.createVariable("y", "f8", ("y",))
    vy[:] = y
    vy.setncatts({"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"})
    crs = nc.createVariable("crs", "i4")
    crs.setncatts(
        {
            "grid_mapping_name": "azimuthal_equidistant",
            "latitude_of_projection_origin": RADAR_LAT,
            "longitude_of_projection_origin": RADAR_LON,
            "false_easting": 0.0,
            "false_northing": 0.0,
            "semi_major_axis": 6378137.0,
            "inverse_flattening": 298.257223563,
        }
    )


def write_frame(
    path: Path, time: dt.datetime, dbz: np.ndarray, x: np.ndarray, y: np.ndarray, cfg: SynthConfig
) -> None:
    """Write one CF-1.8 frame: ``reflectivity(time=1, y, x)`` dBZ packed as int16, NaN as fill."""
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts(
                {
                    "Conventions": "CF-1.8",
                    "title": "nowcast synthetic radar reflectivity",
                    "source": "nowcast synth (synthetic data, not an observation)",
                    "institution": "nowcast",
                    "seed": cfg.seed,
                }
            )
            nc.createDimension("time", 1)
            _define_grid(nc, x, y)
            vt = nc.createVariable("time", "f8", ("time",))
            vt[:] = (time - EPOCH).total_seconds() / 60.0
            vt.setncatts({"standard_name": "time", "units": TIME_UNITS, "calendar": "standard"})
            var = nc.createVariable(
                "reflectivity",
                "i2",
                ("time", "y", "x"),
                zlib=True,
                complevel=1,
                fill_value=FILL_INT16,
                chunksizes=(1, y.size, x.size),
            )
            var.setncatts(
                {
                    "standard_name": "equivalent_reflectivity_factor",
                    "long_name": "equivalent reflectivity factor, lowest elevation",
                    "units": "dBZ",
                    "scale_factor": np.float32(DBZ_SCALE),
                    "add_offset": np.float32(0.0),
                    "grid_mapping": "crs",
                    "comment": f"{NO_ECHO_DBZ:g} dBZ = no echo; fill = outside radar coverage",
                }
            )
            var.set_auto_maskandscale(False)
            packed = np.where(np.isnan(dbz), FILL_INT16, np.rint(np.nan_to_num(dbz) / DBZ_SCALE))
            var[0] = packed.astype(np.int16)


def _write_clutter(path: Path, clutter: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts({"Conventions": "CF-1.8", "title": "ground-clutter pixels of the archive"})
            _define_grid(nc, x, y)
            var = nc.createVariable("clutter", "u1", ("y", "x"), zlib=True)
            var.setncatts(
                {"long_name": "fixed ground clutter (1 = clutter)", "grid_mapping": "crs"}
            )
            var[:] = clutter.astype(np.uint8)
