"""The evaluate stage on small real stores and checkpoints: the report against a literal
per-window computation, the masks, every config key, and the CLI with its bad-input errors."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nowcast.checkpoint import save_checkpoint
from nowcast.cli import app
from nowcast.config import load_config
from nowcast.data.toy import write_blob_store
from nowcast.errors import UserError
from nowcast.evaluate import evaluate
from nowcast.evaluate.methods import method_labels
from nowcast.evaluate.stage import PLOTS, lead_indices
from nowcast.models import build
from nowcast.store import FrameReader, read_meta, window_starts
from nowcast.train.state import store_payload
from nowcast.units import dbz_to_gray, rate_to_dbz

N_IN, N_OUT = 3, 6
TINY = {"name": "convlstm", "layers": 1, "hidden": 4, "kernel": 3, "patch": 4}
runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _config(store, out, **evaluate_keys):
    over = {
        "data.store": str(store),
        "data.n_in": N_IN,
        "data.n_out": N_OUT,
        "evaluate.out": str(out),
        "evaluate.amp": "off",  # float32: the literal computations below (bf16: test_amp_cpu)
    }
    over.update({f"model.{k}": v for k, v in TINY.items()})
    over.update({f"evaluate.{k}": v for k, v in evaluate_keys.items()})
    return load_config(None, overrides=over)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two test blocks, one in June and one in July, whose noise masks differ."""
    path = tmp_path_factory.mktemp("evstore") / "store.nc"
    splits = ("val", "test", "test", "train")
    write_blob_store(path, splits, h=32, w=32, block_len=20, start="2024-06-30T20:00", seed=3)
    with netCDF4.Dataset(path, "a") as nc:
        assert list(nc["month"][:]) == ["2024-06", "2024-07"]
        nc["noise_mask"][0, :6, :] = 1  # June: a band at the top
        nc["noise_mask"][1, :, :5] = 1  # July: a band on the left
    return path


@pytest.fixture(scope="module")
def checkpoint(store, tmp_path_factory):
    """An untrained tiny ConvLSTM saved like train saves it (store preprocess, masks, grid)."""
    torch.manual_seed(0)
    cfg = _config(store, "unused")
    model = build("convlstm", cfg.model)
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "best.pt"
    payload = {"model_name": "convlstm", "config": cfg.model_dump(mode="json"), "step": 0}
    save_checkpoint(
        path, {**payload, "state_dict": model.state_dict(), **store_payload(read_meta(store))}
    )
    return path


@pytest.fixture(scope="module")
def report(store, checkpoint, tmp_path_factory):
    """One full run: the model, persistence and extrapolation, thresholds incl. one never reached."""
    out = tmp_path_factory.mktemp("eval") / "report"
    cfg = _config(store, out, batch_size=5, thresholds_mmh=[0.5, 2.0, 10.0, 300.0])
    assert evaluate(cfg, [checkpoint]).folder == out
    return out


def _literal_scores(store, forecast, thresholds_mmh):
    """Unfused reference: window by window in numpy float64, mask from StoreMeta.pixel_mask,
    inputs with the noise mask of the window's month set to 0."""
    meta = read_meta(store)
    reader = FrameReader(store)
    pre = meta.preprocess
    thr = dbz_to_gray(rate_to_dbz(thresholds_mmh, **pre["zr"]), pre["z_min"], pre["z_max"])
    counts = np.zeros((4, N_OUT, len(thr)), dtype=np.int64)  # H, M, F, R
    se = np.zeros(N_OUT)
    starts = window_starts(meta, "test", N_IN + N_OUT)
    try:  # read everything first: a netCDF handle left to the GC can crash HDF5 later
        windows = [reader.read(s, s + N_IN + N_OUT).astype(np.float64) / 255.0 for s in starts]
    finally:
        reader.close()
    for s, frames in zip(starts, windows):
        # every method's inputs: the noise mask of the window's month is no echo
        inputs = np.where(meta.noise_mask[meta.month_index(meta.times[s])], 0.0, frames[:N_IN])
        pred = forecast(inputs)
        mask = meta.pixel_mask(meta.times[s])
        for lead in range(N_OUT):
            p, o = pred[lead][mask], frames[N_IN + lead][mask]
            se[lead] += np.sum((p - o) ** 2)
            for k, t in enumerate(thr):
                pe, oe = p >= t, o >= t
                counts[:, lead, k] += [
                    np.sum(pe & oe),
                    np.sum(~pe & oe),
                    np.sum(pe & ~oe),
                    np.sum(~pe & ~oe),
                ]
    h, m, f, r = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        csi = h / (h + m + f)
        hss = 2 * (h * r - m * f) / ((h + m) * (m + r) + (h + f) * (f + r))
    return counts, csi, hss, se / starts.size


def _json_strict(path):
    def no_nan(token):
        raise AssertionError(f"report.json holds {token}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def _as_float(values):
    return np.array([[np.nan if v is None else v for v in row] for row in values], dtype=np.float64)


def test_report_matches_a_literal_per_window_computation(report, store, checkpoint):
    rep = _json_strict(report / "report.json")
    assert list(rep) == ["convlstm", "persistence", "extrapolation"]
    thresholds = [0.5, 2.0, 10.0, 300.0]
    model = build(
        "convlstm", load_config(None, overrides={f"model.{k}": v for k, v in TINY.items()}).model
    )
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    model.eval()

    def run_model(inputs):
        x = torch.tensor(inputs, dtype=torch.float32)[None, :, None]
        with torch.no_grad():
            return model(x, N_OUT)[0, :, 0].double().numpy()

    for name, forecast in (
        ("persistence", lambda x: np.repeat(x[-1:], N_OUT, 0)),
        ("convlstm", run_model),
    ):
        counts, csi, hss, mse = _literal_scores(store, forecast, thresholds)
        got = rep[name]
        keys = ("hits", "misses", "false_alarms", "correct_negatives")
        for i, key in enumerate(keys):
            np.testing.assert_array_equal(got[key], counts[i], err_msg=f"{name} {key}")
        np.testing.assert_allclose(_as_float(got["csi"]), csi, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(_as_float(got["hss"]), hss, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(got["mse"], mse, rtol=1e-5)
    # 300 mm/h is never observed nor forecast by persistence: CSI is 0/0 → null in JSON
    assert all(row[3] is None for row in rep["persistence"]["csi"])
    assert rep["persistence"]["correct_negatives"][0][3] > 0


def test_report_schema_files_and_tables(report):
    rep = _json_strict(report / "report.json")
    for name, entry in rep.items():
        assert entry["lead_minutes"] == [6.0 * (k + 1) for k in range(N_OUT)]
        assert entry["thresholds_mmh"] == [0.5, 2.0, 10.0, 300.0]
        for key in ("csi", "hss", "pod", "far", "ets", "bias"):
            assert np.shape(entry[key]) == (N_OUT, 4), (name, key)
        for key in ("mse", "mae", "b_mse", "b_mae", "mse_rate", "mae_rate", "pixels"):
            assert np.shape(entry[key]) == (N_OUT,), (name, key)
        assert entry["n_sequences"] == 24  # two 20-frame blocks: 2 × (20 − 9 + 1)
    assert rep["convlstm"]["kind"] == "model" and rep["convlstm"]["source"].endswith("best.pt")
    assert rep["extrapolation"]["kind"] == "baseline"
    # B-MSE ≥ MSE (weights ≥ 1) and extrapolation beats persistence on steadily moving blobs
    for entry in rep.values():
        assert np.all(np.array(entry["b_mse"]) >= np.array(entry["mse"]))
    assert np.mean(rep["extrapolation"]["mse"]) < np.mean(rep["persistence"]["mse"])
    md = (report / "report.md").read_text()
    assert "| method | ≥ 0.5 mm/h | ≥ 2 mm/h | ≥ 10 mm/h | ≥ 300 mm/h |" in md
    assert "## Per lead time at 2 mm/h (CSI / HSS)" in md and "| 36 min |" in md
    assert "n/a" in md  # the undefined 300 mm/h scores
    csi_mean = np.nanmean(_as_float(rep["persistence"]["csi"])[:, :2], axis=0)
    assert f"| persistence | {csi_mean[0]:.3f} | {csi_mean[1]:.3f} |" in md
    for png in PLOTS:
        data = (report / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 20_000, png
    assert load_config(report / "config.yaml").evaluate.thresholds_mmh == [0.5, 2.0, 10.0, 300.0]
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_contingency_totals_are_the_masked_pixels_of_each_windows_month(report, store):
    meta = read_meta(store)
    starts = window_starts(meta, "test", N_IN + N_OUT)
    months = {meta.month_index(meta.times[s]) for s in starts}
    assert months == {0, 1}  # June and July windows, with different noise masks
    valid = sum(int(meta.pixel_mask(meta.times[s]).sum()) for s in starts)
    rep = _json_strict(report / "report.json")
    for entry in rep.values():
        total = sum(
            np.array(entry[k]) for k in ("hits", "misses", "false_alarms", "correct_negatives")
        )
        np.testing.assert_array_equal(total, valid)
        np.testing.assert_array_equal(entry["pixels"], valid)


def test_batch_size_does_not_change_the_scores(store, tmp_path):
    reps = []
    for bs in (1, 24):
        out = evaluate(
            _config(store, tmp_path / f"b{bs}", batch_size=bs), [], ["persistence"]
        ).folder
        reps.append(_json_strict(out / "report.json")["persistence"])
    assert reps[0] == reps[1]


def test_split_extrapolation_frames_and_example_keys(store, tmp_path):
    out = evaluate(
        _config(
            store,
            tmp_path / "a",
            split="val",
            extrapolation_frames=2,
            example_window=7,
            example_leads_min=[12],
        ),
        [],
        ["extrapolation"],
    ).folder
    a = _json_strict(out / "report.json")["extrapolation"]
    assert a["n_sequences"] == 12  # the one val block
    assert "last 2 inputs" in a["source"]
    md = (out / "report.md").read_text()
    assert "split `val`: 12 windows" in md and "example.png: window 7 of the split" in md
    b = _json_strict(
        evaluate(_config(store, tmp_path / "b", split="val"), [], ["extrapolation"]).report_json
    )
    assert a["mse"] != b["extrapolation"]["mse"]  # motion from 2 vs 3 frames
    assert "the wettest" in (tmp_path / "b" / "report.md").read_text()


def test_proesmans_baseline_is_scored_beside_lk_and_ignores_extrapolation_frames(store, tmp_path):
    reps = []
    for frames in (2, 3):
        cfg = _config(store, tmp_path / f"p{frames}", split="val", extrapolation_frames=frames)
        out = evaluate(cfg, [], ["extrapolation", "extrapolation_proesmans"]).folder
        reps.append(_json_strict(out / "report.json"))
    lk, pr = reps[1]["extrapolation"], reps[1]["extrapolation_proesmans"]
    assert "Proesmans optical flow from the last 2 inputs" in pr["source"]
    assert pr["n_sequences"] == lk["n_sequences"] == 12
    assert pr["mse"] != lk["mse"]  # another motion field
    assert reps[0]["extrapolation_proesmans"] == pr  # n_frames is LK's alone
    assert "extrapolation_proesmans" in (tmp_path / "p3" / "report.md").read_text()


def test_proesmans_baseline_with_one_input_is_refused_before_reading(store, tmp_path):
    cfg = _config(store, tmp_path / "o")
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"n_in": 1})})
    with pytest.raises(
        UserError, match=r"^data\.n_in: the proesmans motion needs 2 input frames, got 1$"
    ):
        evaluate(cfg, [], ["persistence", "extrapolation_proesmans"])
    assert not (tmp_path / "o").exists()


def test_lead_indices_pick_the_nearest_available_lead():
    assert lead_indices([6, 30, 60, 90], 6.0, 15) == [0, 4, 9, 14]
    assert lead_indices([6, 30, 60, 90], 5.0, 15) == [0, 5, 11, 14]  # 5-min data: 5, 30, 60, 75 min
    assert lead_indices([6, 30, 60, 90], 6.0, 4) == [0, 3]


def test_method_labels_are_unique(tmp_path):
    paths = [
        tmp_path / "runA" / "checkpoints" / "best.pt",
        tmp_path / "runB" / "checkpoints" / "best.pt",
    ]
    assert method_labels(["convlstm", "predrnn"], paths) == ["convlstm", "predrnn"]
    assert method_labels(["convlstm", "convlstm"], paths) == [
        "convlstm:runA/best",
        "convlstm:runB/best",
    ]
    assert method_labels(["mim", "mim"], [paths[0], paths[0]]) == [
        "mim:runA/best",
        "mim:runA/best#2",
    ]


def test_device_cuda_without_a_gpu_is_a_user_error(store, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(
        UserError, match="evaluate.device: cuda requested, but torch .* sees no CUDA GPU"
    ):
        evaluate(_config(store, tmp_path / "o", device="cuda"), [], ["persistence"])
    out = evaluate(_config(store, tmp_path / "c", device="cpu"), [], ["persistence"]).folder
    assert "device: cpu" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"thresholds_mmh": [2.0, 0.5]}, "evaluate.thresholds_mmh: expected strictly increasing"),
        ({"thresholds_mmh": [0.001]}, "at or below the gray scale's minimum"),
        (
            {"extrapolation_frames": 4},
            "evaluate.extrapolation_frames: the lk motion needs 4 input frames, got 3",
        ),
        ({"example_window": 24}, "evaluate.example_window: 24 is past the last of the 24 windows"),
    ],
)
def test_more_bad_config_values(store, tmp_path, keys, message):
    with pytest.raises(UserError, match=message):
        evaluate(_config(store, tmp_path / "o", **keys), [], ["persistence", "extrapolation"])
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- the command line


def _cli(store, out, *args):
    base = [
        "evaluate",
        "--set",
        f"data.store={store}",
        "--set",
        f"data.n_in={N_IN}",
        "--set",
        f"data.n_out={N_OUT}",
    ]
    return runner.invoke(app, [*base, "--out", str(out), "--quiet", *args])


def test_cli_prints_the_main_table(store, checkpoint, tmp_path):
    result = _cli(
        store,
        tmp_path / "o",
        "--checkpoint",
        str(checkpoint),
        "--baselines",
        "persistence",
        "--split",
        "test",
    )
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "test split, 24 windows" in table
    for word in ("convlstm", "persistence", "CSI", "HSS", "≥0.5", "≥30", "B-MSE"):
        assert word in table
    assert "extrapolation" not in table
    rep = _json_strict(tmp_path / "o" / "report.json")
    csi = np.nanmean(_as_float(rep["persistence"]["csi"]), axis=0)
    assert f"{csi[0]:.3f}" in table


def _bad_checkpoint(store, checkpoint, tmp_path):
    payload = torch.load(checkpoint, weights_only=True)
    payload["preprocess"] = {**payload["preprocess"], "z_max": 55.0}
    for key in ("format", "version", "git_commit"):
        payload.pop(key)
    return save_checkpoint(tmp_path / "other.pt", payload)


@pytest.mark.parametrize(
    "case", ["preprocess", "empty split", "threshold", "no checkpoint", "no store", "baseline"]
)
def test_cli_bad_input_is_one_line_exit_2_and_no_report(store, checkpoint, tmp_path, case):
    out = tmp_path / "o"
    args = {
        "preprocess": ["--checkpoint", str(_bad_checkpoint(store, checkpoint, tmp_path))],
        "empty split": ["--split", "train", "--set", "data.n_out=20"],
        "threshold": ["--set", "evaluate.thresholds_mmh=[0.5, 1000]"],
        "no checkpoint": ["--checkpoint", str(tmp_path / "missing.pt")],
        "no store": ["--set", f"data.store={tmp_path / 'missing.nc'}"],
        "baseline": ["--baselines", "persistence,nwp"],
    }[case]
    expected = {
        "preprocess": "other.pt: preprocessing differs from the store",
        "empty split": "split 'train' has no complete window of 23 valid frames",
        "threshold": "evaluate.thresholds_mmh: 1000 mm/h is above the gray scale's maximum",
        "no checkpoint": "missing.pt: no such checkpoint",
        "no store": "missing.nc: no such dataset store",
        "baseline": "--baselines: unknown baseline 'nwp'",
    }[case]
    result = _cli(store, out, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nowcast: error: ") and expected in lines[0], (
        lines
    )
    if case == "preprocess":
        assert "preprocess.z_max = 55.0 in the checkpoint, 60.0 in the store" in lines[0]
    assert not out.exists()


def test_preprocess_check_ignores_how_the_work_was_spread_but_not_the_data(store, tmp_path):
    from nowcast.evaluate.methods import check_preprocess

    meta = read_meta(store)
    payload = store_payload(meta)
    ck = tmp_path / "x.pt"
    check_preprocess(ck, {**payload, "preprocess": {**meta.preprocess, "workers": 4}}, meta)
    with pytest.raises(
        UserError, match=r"x.pt: preprocessing differs .*preprocess.zr.b = 1.6 in the checkpoint"
    ):
        check_preprocess(
            ck, {**payload, "preprocess": {**meta.preprocess, "zr": {"a": 58.53, "b": 1.6}}}, meta
        )
    small = {**payload["masks"], "coverage": meta.coverage[:16]}
    with pytest.raises(UserError, match="x.pt: grid 16×32 differs from the store's 32×32"):
        check_preprocess(ck, {**payload, "masks": small}, meta)
