"""Hostile variants of the trust classes through the CLI: checkpoints whose contract keys have
the wrong types, shapes or values (refused in one line at every entry point, before a
network is built); the --config file as an output (refused, also through links); outputs
made with the umask's mode; absurd config values (refused by key before any work)."""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

import pytest
import torch
from cli_support import assert_one_line_error, checksums, nowcast_process
from predict_support import make_checkpoint, write_frames
from test_preprocess_cli import SMALL, _frame
from train_support import REPO, tiny_config
from typer.testing import CliRunner

from nowcast.checkpoint import load_checkpoint
from nowcast.cli import app
from nowcast.data.toy import write_blob_store

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def radar(tmp_path_factory):
    """Three predict-sized frames in root/in and a tiny checkpoint for them."""
    root = tmp_path_factory.mktemp("hostile")
    files = write_frames(root / "in", [0, 6, 12])
    return root, files, make_checkpoint(root / "ckpt.pt", files[0])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile_store") / "store.nc"
    return write_blob_store(path, ("train", "val", "test"), h=16, w=16, block_len=20)


# ----------------------------------------------------- checkpoints with broken contract keys


def _mutate(payload: dict, case: str) -> dict:
    """``payload`` with one contract key of the wrong type, shape or value."""
    masks, grid, sd = payload["masks"], payload["grid"], payload["state_dict"]
    first = next(iter(sd))
    bad = {
        "step a string": {"step": "abc"},
        "step negative": {"step": -5},
        "model_name an int": {"model_name": 5},
        "masks a string": {"masks": "abc"},
        "months a string": {"masks": {**masks, "months": "2024-07"}},
        "noise mask a string": {"masks": {**masks, "noise_mask": "abc"}},
        "coverage off the grid": {"masks": {**masks, "coverage": masks["coverage"][:3]}},
        "grid x short": {"grid": {**grid, "x": grid["x"][:5]}},
        "grid x NaN": {"grid": {**grid, "x": grid["x"] * float("nan")}},
        "grid mapping a string": {"grid": {**grid, "grid_mapping": "abc"}},
        "weight an int": {"state_dict": {**sd, first: 1}},
        "weights NaN": {"state_dict": {k: v * float("nan") for k, v in sd.items()}},
        "weights complex": {"state_dict": {k: v.to(torch.complex64) for k, v in sd.items()}},
        "weights float8": {"state_dict": {k: v.to(torch.float8_e4m3fn) for k, v in sd.items()}},
        "weights sparse": {"state_dict": {k: v.to_sparse() for k, v in sd.items()}},
    }[case]
    return {**payload, **bad}


CASES = [
    ("step a string", "step is 'abc'"),
    ("step negative", "step is -5"),
    ("model_name an int", "model_name is a int"),
    ("masks a string", "masks is a str, not a mapping"),
    ("months a string", "masks['months'] is not a list"),
    ("noise mask a string", "masks['noise_mask'] is a str, not a tensor"),
    ("coverage off the grid", "masks['coverage'] is not on the"),
    ("grid x short", "is not on the"),
    ("grid x NaN", "grid['x'] holds values that are not finite"),
    ("grid mapping a string", "grid['grid_mapping'] is not a mapping"),
    ("weight an int", "is a int, not a tensor"),
    ("weights NaN", "holds values that are not finite"),
    ("weights complex", "is torch.complex64"),
    ("weights float8", "is torch.float8_e4m3fn"),
    ("weights sparse", "is not a dense tensor"),
]


@pytest.mark.parametrize("case,fragment", CASES, ids=[c for c, _ in CASES])
def test_a_checkpoint_with_a_broken_key_is_one_line_at_predict(radar, tmp_path, case, fragment):
    root, _, ckpt = radar
    bad = tmp_path / "bad.pt"
    torch.save(_mutate(load_checkpoint(ckpt), case), bad)
    before = checksums(root)
    out = tmp_path / "n.nc"
    args = ["predict", "-q", "--checkpoint", str(bad), "--input", str(root / "in")]
    result = runner.invoke(app, [*args, "--out", str(out), "--gif", str(tmp_path / "n.gif")])
    assert_one_line_error(result, f"{bad}: unusable nowcast checkpoint", fragment)
    assert checksums(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


@pytest.mark.parametrize("kind", ["evaluate", "init_from"])
@pytest.mark.parametrize("case", ["step a string", "weights NaN", "grid x short"])
def test_a_checkpoint_with_a_broken_key_is_one_line_at_evaluate_and_train(
    radar, store, tmp_path, kind, case
):
    _, _, ckpt = radar
    bad = tmp_path / "bad.pt"
    torch.save(_mutate(load_checkpoint(ckpt), case), bad)
    if kind == "evaluate":
        args = ["evaluate", "-q", "--checkpoint", str(bad), "--out", str(tmp_path / "rep")]
        args += ["--set", f"data.store={store}"]
        prefix = f"{bad}: unusable nowcast checkpoint"
    else:
        cfg = tmp_path / "ft.yaml"
        tiny_config(store, tmp_path / "ft", cfg, init_from=str(bad))
        args, prefix = ["train", "-q", "--config", str(cfg)], f"train.init_from: {bad}: unusable"
    before = checksums(store, bad)
    assert_one_line_error(runner.invoke(app, args), prefix)
    assert checksums(store, bad) == before
    assert not (tmp_path / "rep").exists() and not (tmp_path / "ft").exists()


def test_a_checkpoint_naming_a_huge_network_allocates_nothing(radar, tmp_path):
    """Config of 16 layers × 4096 channels (tens of GB of weights) with a tiny state_dict:
    refused by the weights before the network is built, under a 6 GB address-space limit
    (a real process)."""
    root, _, ckpt = radar
    payload = load_checkpoint(ckpt)
    config = {**payload["config"], "model": {**payload["config"]["model"]}}
    config["model"].update(layers=16, hidden=[4096] * 16)
    bad = tmp_path / "huge.pt"
    torch.save({**payload, "config": config}, bad)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["predict", "-q", "--checkpoint", str(bad), "--input", str(root / "in")]
    proc = nowcast_process(
        *args, "--out", str(tmp_path / "n.nc"), preexec_fn=limit, env=env, cwd=REPO
    )
    assert_one_line_error(proc, f"{bad}: the weights do not fit a convlstm sized by its config")
    assert not (tmp_path / "n.nc").exists()


# ------------------------------------------------------------- the --config file as an output


def _config_alias(cfg: Path, how: str, where: Path) -> Path:
    if how == "same":
        return cfg
    (os.symlink if how == "symlink" else os.link)(cfg, where)
    return where


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_the_config_file_is_never_an_output(radar, tmp_path, how):
    root, _, ckpt = radar
    cfg = tmp_path / "c.yaml"
    cfg.write_text("predict: {dpi: 50}\n")
    out = _config_alias(cfg, how, tmp_path / "alias.yaml")
    before = checksums(root, cfg)
    args = ["predict", "-q", "-c", str(cfg), "--checkpoint", str(ckpt), "-i", str(root / "in")]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert_one_line_error(result, f"--out: {out} is one of the inputs")
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "n.nc"), "--gif", str(out)])
    assert_one_line_error(result, f"--gif: {out} is one of the inputs")
    archive = tmp_path / "in"
    archive.mkdir()
    for k in range(3):
        _frame(archive / f"a_{k}.nc", 6 * k)
    before.update(checksums(archive))
    result = runner.invoke(
        app, ["preprocess", "-q", "-c", str(cfg), *SMALL, "-i", str(archive), "-o", str(out)]
    )
    assert_one_line_error(result, f"data.store (--output): {out} is one of the inputs")
    assert checksums(root, cfg, archive) == before
    assert not (tmp_path / "n.nc").exists()


def test_a_report_folder_holding_the_config_is_refused(store, tmp_path):
    rep = tmp_path / "rep"
    rep.mkdir()
    cfg = rep / "config.yaml"  # a report file name, but here it is the input
    cfg.write_text("data: {n_in: 3, n_out: 4}\n")
    before = checksums(rep)
    args = ["evaluate", "-q", "-c", str(cfg), "--set", f"data.store={store}"]
    result = runner.invoke(app, [*args, "--baselines", "persistence", "--out", str(rep)])
    assert_one_line_error(result, f"evaluate.out (--out): {rep} holds the input {cfg}")
    assert checksums(rep) == before


# ------------------------------------------------------------------------ modes of outputs


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_get_the_mode_the_umask_gives(radar, store, tmp_path, umask_027):
    """Files 0o666 and folders 0o777 less the umask, as a plain open/mkdir makes them (not
    the 0o600/0o700 of a private temporary)."""
    root, _, ckpt = radar
    args = ["predict", "-q", "--checkpoint", str(ckpt), "-i", str(root / "in")]
    out, gif, png = tmp_path / "n.nc", tmp_path / "n.gif", tmp_path / "png"
    result = runner.invoke(app, [*args, "--out", str(out), "--gif", str(gif), "--png", str(png)])
    assert result.exit_code == 0, result.output
    rep = tmp_path / "rep"
    base = ["evaluate", "-q", "--set", f"data.store={store}", "--set", "data.n_in=3"]
    base += ["--set", "data.n_out=4", "--baselines", "persistence", "--split", "test"]
    result = runner.invoke(app, [*base, "--out", str(rep)])
    assert result.exit_code == 0, result.output
    files = [out, gif, *png.iterdir(), *rep.iterdir()]
    assert files and {_mode(f) for f in files} == {0o640}
    assert {_mode(d) for d in (png, rep)} == {0o750}


def test_a_checkpoint_and_a_store_get_the_mode_the_umask_gives(store, tmp_path, umask_027):
    from nowcast.train import train

    train(tiny_config(store, tmp_path / "run", steps=3, val_every=3, checkpoint_every=3))
    written = [*(tmp_path / "run").rglob("*.pt"), tmp_path / "run" / "config.yaml"]
    assert len(written) == 3 and {_mode(f) for f in written} == {0o640}
    archive = tmp_path / "in"
    archive.mkdir()
    for k in range(3):
        _frame(archive / f"a_{k}.nc", 6 * k)
    out = tmp_path / "s.nc"
    result = runner.invoke(app, ["preprocess", "-q", *SMALL, "-i", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _mode(out) == 0o640


# -------------------------------------------------------------------- absurd config values

ABSURD = [
    ("train.lr=.inf", "train.lr: expected a positive number, got inf"),
    ("train.weight_decay=.inf", "train.weight_decay: expected a non-negative number, got inf"),
    ("data.n_out=100000", "data.n_out: expected an integer in [1, 1000]"),
    ("data.workers=100000", "data.workers: expected an integer in [0, 256]"),
    ("train.threads=100000", "train.threads: expected an integer in [0, 256]"),
    ("predict.dpi=100000", "predict.dpi: expected an integer in [10, 1000]"),
    ("predict.leads=100000000", "predict.leads: expected an integer in [1, 1000]"),
    ("predict.threads=100000", "predict.threads: expected an integer in [0, 256]"),
    ("preprocess.workers=100000", "preprocess.workers: expected an integer in [0, 256]"),
]


@pytest.mark.parametrize("command", ["train", "predict", "preprocess"])
@pytest.mark.parametrize("item,fragment", ABSURD, ids=[a[0] for a in ABSURD])
def test_absurd_values_are_refused_by_key(radar, tmp_path, command, item, fragment):
    """Every command validates the whole config first: the key is named before any work
    (each command's other input is missing, so nothing could run had the value passed)."""
    _, _, ckpt = radar
    args = {
        "train": ["train", "--set", f"data.store={tmp_path}/none.nc"]
        + ["--set", f"train.out_dir={tmp_path}/r"],
        "predict": ["predict", "--checkpoint", str(ckpt), "-i", str(tmp_path / "none")]
        + ["--out", str(tmp_path / "n.nc")],
        "preprocess": ["preprocess", "-i", str(tmp_path / "none"), "-o", str(tmp_path / "s.nc")],
    }[command]
    result = runner.invoke(app, [*args, "-q", "--set", item])
    assert_one_line_error(result, f"--set: {fragment}")
    assert sorted(tmp_path.iterdir()) == []
