"""`nowcast train` on the command line: options, and one-line errors with exit 2 for bad input."""

from __future__ import annotations

import pytest
import torch
import yaml
from train_support import tiny_config
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.data.toy import write_blob_store
from nowcast.train.rundir import read_metrics

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_blob_store(
        tmp_path_factory.mktemp("cli") / "store.nc", splits=("train", "train", "val"), h=16, w=16
    )


def _train(*args: str):
    return runner.invoke(app, ["train", *args])


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert err.startswith("nowcast: error: ") and err.count("\n") == 1 and "Traceback" not in err, (
        err
    )
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def _config(tmp_path, store, **keys):
    path = tmp_path / "c.yaml"
    tiny_config(store, tmp_path / "run", path, **keys)
    return str(path)


def test_missing_store(tmp_path, store):
    cfg = _config(tmp_path, tmp_path / "nope.nc")
    _one_line_error(_train("--config", cfg), f"{tmp_path / 'nope.nc'}: no such dataset store")
    assert not (tmp_path / "run").exists()


def test_grid_the_patch_size_does_not_divide(tmp_path):
    odd = write_blob_store(tmp_path / "odd.nc", splits=("train", "val"), h=18, w=16)
    _one_line_error(
        _train("--config", _config(tmp_path, odd)),
        "data.store",
        "18×16 grid is not divisible by model.patch = 4",
    )


def test_split_without_windows(tmp_path):
    no_val = write_blob_store(tmp_path / "noval.nc", splits=("train", "test"), h=16, w=16)
    _one_line_error(
        _train("--config", _config(tmp_path, no_val)),
        "data.store",
        "the 'val' split has no window of 7",
    )


def test_unknown_model_name(tmp_path, store):
    _one_line_error(
        _train("--config", _config(tmp_path, store), "--set", "model.name=unet"),
        "model.name",
        "'unet'",
    )


def test_best_metric_must_be_a_validation_score(tmp_path, store):
    result = _train("--config", _config(tmp_path, store), "--set", "train.best_metric=csi@3")
    _one_line_error(
        result, "train.best_metric: expected one of mse, bmse, csi_mean, csi@0.5, csi@2"
    )


def test_cuda_requested_without_a_gpu(tmp_path, store):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _one_line_error(
        _train("--config", _config(tmp_path, store), "--device", "cuda"),
        "train.device: cuda requested",
    )


def test_existing_run_needs_resume_and_a_changed_key_is_refused(tmp_path, store):
    cfg = _config(tmp_path, store, steps=2, val_every=2)
    assert _train("--config", cfg, "--quiet").exit_code == 0
    _one_line_error(_train("--config", cfg), "already holds a training run", "--resume")
    _one_line_error(
        _train("--config", cfg, "--resume", "--set", "train.lr=0.5"), "--resume: train.lr is 0.5"
    )
    result = _train("--config", cfg, "--resume", "--set", "train.steps=3")  # more steps: fine
    assert result.exit_code == 0, result.output
    assert [
        e["step"] for e in read_metrics(tmp_path / "run" / "metrics.jsonl") if e["event"] == "train"
    ] == [1, 2, 3]


def test_run_saved_before_a_key_existed_resumes_as_its_default(tmp_path, store):
    """A checkpoint whose config lacks keys added later (model.advection_motion,
    train.augment) resumes with them at their defaults, and is refused with other values."""
    cfg = _config(tmp_path, store, steps=2, val_every=2)
    assert _train("--config", cfg, "--quiet").exit_code == 0
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    del ckpt["config"]["model"]["advection_motion"], ckpt["config"]["train"]["augment"]
    torch.save(ckpt, last)
    _one_line_error(
        _train("--config", cfg, "--resume", "--set", "train.augment=true"),
        "--resume: train.augment is True",
        "trained with False",
    )
    result = _train("--config", cfg, "--resume", "--quiet", "--set", "train.steps=3")
    assert result.exit_code == 0, result.output


def test_divergence_is_a_one_line_error(tmp_path, store):
    cfg = _config(
        tmp_path,
        store,
        lr=1e30,
        optimizer="adamw",
        weight_decay=1.0,
        grad_clip=None,
        checkpoint_every=1,
    )
    _one_line_error(
        _train("--config", cfg, "--quiet"),
        "non-finite at step 2",
        "last good checkpoint",
        "last.pt (step 1)",
    )


def test_nproc_checks_the_input_before_launching(tmp_path, store):
    _one_line_error(
        _train("--config", _config(tmp_path, tmp_path / "nope.nc"), "--nproc", "2"),
        "no such dataset store",
    )
    _one_line_error(
        _train("--config", _config(tmp_path, store), "--nproc", "3"),
        "train.batch_size: 4 does not divide evenly over 3 processes",
    )


def test_device_and_deterministic_options_set_the_config(tmp_path, store):
    cfg = _config(tmp_path, store, steps=1, val_every=1, device="auto")
    result = _train("--config", cfg, "--device", "cpu", "--deterministic")
    assert result.exit_code == 0, result.output
    assert "train: 1 steps, done; best val csi_mean" in result.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["device"] == "cpu" and saved["train"]["deterministic"] is True
    _one_line_error(_train("--config", cfg, "--device", "gpu"), "train.device: expected one of")
