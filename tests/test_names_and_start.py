"""Names that do not clash and a light start: one definition per public name, one tensor
layout for every forecast method, one device resolver, ``--nproc`` relaunching the user's
own arguments, and ``predict`` importing only what it runs (read from ``sys.modules`` of
real processes, never from timings)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_support import assert_one_line_error, checksums
from predict_support import make_checkpoint, write_frames
from train_support import subprocess_env, tiny_config
from typer.testing import CliRunner

from nowcast.cli import app, drop_option
from nowcast.config import load_config
from nowcast.data.toy import write_blob_store
from nowcast.evaluate.baselines import BASELINES, build_baselines
from nowcast.evaluate.methods import ModelMethod
from nowcast.forecast import persistence
from nowcast.models import REGISTRY, build

PACKAGE = Path(__file__).resolve().parents[1] / "nowcast"
REPO = PACKAGE.parent
runner = CliRunner()

#: libraries a nowcast without pictures never runs: training's clutter filter (scikit-learn),
#: preprocessing's scheduler (dask), plotting (matplotlib), extrapolation (pysteps)
NOT_FOR_PREDICT = {"sklearn", "dask", "matplotlib", "pysteps"}


# --------------------------------------------------------------------------- one name, one thing


def _public_definitions() -> dict[str, list[str]]:
    """Public top-level function and class names of nowcast/ → the modules defining them."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                found.setdefault(node.name, []).append(module)
    return found


def test_no_public_name_is_defined_twice():
    """``persistence``, ``Timings``, ``check_inputs`` … each mean one thing. The command
    functions of ``nowcast.cli`` are named after the stages they run, and only those."""
    clashes = {
        name: modules
        for name, modules in _public_definitions().items()
        if len([m for m in modules if m != "nowcast.cli"]) > 1
        or (
            len(modules) > 1 and name not in {"synth", "preprocess", "train", "evaluate", "predict"}
        )
    }
    assert clashes == {}


def test_no_vaguely_named_module():
    vague = {"utils", "util", "helpers", "helper", "support", "misc", "common", "tools"}
    named = [p for p in PACKAGE.rglob("*.py") if p.stem in vague or p.parent.name in vague]
    assert named == []


def test_cli_has_no_placeholder_stage():
    import nowcast.cli as cli

    assert not hasattr(cli, "not_built")


# --------------------------------------------------------------------------- one layout


def _blobs(b: int = 2, t: int = 3, h: int = 32, w: int = 32) -> torch.Tensor:
    """Gray (b, t, 1, h, w): a square moving one pixel a frame (32 × 32: pysteps' Proesmans
    flow needs at least that)."""
    x = torch.zeros(b, t, 1, h, w)
    for k in range(t):
        x[:, k, 0, 5:10, 3 + k : 8 + k] = 0.6
    return x


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_takes_and_gives_the_networks_layout(name):
    x = _blobs()
    y = build_baselines([name], n_frames=2)[name](x, 4)
    assert y.shape == (2, 4, 1, 32, 32) and y.dtype == torch.float32


def test_a_network_is_a_forecast_method_as_it_stands():
    cfg = load_config(None, ["model.layers=1", "model.hidden=[4]", "model.kernel=3"]).model
    model = build(next(iter(REGISTRY)), cfg)
    x = _blobs()
    with torch.no_grad():
        direct = model.eval()(x, 4)
    wrapped = ModelMethod(model)(x, 4)
    assert direct.shape == wrapped.shape == (2, 4, 1, 32, 32)
    assert torch.equal(direct, wrapped)  # evaluate calls the network without reshaping


def test_persistence_is_the_last_input_in_the_same_layout():
    x = torch.rand(2, 3, 1, 5, 6)
    y = persistence(x, 4)
    assert y.shape == (2, 4, 1, 5, 6)
    assert all(torch.equal(y[:, k], x[:, -1]) for k in range(4))


# --------------------------------------------------------------------------- one device resolver


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    return write_blob_store(root / "store.nc", ("train", "val", "test"), h=16, w=16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_both_stages_say_alike_that_there_is_no_gpu(store, tmp_path):
    before = checksums(store)
    config = tmp_path / "train.yaml"
    tiny_config(store, tmp_path / "run", config, steps=1, val_every=1)
    trained = runner.invoke(app, ["train", "--config", str(config), "--device", "cuda"])
    line = assert_one_line_error(trained, "train.device: cuda requested", "sees no CUDA GPU")
    assert not (tmp_path / "run").exists()
    sets = ["--set", f"data.store={store}", "--set", "evaluate.device=cuda"]
    out = tmp_path / "report"
    scored = runner.invoke(
        app, ["evaluate", *sets, "--baselines", "persistence", "--out", str(out)]
    )
    assert assert_one_line_error(scored, "evaluate.device: cuda requested") == line.replace(
        "train.device", "evaluate.device"
    )
    assert not out.exists()
    assert checksums(store) == before


# --------------------------------------------------------------------------- --nproc


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--nproc", "2", "--resume"], ["train", "--resume"]),
        (["train", "--nproc=2", "--resume"], ["train", "--resume"]),
        (
            ["train", "-c", "a b.yaml", "--set", "train.steps=6", "--quiet", "--nproc", "4"],
            ["train", "-c", "a b.yaml", "--set", "train.steps=6", "--quiet"],
        ),
        (["train", "--set", "x=--nproc", "--nproc=3"], ["train", "--set", "x=--nproc"]),
    ],
)
def test_nproc_relaunch_keeps_the_users_own_arguments(argv, expected):
    assert drop_option(argv, "--nproc") == expected


# --------------------------------------------------------------------------- fast start


def _modules_of(code: str) -> set[str]:
    """Top-level names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_predict_pipeline_loads_nothing_predict_does_not_run():
    loaded = _modules_of("import nowcast.predict.pipeline")
    assert "torch" in loaded  # the probe sees what is imported
    assert loaded & NOT_FOR_PREDICT == set()


def _cli_in_process(*args: str) -> str:
    """Python code that runs ``nowcast ARGS`` in this process and exits 1 if it failed."""
    return (
        "import runpy, sys\n"
        f"sys.argv = ['nowcast', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('nowcast', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code in (0, None), stop.code\n"
    )


@pytest.fixture(scope="module")
def predict_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("start")
    files = write_frames(root / "in", [0, 6, 12])
    return root, make_checkpoint(root / "c.pt", files[0])


def test_a_nowcast_imports_only_what_it_runs(predict_case, tmp_path):
    root, ckpt = predict_case
    out = tmp_path / "n.nc"
    args = ["predict", "--checkpoint", str(ckpt), "--out", str(out), "--quiet"]
    loaded = _modules_of(_cli_in_process(*args, "--input", str(root / "in")))
    assert out.is_file()
    assert loaded & NOT_FOR_PREDICT == set()
    # pictures are drawn when asked for, and only then is matplotlib imported
    pngs = tmp_path / "png"
    loaded = _modules_of(_cli_in_process(*args, "--png", str(pngs), "--input", str(root / "in")))
    assert len(list(pngs.glob("*.png"))) == 4
    assert "matplotlib" in loaded
