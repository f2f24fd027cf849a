"""Fair inputs and the prior: clutter (the noise mask) is no echo in every method's inputs
(evaluate, training windows, predict), and a network held to its extrapolation prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from nowcast.config import load_config
from nowcast.data import WindowDataset
from nowcast.evaluate.baselines import build_baselines
from nowcast.evaluate.methods import ModelMethod
from nowcast.evaluate.stage import Method, _score, frame_minutes
from nowcast.models import build
from nowcast.predict import predict
from nowcast.store import FrameReader, StoreWriter, read_meta, window_starts
from nowcast.timings import Timings
from nowcast.units import GrayScale, dbz_to_gray, gray_to_uint8
from tests.predict_support import blob, config, make_checkpoint, write_frames

N_IN, N_OUT = 3, 4
SIZE = 32
PRE = {"z_min": -10.0, "z_max": 60.0, "zr": {"a": 200.0, "b": 1.6}, "source": "test discs"}


def _disc(cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


#: static clutter discs: the June one is flagged in June's noise mask, the July one in July's
JUNE_DISC, JULY_DISC = _disc(7, 7, 3.5), _disc(24, 7, 3.5)


def _frames(n: int) -> np.ndarray:
    """``n`` frames (dBZ): a rain cell moving right by 1 px a frame in the upper right
    quarter, and both clutter discs at 50 dBZ in every frame."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dbz = np.full((n, SIZE, SIZE), -32.0)
    for t in range(n):
        cell = 45.0 - 3.0 * ((yy - 8.0) ** 2 + (xx - 18.0 - t) ** 2)
        dbz[t] = np.where(cell > 0, cell, -32.0)
    dbz[:, JUNE_DISC | JULY_DISC] = 50.0
    return dbz


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A test split of 2 blocks of 10 frames, 6 minutes apart, across 30 June / 1 July."""
    path = tmp_path_factory.mktemp("clutter") / "store.nc"
    n, block_len = 20, 10
    times = np.datetime64("2024-06-30T23:00", "s") + np.arange(n) * np.timedelta64(6, "m")
    x = (np.arange(SIZE) - SIZE / 2 + 0.5) * 1000.0
    noise = np.stack([JUNE_DISC, JULY_DISC])
    gm = {"grid_mapping_name": "azimuthal_equidistant", "latitude_of_projection_origin": 47.0}
    gm["longitude_of_projection_origin"] = 8.0
    with StoreWriter(path, times, x, -x, gm, PRE) as wr:
        wr.write_frames(0, gray_to_uint8(dbz_to_gray(_frames(n), PRE["z_min"], PRE["z_max"])))
        return wr.finish(
            np.ones(n, bool),
            np.repeat(np.arange(2, dtype=np.int32), block_len),
            np.full(n, 2, np.int8),  # every frame: test
            ["2024-06", "2024-07"],
            noise,
            np.ones((SIZE, SIZE), bool),
        )


class Recorded:
    """A forecast method that keeps every batch it was handed and what it returned."""

    def __init__(self, forecast):
        self.forecast = forecast
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, inputs: torch.Tensor, n_out: int) -> torch.Tensor:
        out = self.forecast(inputs, n_out)
        self.calls.append((inputs.clone(), out.clone()))
        return out


def _network_config(*sets: str):
    """A tiny ConvLSTM on top of LK extrapolation with a residual head, plus ``sets``."""
    tiny = ["model.layers=1", "model.hidden=4", "model.kernel=3", "model.patch=4"]
    on_prior = ["model.residual=true", "model.advection=true"]
    return load_config(None, [f"data.n_in={N_IN}", *tiny, *on_prior, *sets]).model


def _prior_network():
    """An untrained ConvLSTM on top of LK extrapolation (its head is zero: the prior)."""
    torch.manual_seed(0)
    return build("convlstm", _network_config()).eval()


def _scored_inputs(store):
    """Run evaluate's window loop with persistence, LK extrapolation and a prior-equivalent
    network, each recorded; returns (meta, starts, {name: Recorded})."""
    meta = read_meta(store)
    cfg = load_config(None, [f"data.n_in={N_IN}", f"data.n_out={N_OUT}", "evaluate.batch_size=5"])
    starts = window_starts(meta, "test", N_IN + N_OUT)
    forecasts = {**build_baselines(["persistence", "extrapolation"], 3)}
    forecasts["network"] = ModelMethod(_prior_network())
    methods = {name: Method("baseline", name, Recorded(f)) for name, f in forecasts.items()}
    scale = GrayScale.from_preprocess(meta.preprocess, str(meta.path), cfg.zr.model_dump())
    _score(meta, starts, methods, scale, cfg, torch.device("cpu"), frame_minutes(meta), Timings())
    return meta, starts, {name: m.forecast for name, m in methods.items()}


def test_every_methods_inputs_have_the_windows_noise_mask_as_no_echo(store):
    meta, starts, recorded = _scored_inputs(store)
    reader = FrameReader(store)
    try:
        raw = reader.read(0, meta.times.size).astype(np.float32) / 255.0
    finally:
        reader.close()
    months = [meta.month_index(meta.times[s]) for s in starts]
    assert set(months) == {0, 1}  # windows of both months
    for name, rec in recorded.items():
        got = torch.cat([inputs for inputs, _ in rec.calls])[:, :, 0].numpy()
        assert got.shape[0] == starts.size, name
        for i, (s, m) in enumerate(zip(starts, months)):
            noise = meta.noise_mask[m]
            expected = np.where(noise, 0.0, raw[s : s + N_IN])
            np.testing.assert_array_equal(got[i], expected, err_msg=f"{name} window {i}")
            # the other month's disc is not clutter in this window: it stays as stored
            other = meta.noise_mask[1 - m]
            assert got[i][:, other].min() > 0.8, (name, i)


def test_no_method_forecasts_the_clutter_disc(store):
    """Persistence, LK extrapolation and the network on top of it forecast no echo where
    the window's clutter disc is: nothing was there to advect."""
    meta, starts, recorded = _scored_inputs(store)
    months = [meta.month_index(meta.times[s]) for s in starts]
    for name, rec in recorded.items():
        out = torch.cat([o for _, o in rec.calls])[:, :, 0].numpy()
        assert out.shape == (starts.size, N_OUT, SIZE, SIZE)
        for i, m in enumerate(months):
            disc = meta.noise_mask[m]
            assert out[i][:, disc].max() < 0.05, (name, i, out[i][:, disc].max())
            assert out[i].max() > 0.5, (name, i)  # the rain cell is still forecast
    # the network with a zero head is its prior, the extrapolation, exactly
    ext = torch.cat([o for _, o in recorded["extrapolation"].calls])
    net = torch.cat([o for _, o in recorded["network"].calls])
    torch.testing.assert_close(net, ext, rtol=0, atol=0)


def test_training_windows_have_the_noise_mask_of_their_month_as_no_echo(store):
    meta = read_meta(store)
    ds = WindowDataset(meta, "test", N_IN, N_OUT)
    reader = FrameReader(store)
    try:
        raw = reader.read(0, meta.times.size).astype(np.float32) / 255.0
    finally:
        reader.close()
    seen = set()
    for i in range(len(ds)):
        x, y, mask = ds[i]
        s, m = int(ds.starts[i]), meta.month_index(ds.time(i))
        seen.add(m)
        window = np.where(meta.noise_mask[m], 0.0, raw[s : s + N_IN + N_OUT])
        np.testing.assert_array_equal(x[:, 0].numpy(), window[:N_IN])
        np.testing.assert_array_equal(y[:, 0].numpy(), window[N_IN:])
        np.testing.assert_array_equal(mask.numpy(), ~meta.noise_mask[m])
    assert seen == {0, 1}


def test_predict_inputs_have_the_noise_mask_as_no_echo(tmp_path):
    """A bright disc inside the checkpoint's noise mask changes nothing in the nowcast: the
    network reads those cells as no echo (it would otherwise spread into the neighbours)."""

    def with_clutter(k: int) -> np.ndarray:
        dbz = blob(k)
        yy, xx = np.mgrid[0 : dbz.shape[0], 0 : dbz.shape[1]]
        dbz[(yy - 60) ** 2 + (xx - 60) ** 2 <= 16] = 55.0
        return dbz

    minutes = [0, 6, 12]
    clean = write_frames(tmp_path / "clean", minutes)
    cluttered = write_frames(tmp_path / "clutter", minutes, field=with_clutter)
    noise = np.zeros((1, 100, 100), bool)
    noise[0, 5:22, 5:22] = True  # every cell the disc reaches after the crop and disk filter
    ckpt = make_checkpoint(tmp_path / "c.pt", clean[0], noise=noise, months=["2024-07"])
    free = make_checkpoint(tmp_path / "f.pt", clean[0], months=["2024-07"])
    a = predict(config(), ckpt, clean, tmp_path / "a.nc")
    b = predict(config(), ckpt, cluttered, tmp_path / "b.nc")
    c = predict(config(), free, cluttered, tmp_path / "c.nc")  # no noise mask: the disc is rain
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db, xr.open_dataset(c) as dc:
        ra, rb, rc = (d.reflectivity.values for d in (da, db, dc))
    np.testing.assert_array_equal(ra, rb)
    outside = ~noise[0]
    assert not np.array_equal(rc[:, outside], ra[:, outside])  # where the disc would leak


# ---------------------------------------------------------------- model.correction_scale
def _perturbed(scale) -> torch.nn.Module:
    """The prior network with ``model.correction_scale = scale`` and a non-zero head (as
    after training): its change to the extrapolation is not zero."""
    torch.manual_seed(0)
    model = build("convlstm", _network_config(f"model.correction_scale={scale}")).eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.3)
        model.head.bias.fill_(0.05)
    return model


def _moving_cells() -> torch.Tensor:
    """(2, N_IN, 1, 32, 32) gray: the store's rain cell, moving, without clutter."""
    dbz = _frames(N_IN)
    dbz[:, JUNE_DISC | JULY_DISC] = -32.0
    gray = torch.from_numpy(dbz_to_gray(dbz, PRE["z_min"], PRE["z_max"]).astype(np.float32))
    return torch.stack([gray, gray.flip(-1)])[:, :, None]


def test_zero_correction_scale_forecasts_exactly_the_prior_whatever_the_weights():
    x = _moving_cells()
    prior = build_baselines(["extrapolation"], 3)["extrapolation"](x, N_OUT).clamp(0, 1)
    with torch.no_grad():
        full = _perturbed(1.0)(x, N_OUT)
        zero = _perturbed(0.0)(x, N_OUT)
        per_lead = _perturbed([0.0, 1.0, 0.0])(x, N_OUT)  # lead 4 takes the last entry
    assert (full - prior).abs().max() > 0.05  # the head changes the forecast
    assert torch.equal(zero, prior)
    assert torch.equal(per_lead[:, [0, 2, 3]], prior[:, [0, 2, 3]])
    assert torch.equal(per_lead[:, 1], full[:, 1])
    with torch.no_grad():
        half = _perturbed(0.5)(x, N_OUT)
    # half the change, where nothing is clamped: between the prior and the full change
    inside = (full > 0) & (full < 1) & (half > 0) & (half < 1) & (prior > 0) & (prior < 1)
    torch.testing.assert_close(half[inside], ((full + prior) / 2)[inside], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (["model.correction_scale=[1.5]"], "model.correction_scale"),
        (["model.correction_scale=[]"], "model.correction_scale"),
        (["model.correction_scale=0.5"], "model.correction_scale"),  # without advection
        (["model.advection=true", "model.correction_scale=0.5"], "model.correction_scale"),
    ],
)
def test_bad_correction_scale_is_a_one_line_error_naming_the_key(tmp_path, sets, key):
    from typer.testing import CliRunner

    from nowcast.cli import app
    from tests.cli_support import assert_one_line_error, checksums

    store = tmp_path / "store.nc"
    store.write_bytes(b"")  # never read: the model is checked first
    before = checksums(tmp_path)
    args = ["train", "--set", f"data.store={store}", "--set", f"train.out_dir={tmp_path / 'run'}"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert_one_line_error(result, key)
    assert checksums(tmp_path) == before and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the recipe's choice
def _recipe():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_shipped.py"
    spec = importlib.util.spec_from_file_location("train_shipped", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(csi_by_lead: list[tuple[float, float]], n: int = 100) -> dict:
    """A report entry with thresholds (1, 2) mm/h whose counts give the CSIs wanted per
    lead: ``n`` events, hits = round(csi · n), the rest misses."""
    hits = [[round(c * n) for c in lead] for lead in csi_by_lead]
    return {
        "thresholds_mmh": [1.0, 2.0],
        "lead_minutes": [5.0 * (k + 1) for k in range(len(csi_by_lead))],
        "n_sequences": 3,
        "csi": [[h / n for h in lead] for lead in hits],
        "hits": hits,
        "misses": [[n - h for h in lead] for lead in hits],
        "false_alarms": [[0, 0] for _ in hits],
        "correct_negatives": [[0, 0] for _ in hits],
    }


def test_scales_are_chosen_on_the_training_folds_within_the_tolerance():
    """Two leads; on fold a the full change wins at lead 1 and loses 0.05 at lead 2; the
    held-out fold c (where scale 1 would win everywhere) must not change the choice."""
    recipe = _recipe()
    prior = [(0.50, 0.40), (0.40, 0.30)]

    def fold(by_scale):
        rep = {f"scale={s:g}": _entry(by_scale(s)) for s in recipe.SCALES}
        for name in (recipe.PRIOR, recipe.LK, recipe.PERSISTENCE):
            rep[name] = _entry(prior)
        return rep

    def a(s):  # lead 1 gains with the scale; lead 2 loses 0.2 per unit of scale
        return [(0.50 + 0.1 * s, 0.40 + 0.1 * s), (0.40 - 0.2 * s, 0.30)]

    def b(s):  # a small gain at both leads
        return [(0.50 + 0.02 * s, 0.40), (0.40 + 0.02 * s, 0.30)]

    def c(s):
        return [(0.50 + 0.3 * s, 0.40 + 0.3 * s), (0.40 + 0.3 * s, 0.30 + 0.3 * s)]

    reports = {"a": fold(a), "b": fold(b), "c": fold(c)}
    # lead 1: scale 1 is best and allowed; lead 2: a loses 0.05 at 0.25 (> 0.01): only 0
    assert recipe.choose_scales(reports, ["a", "b"], 2) == [1.0, 0.0]
    tables = recipe.fold_tables(reports)
    assert tables["folds"]["c"]["scales"] == [1.0, 0.0]
    # the held-out fold's model row is the report's entry at the chosen scale of each lead
    model = tables["folds"]["c"]["methods"]["model"]["1"]["csi"]
    assert model == pytest.approx([0.80, 0.40])
    # fold a held out: b and c choose scale 1 at lead 2, where a loses 0.2 to its prior
    assert tables["folds"]["a"]["scales"][1] == 1.0
    goal = tables["goals"]["never_worse_than_prior"]
    assert goal["met"] is False and goal["worst_margin"] == pytest.approx(-0.2)
    assert goal["worst_at"] == {"held_out": "a", "threshold_mmh": 1.0, "lead_min": 10.0}
    md = recipe.folds_markdown(tables)
    assert "**Held out: c**" in md and "Pooled" in md
