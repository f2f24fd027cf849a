"""The package layout: names written once (config ``Literal`` = registry keys), packages that
depend one way (no stage below evaluate imports it, no import cycle between packages), and
the one input-frame check of the motions, through the command line."""

from __future__ import annotations

import ast
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import typer
from cli_support import assert_one_line_error, checksums
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.config import Config
from nowcast.data.toy import write_blob_store
from nowcast.errors import UserError
from nowcast.evaluate.baselines import BASELINES, describe
from nowcast.extrapolation.motion import MOTIONS, check_frames, get_motion, motion_frames
from nowcast.models import REGISTRY

PACKAGE = Path(__file__).resolve().parents[1] / "nowcast"
runner = CliRunner()

#: config keys whose ``Literal`` lists the names of a registry: they must agree
REGISTRIES = {
    "evaluate.baselines": BASELINES,
    "model.name": REGISTRY,
    "model.advection_motion": MOTIONS,
}
#: config keys whose ``Literal`` is a closed set of options read in one place (no registry)
CHOICES = {
    "evaluate.split",
    "evaluate.device",
    "input.format",
    "model.matching_reference",
    "predict.noise_mask",
    "train.optimizer",
    "train.lr_schedule",
    "train.loss",
    "train.device",
    "train.amp",
    "evaluate.amp",
    "predict.amp",
    "preprocess.crops",
}
#: packages (directories under nowcast/) that must not import the evaluate stage
BELOW_EVALUATE = ("models", "train", "predict", "preprocess", "io")


# --------------------------------------------------------------------------- names written once


def _literal_values(annotation) -> tuple | None:
    """The values of the ``Literal`` in ``annotation`` (also inside list[...] / Optional)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        values = _literal_values(arg)
        if values is not None:
            return values
    return None


def _config_literals(model: type[pydantic.BaseModel], prefix: str = "") -> Iterator:
    """(dotted key, Literal values) for every Literal-typed key of the config tree."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            yield from _config_literals(annotation, f"{prefix}{name}.")
            continue
        values = _literal_values(annotation)
        if values is not None:
            yield f"{prefix}{name}", values


def test_every_config_literal_of_names_equals_its_registry():
    literals = dict(_config_literals(Config))
    assert set(REGISTRIES) <= set(literals), "a registry key is no longer a Literal"
    unclassified = set(literals) - set(REGISTRIES) - CHOICES
    assert not unclassified, f"new Literal keys: add each to REGISTRIES or CHOICES: {unclassified}"
    for key, registry in REGISTRIES.items():
        assert list(literals[key]) == list(registry), key  # same names, same order


def test_the_baselines_help_and_validation_come_from_the_registry():
    command = typer.main.get_command(app).commands["evaluate"]
    (option,) = [p for p in command.params if p.name == "baselines"]
    assert f"({', '.join(BASELINES)}) or none" in option.help


def test_motion_registry_entries():
    assert get_motion("proesmans") is MOTIONS["proesmans"]
    assert motion_frames("lk") == 3 and motion_frames("lk", 5) == 5
    assert motion_frames("proesmans", 5) == 2  # a fixed motion ignores the count asked for
    with pytest.raises(UserError, match=r"^unknown motion method 'vet' \(known: lk, proesmans\)"):
        get_motion("vet")
    with pytest.raises(ValueError, match="at least 2 frames"):
        motion_frames("lk", 1)
    assert "Proesmans optical flow from the last 2 inputs" in describe("extrapolation_proesmans")
    assert "LK motion from the last 4 inputs" in describe("extrapolation", 4)


def test_the_frame_check_names_the_key():
    check_frames("lk", 3, 3, "model.advection")  # enough
    with pytest.raises(UserError, match=r"^data\.n_in: the proesmans motion needs 2 input frames"):
        check_frames("proesmans", 2, 1, "data.n_in")
    with pytest.raises(UserError, match=r"got 2 \(data\.n_in\)$"):
        check_frames("lk", 3, 2, "model.advection")


# --------------------------------------------------------------------------- import graph


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """Every nowcast module that ``module`` imports anywhere in its file (top level, inside
    functions, under TYPE_CHECKING, or by ``importlib.import_module("…")``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level − 1 packages
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from a import b` imports a, and a.b where b is a module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return {name for name in found if name in MODULES}


def _package(module: str) -> str:
    """``nowcast.models.base`` → ``nowcast.models``; ``nowcast.cli`` → ``nowcast.cli``."""
    return ".".join(module.split(".")[:2])


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {_package(m): set() for m in MODULES}
    for module in MODULES:
        for target in _imports(module):
            if _package(target) != _package(module):
                graph[_package(module)].add(_package(target))
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, …, a], or None where it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_parser_sees_lazy_imports():
    """Guards the two tests below: function-local and module-level imports are both found."""
    assert "nowcast.evaluate" in _imports("nowcast.cli")  # inside the evaluate command
    assert "nowcast.evaluate.baselines" in _imports("nowcast.cli")  # at the top
    assert "nowcast.extrapolation.semilagrangian" in _imports("nowcast.evaluate.baselines")
    assert "nowcast" in _imports("nowcast.store")  # from nowcast import __version__
    graph = _package_graph()
    assert "nowcast.extrapolation" in graph["nowcast.models"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_no_stage_below_evaluate_imports_it():
    offenders = [
        f"{module} imports {target}"
        for module in MODULES
        if module.split(".")[1:2] and module.split(".")[1] in BELOW_EVALUATE
        for target in _imports(module)
        if target == "nowcast.evaluate" or target.startswith("nowcast.evaluate.")
    ]
    assert not offenders


def test_no_import_cycle_between_packages():
    """At package level (``nowcast.models``, ``nowcast.config``, ``nowcast.cli``, …), counting
    every import in a file, also the lazy ones inside functions: a lazy import delays a
    dependency but does not remove it, so packages must still form layers."""
    assert _cycle(_package_graph()) is None, _cycle(_package_graph())


def test_the_command_line_imports_no_numerics_for_help():
    """``nowcast --help`` stays fast: the baseline names it shows come from a light registry."""
    code = (
        "import sys, nowcast.cli; print(sorted({'numpy', 'torch', 'pysteps'} & set(sys.modules)))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the frame check, CLI


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_blob_store(
        tmp_path_factory.mktemp("layout") / "store.nc", ("train", "val", "test"), h=16, w=16
    )


@pytest.mark.parametrize(
    ("keys", "baselines", "fragments"),
    [
        (
            {"data.n_in": 1},
            "persistence,extrapolation_proesmans",
            ["data.n_in: the proesmans motion needs 2 input frames, got 1"],
        ),
        (
            {"data.n_in": 3, "evaluate.extrapolation_frames": 4},
            "extrapolation",
            [
                "evaluate.extrapolation_frames: the lk motion needs 4 input frames, got 3 (data.n_in)"
            ],
        ),
        (
            {"data.n_in": 3},
            "persistence,nwp",
            [f"--baselines: unknown baseline 'nwp' (expected {', '.join(BASELINES)} or none)"],
        ),
    ],
)
def test_evaluate_refuses_too_few_inputs_for_a_motion(store, tmp_path, keys, baselines, fragments):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("{}\n")  # an earlier report: must survive
    before = checksums(store, out)
    sets = [
        a
        for k, v in {"data.store": store, "data.n_out": 2, **keys}.items()
        for a in ("--set", f"{k}={v}")
    ]
    result = runner.invoke(app, ["evaluate", *sets, "--baselines", baselines, "--out", str(out)])
    assert_one_line_error(result, *fragments)
    assert checksums(store, out) == before


def test_train_refuses_too_few_inputs_for_the_advection_motion(store, tmp_path):
    sets = {
        "data.store": store,
        "data.n_in": 2,
        "data.n_out": 2,
        "data.workers": 0,
        "model.name": "convlstm",
        "model.layers": 1,
        "model.hidden": 4,
        "model.kernel": 3,
        "model.patch": 4,
        "model.advection": "true",
        "train.out_dir": tmp_path / "run",
        "train.steps": 1,
        "train.batch_size": 2,
        "train.device": "cpu",
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    before = checksums(store)
    result = runner.invoke(app, ["train", "--quiet", *args])
    assert_one_line_error(
        result, "model.advection: the lk motion needs 3 input frames, got 2 (data.n_in)"
    )
    assert checksums(store) == before
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
