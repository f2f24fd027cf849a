"""Mixed precision on the CPU: train.amp / evaluate.amp / predict.amp, `off` as typed, bf16
autocast with float32 weights, checkpoints that cross precisions, exact resume under bf16."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from cli_support import assert_one_line_error, checksums
from predict_support import config as predict_config
from predict_support import make_checkpoint, write_frames
from test_train_resume import check_sigkill_resume
from train_support import run_cli, tiny_config, weights
from typer.testing import CliRunner

from nowcast.checkpoint import load_checkpoint
from nowcast.cli import app
from nowcast.config import load_config
from nowcast.data.toy import write_blob_store
from nowcast.evaluate import evaluate
from nowcast.models import REGISTRY
from nowcast.precision import cpu_has_native_bf16, resolve_amp
from nowcast.predict import predict
from nowcast.train import train
from nowcast.train.rundir import read_metrics

runner = CliRunner()
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_blob_store(
        tmp_path_factory.mktemp("amp") / "store.nc",
        splits=("train", "train", "val", "test"),
        h=16,
        w=16,
        seed=4,
    )


def _events(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_metrics(run_dir / "metrics.jsonl") if e["event"] == kind]


# ------------------------------------------------------------------ config


def test_off_is_off_in_yaml_and_in_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  amp: off\nevaluate:\n  amp: off\npredict:\n  amp: bf16\n")
    cfg = load_config(path, ["predict.amp=off"])
    assert (cfg.train.amp, cfg.evaluate.amp, cfg.predict.amp) == ("off", "off", "off")
    cfg = load_config(None, ["train.amp=off", "evaluate.amp=bf16"])
    assert (cfg.train.amp, cfg.evaluate.amp, cfg.predict.amp) == ("off", "bf16", "auto")


@pytest.mark.parametrize(
    ("where", "text", "got"),
    [("set", "fast", "'fast'"), ("set", "on", "True"), ("yaml", "1", "1")],
)
def test_junk_amp_is_one_line_naming_the_key(store, tmp_path, where, text, got):
    cfg_path = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", cfg_path)
    args = ["train", "--config", str(cfg_path)]
    if where == "set":
        args += ["--set", f"train.amp={text}"]
    else:
        written = cfg_path.read_text()
        assert "  amp: 'off'\n" in written
        cfg_path.write_text(written.replace("  amp: 'off'\n", f"  amp: {text}\n"))
    before = checksums(store, cfg_path)
    result = runner.invoke(app, args)
    line = assert_one_line_error(
        result, "train.amp: expected one of 'auto', 'bf16', 'fp16', 'off', got " + got
    )
    assert ("--set" in line) == (where == "set") and (str(cfg_path) in line) == (where == "yaml")
    assert checksums(store, cfg_path) == before
    assert not (tmp_path / "run").exists()


def test_auto_follows_the_cpus_bf16_units():
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
        # torch's own probes and the kernel's flags agree on this machine
        assert cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})
    native = cpu_has_native_bf16()
    assert resolve_amp("auto", CPU, "train.amp") is (torch.bfloat16 if native else None)
    assert resolve_amp("bf16", CPU, "train.amp") is torch.bfloat16
    assert resolve_amp("off", CPU, "train.amp") is None
    assert resolve_amp("fp16", CPU, "train.amp") is None  # fp16 is CUDA's
    assert resolve_amp("off", torch.device("cuda", 0), "train.amp") is None


# ------------------------------------------------------------------ train


def test_bf16_training_keeps_float32_weights_and_records_the_precision(store, tmp_path):
    run = train(tiny_config(store, tmp_path / "run", steps=6, val_every=3, amp="bf16")).run_dir
    assert _events(run, "start")[0]["amp"] == "bf16"
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(run / "checkpoints" / name)
        assert ckpt["amp"] == "bf16"
        assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values())
        for state in ckpt["optimizer"]["state"].values():
            assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
    losses = [e["loss"] for e in _events(run, "train")]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert all(np.isfinite(e["mse"]) for e in _events(run, "val"))
    # float32 training from the same seed takes other (nearby) steps: bf16 was in force
    ref = train(tiny_config(store, tmp_path / "ref", steps=6, val_every=3, amp="off")).run_dir
    assert _events(ref, "start")[0]["amp"] == "off"
    assert load_checkpoint(ref / "checkpoints" / "last.pt")["amp"] == "off"
    wa, wb = weights(run / "checkpoints" / "last.pt"), weights(ref / "checkpoints" / "last.pt")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert all(torch.allclose(wa[k], wb[k], atol=0.05) for k in wa)


def test_the_precision_is_printed_once(store, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", cfg_path, steps=2, val_every=2)
    result = run_cli("train", "--config", str(cfg_path), "--set", "train.amp=bf16")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("precision: bf16 autocast on cpu (amp: bf16)") == 1
    result = run_cli(
        "train",
        "--config",
        str(cfg_path),
        "--resume",
        "--set",
        "train.amp=off",
        "--set",
        "train.steps=4",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("precision: float32 on cpu (amp: off)") == 1
    assert [e["amp"] for e in _events(tmp_path / "run", "resume")] == ["off"]


def test_a_run_switches_precision_on_resume_and_fine_tunes_across(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", steps=3, val_every=3, amp="bf16")
    run = train(cfg).run_dir
    more = tiny_config(store, tmp_path / "run", steps=6, val_every=3, amp="off")
    train(more, resume=True)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["amp"] == "off"
    assert [e["amp"] for e in _events(run, "resume")] == ["off"]
    tuned = tiny_config(
        store,
        tmp_path / "tuned",
        steps=2,
        val_every=2,
        amp="bf16",
        init_from=str(run / "checkpoints" / "last.pt"),
    )
    assert load_checkpoint(train(tuned).last_checkpoint)["amp"] == "bf16"


@pytest.mark.skipif("predrnn" not in REGISTRY, reason="needs PredRNN")
def test_sigkill_then_resume_under_bf16_gives_the_uninterrupted_weights(tmp_path):
    check_sigkill_resume(tmp_path, "predrnn", amp="bf16")


# ------------------------------------------------------------------ evaluate, predict


def _evaluate(store, ckpt, out, amp):
    over = {
        "data.store": str(store),
        "data.n_in": 3,
        "data.n_out": 4,
        "evaluate.out": str(out),
        "evaluate.amp": amp,
        "evaluate.baselines": [],
        "evaluate.split": "val",
        "model.name": "convlstm",
    }
    evaluate(load_config(None, overrides=over), [ckpt])
    return json.loads((out / "report.json").read_text())["convlstm"]


@pytest.mark.parametrize("trained", ["bf16", "off"])
def test_checkpoints_evaluate_in_either_precision(store, tmp_path, trained):
    run = train(tiny_config(store, tmp_path / "run", steps=4, val_every=4, amp=trained)).run_dir
    ckpt = run / "checkpoints" / "best.pt"
    f32 = _evaluate(store, ckpt, tmp_path / "f32", "off")
    b16 = _evaluate(store, ckpt, tmp_path / "b16", "bf16")
    assert (f32["amp"], b16["amp"]) == ("off", "bf16")
    assert "networks in bf16 autocast" in (tmp_path / "b16" / "report.md").read_text()
    assert f32["hits"] != [] and np.isfinite(b16["mse"]).all()
    # bf16 rounds each prediction to ~3 significant digits: the errors barely move
    np.testing.assert_allclose(b16["mse"], f32["mse"], rtol=0.05)
    assert f32["mse"] != b16["mse"]  # the two precisions really ran


def test_predict_runs_a_checkpoint_in_either_precision(tmp_path):
    files = write_frames(tmp_path / "in", [0, 6, 12])
    ckpt = make_checkpoint(tmp_path / "ckpt.pt", files[0])
    out = {}
    for amp in ("off", "bf16"):
        path = predict(predict_config(f"predict.amp={amp}"), ckpt, files, tmp_path / f"{amp}.nc")
        with xr.open_dataset(path) as ds:
            out[amp] = ds.reflectivity.values
            assert ds.reflectivity.dtype == np.float32
    assert not np.array_equal(out["off"], out["bf16"], equal_nan=True)
    np.testing.assert_allclose(out["bf16"], out["off"], atol=0.5)  # dBZ, of a 70 dBZ range
