"""Checkpoints carry no executable code: every entry point reads them with torch's safe
unpickler, refuses a file holding any other object without building it, refuses the older
format 1 with the command that converts a trusted file, and a checkpoint that cannot be
written leaves the previous one intact."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import pickle
import random
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_support import assert_one_line_error, checksums, nowcast_process
from predict_support import write_frames
from train_support import REPO, subprocess_env, tiny_config
from typer.testing import CliRunner

from nowcast.checkpoint import (
    FORMAT,
    OLD_FORMAT,
    build_model,
    file_hash,
    load_checkpoint,
    save_checkpoint,
)
from nowcast.cli import app
from nowcast.data.toy import write_blob_store
from nowcast.train import train
from nowcast.train.state import set_rng_states

runner = CliRunner()
CONVERT = REPO / "scripts" / "convert_checkpoint.py"
SHIPPED = REPO / "models" / "convlstm_radar5min.pt"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Payload:
    """Unpickling this object creates ``marker`` (what an attacker's code would do)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_blob_store(
        tmp_path_factory.mktemp("trust") / "store.nc", ("train", "val", "test"), h=16, w=16
    )


@pytest.fixture(scope="module")
def run(store, tmp_path_factory):
    """A finished 3-step run (config.yaml, metrics.jsonl, last.pt, best.pt)."""
    out = tmp_path_factory.mktemp("run") / "run"
    cfg_path = out.parent / "run.yaml"
    train(tiny_config(store, out, cfg_path, steps=3, val_every=3, checkpoint_every=3))
    return out, cfg_path


def _old_format(ckpt: dict) -> dict:
    """``ckpt`` as format 1 wrote it: numpy masks and grid, the generators' own state tuples."""
    old = dict(ckpt, format=OLD_FORMAT)
    old["masks"] = {k: v.numpy() if torch.is_tensor(v) else v for k, v in ckpt["masks"].items()}
    old["grid"] = {k: v.numpy() if torch.is_tensor(v) else v for k, v in ckpt["grid"].items()}
    if "rng" in ckpt:
        py, nps = ckpt["rng"]["python"], ckpt["rng"]["numpy"]
        old["rng"] = {
            "python": (py["version"], tuple(py["state"].tolist()), py["gauss_next"]),
            "numpy": (
                nps["bit_generator"],
                nps["keys"].numpy().astype(np.uint32),
                nps["pos"],
                nps["has_gauss"],
                nps["cached_gaussian"],
            ),
            "torch": ckpt["rng"]["torch"],
            "cuda": ckpt["rng"]["cuda"],
        }
    return old


@pytest.fixture(scope="module")
def crafted(run, tmp_path_factory):
    """payload.pt: last.pt plus one key whose unpickling creates ``marker``; old.pt: last.pt
    in format 1."""
    folder = tmp_path_factory.mktemp("crafted")
    marker = folder / "marker"
    ckpt = load_checkpoint(run[0] / "checkpoints" / "last.pt")
    torch.save({**ckpt, "note": Payload(marker)}, folder / "payload.pt")
    torch.save(_old_format(ckpt), folder / "old.pt")
    return folder, marker


def test_the_payload_is_live_and_a_real_checkpoint_is_plain(run, crafted):
    """The crafted file does run its code under the full unpickler (so the entry-point tests
    below mean something); a checkpoint train writes holds only tensors and plain values."""
    folder, marker = crafted
    torch.load(folder / "payload.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()
    last = torch.load(run[0] / "checkpoints" / "last.pt", weights_only=True)
    assert last["format"] == FORMAT
    assert last["masks"]["noise_mask"].dtype == torch.bool
    assert last["grid"]["x"].dtype == torch.float64
    assert isinstance(last["rng"]["numpy"]["keys"], torch.Tensor)


def _entry_point(kind: str, ckpt: pathlib.Path, run, store, tmp_path) -> tuple[list[str], str]:
    """CLI arguments that read ``ckpt`` at one entry point, and the line's expected prefix."""
    out_dir, cfg_path = run
    if kind == "predict":
        frames = write_frames(tmp_path / "in", [0, 6, 12])
        args = ["predict", "--checkpoint", str(ckpt), "--input", str(frames[0].parent)]
        return [*args, "--out", str(tmp_path / "n.nc"), "--quiet"], f"{ckpt}: "
    if kind == "evaluate":
        args = ["evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "report")]
        return [*args, "--set", f"data.store={store}", "--quiet"], f"{ckpt}: "
    if kind == "init_from":
        cfg = tmp_path / "ft.yaml"
        tiny_config(store, tmp_path / "ft", cfg, init_from=str(ckpt))
        return ["train", "--config", str(cfg), "--quiet"], f"train.init_from: {ckpt}: "
    # resume: a copy of the run whose last.pt is the file under test
    copy = tmp_path / "run"
    shutil.copytree(out_dir, copy)
    shutil.copyfile(ckpt, copy / "checkpoints" / "last.pt")
    cfg = tmp_path / "resume.yaml"
    tiny_config(store, copy, cfg, steps=6, val_every=3, checkpoint_every=3)
    return ["train", "--config", str(cfg), "--resume", "--quiet"], f"{copy}/checkpoints/last.pt: "


ENTRY_POINTS = ["predict", "evaluate", "init_from", "resume"]


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_a_payload_checkpoint_runs_nothing_at_any_entry_point(kind, run, store, crafted, tmp_path):
    folder, marker = crafted
    args, prefix = _entry_point(kind, folder / "payload.pt", run, store, tmp_path)
    before = checksums(folder, store, tmp_path)
    result = runner.invoke(app, args)
    assert_one_line_error(
        result, prefix + "refused: it holds objects a checkpoint may not hold", "nothing"
    )
    assert not marker.exists()
    assert checksums(folder, store, tmp_path) == before  # nothing written, nothing changed
    assert not (tmp_path / "n.nc").exists() and not (tmp_path / "report").exists()
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_an_old_format_checkpoint_says_how_to_convert_it(kind, run, store, crafted, tmp_path):
    folder, _ = crafted
    args, prefix = _entry_point(kind, folder / "old.pt", run, store, tmp_path)
    before = checksums(folder, store, tmp_path)
    line = assert_one_line_error(
        runner.invoke(app, args),
        prefix + f"an older nowcast checkpoint format ({OLD_FORMAT})",
        "could run code",
        "python scripts/convert_checkpoint.py OLD.pt NEW.pt",
    )
    assert "trust" in line
    assert checksums(folder, store, tmp_path) == before


def test_a_payload_pickle_that_is_no_torch_file_runs_nothing(crafted, tmp_path):
    """A bare pickle (no torch zip) with a code-running object: not a checkpoint, not run."""
    folder, marker = crafted
    bare = tmp_path / "bare.pt"
    bare.write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=4))
    frames = write_frames(tmp_path / "in", [0, 6, 12])
    result = runner.invoke(
        app, ["predict", "--checkpoint", str(bare), "--input", str(frames[0].parent),
              "--out", str(tmp_path / "n.nc")],
    )  # fmt: skip
    assert_one_line_error(result, f"{bare}: not a nowcast checkpoint")
    assert not marker.exists() and not (tmp_path / "n.nc").exists()


def test_one_weights_message_at_every_entry_point(run, store, tmp_path):
    """Weights that do not fit the network: one message naming the file, with the caller's
    context (here the resume entry point and the shared builder)."""
    last = load_checkpoint(run[0] / "checkpoints" / "last.pt")
    wrong = dict(last, state_dict={k: v[..., :1] for k, v in last["state_dict"].items()})
    path = tmp_path / "wrong.pt"
    save_checkpoint(path, wrong)
    args, prefix = _entry_point("resume", path, run, store, tmp_path)
    assert_one_line_error(runner.invoke(app, args), prefix + "the weights do not fit a convlstm")
    with pytest.raises(Exception, match="the weights do not fit a convlstm sized by its config"):
        build_model(path, load_checkpoint(path))


def _convert(old: pathlib.Path, new: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CONVERT), str(old), str(new)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**subprocess_env(), "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )


def test_conversion_round_trip_keeps_weights_masks_and_generators(run, store, crafted, tmp_path):
    folder, _ = crafted
    original = load_checkpoint(run[0] / "checkpoints" / "last.pt")
    old_sum = checksums(folder / "old.pt")
    done = _convert(folder / "old.pt", tmp_path / "new.pt")
    assert done.returncode == 0, done.stderr
    assert checksums(folder / "old.pt") == old_sum  # the input is not touched
    new = load_checkpoint(tmp_path / "new.pt")  # the safe loader reads it
    assert new["format"] == FORMAT and new["step"] == original["step"] == 3
    assert new["state_dict"].keys() == original["state_dict"].keys()
    for k, v in original["state_dict"].items():
        assert new["state_dict"][k].dtype == v.dtype and torch.equal(new["state_dict"][k], v)
    for k in ("noise_mask", "coverage"):
        assert torch.equal(new["masks"][k], original["masks"][k])
    for k in ("x", "y"):
        assert torch.equal(new["grid"][k], original["grid"][k])
    # the generators continue exactly where the original left them
    draws = []
    for ckpt in (original, new):
        set_rng_states(ckpt["rng"])
        draws.append((random.random(), np.random.rand(), torch.rand(3)))
    assert draws[0][:2] == draws[1][:2] and torch.equal(draws[0][2], draws[1][2])
    # and the converted file resumes the run
    args, _ = _entry_point("resume", tmp_path / "new.pt", run, store, tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 6


def _script():
    spec = importlib.util.spec_from_file_location("convert_checkpoint", CONVERT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conversion_refuses_what_it_cannot_convert(run, tmp_path, capsys):
    script = _script()
    new_format = run[0] / "checkpoints" / "last.pt"
    assert script.main([str(new_format), str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convert_checkpoint: error: ") and err.count("\n") == 1, err
    assert f"not a '{OLD_FORMAT}' checkpoint" in err and not (tmp_path / "x.pt").exists()
    with pytest.raises(SystemExit):
        script.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "weights_only=False" in shown and "trust" in shown


def test_the_shipped_model_is_a_plain_checkpoint():
    """The shipped file loads with the safe unpickler alone, builds its network, and is the
    file models/README.md names by its SHA-256."""
    card = " ".join((REPO / "models" / "README.md").read_text().split())
    assert f"`{file_hash(SHIPPED)}`" in card
    raw = torch.load(SHIPPED, weights_only=True)
    assert raw["format"] == FORMAT
    ckpt = load_checkpoint(SHIPPED)
    assert ckpt["masks"]["noise_mask"].shape == (4, 100, 100)
    assert ckpt["grid"]["x"].shape == ckpt["grid"]["y"].shape == (100,)
    model = build_model(SHIPPED, ckpt)
    assert sum(p.numel() for p in model.parameters()) > 10_000


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one(run, store, tmp_path):
    """Resuming under a file size limit smaller than a checkpoint (as ``ulimit -f``, or a full
    disk): one line naming the checkpoint, exit 2, last.pt and best.pt as they were."""
    copy = tmp_path / "run"
    shutil.copytree(run[0], copy)
    cfg = tmp_path / "resume.yaml"
    tiny_config(store, copy, cfg, steps=6, val_every=3, checkpoint_every=3)
    ckpts = copy / "checkpoints"
    before = checksums(ckpts)
    limit = (ckpts / "last.pt").stat().st_size // 2
    assert limit > 20_000  # room for metrics.jsonl lines and Python's own small files
    result = nowcast_process(
        "train", "--config", str(cfg), "--resume", "--quiet",
        env=subprocess_env(), cwd=REPO, preexec_fn=_file_size_limit(limit),
    )  # fmt: skip
    line = assert_one_line_error(
        result, f"{ckpts}{os.sep}", "cannot write it", "nothing there was replaced"
    )
    assert "File too large" in line and "nothing there was replaced" in line
    assert checksums(ckpts) == before
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.pt", "last.pt"]  # no temp left
