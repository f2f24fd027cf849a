"""The `nowcast` command line: a thin Typer layer over the stage functions.

Every command takes ``--config FILE``, any number of ``--set section.key=value``, ``--quiet``
and ``--debug``. Exit codes: 0 success; 2 user error — a bad option, config key or file, or
a refusal of the operating system (read-only, disk full, permissions) — shown as one line
``nowcast: error: …`` on stderr, no traceback; 1 internal error (``--debug`` shows the
traceback).
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

try:  # typer ≥ 0.22 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as click_errors

from nowcast import __version__
from nowcast.errors import UserError
from nowcast.evaluate.baselines import BASELINES  # names only: imports neither torch nor pysteps
from nowcast.progress import console, set_quiet


class OneLineErrors(TyperGroup):
    """The command group, with click's usage errors (unknown option, bad value, missing
    option, unknown command) shown as one line ``nowcast: error: …`` on stderr, exit 2.

    ``nowcast`` alone still prints the help (exit 2), and ``--help`` exits 0."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        no_args = getattr(click_errors, "NoArgsIsHelpError", ())
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except no_args as exc:
            print(exc.ctx.get_help())
            code = exc.exit_code
        except click_errors.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            message = exc.format_message()
            if ctx is not None and ctx.parent is not None:
                message = f"{ctx.info_name}: {message}"
            if isinstance(exc, click_errors.UsageError) and ctx is not None:
                message += f" (see `{ctx.command_path} --help`)"
            print(f"nowcast: error: {' '.join(message.split())}", file=sys.stderr)
            code = exc.exit_code
        except (typer.Abort, getattr(click_errors, "Abort", typer.Abort)):
            print("nowcast: error: aborted", file=sys.stderr)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="nowcast",
    cls=OneLineErrors,
    help="Precipitation nowcasting from weather-radar archives: preprocess → train → evaluate → predict.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (keys left out take their defaults).",
        show_default=False,
    ),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        help="Override a config key, e.g. --set train.lr=3e-4 (repeatable).",
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or info lines.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]


def fail(message: str, code: int = 2) -> None:
    """Print ``nowcast: error: <message>`` as one line on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    print(f"nowcast: error: {line}", file=sys.stderr)
    raise typer.Exit(code)


def run_stage(
    stage: Callable[[Any], Any],
    config: Path | None,
    sets: list[str] | None,
    quiet: bool,
    debug: bool,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Load and validate the config, run ``stage(cfg)``, and turn failures into exit codes."""
    from nowcast.config import load_config
    from nowcast.outputs import protect_config

    set_quiet(quiet)
    try:
        protect_config(config)  # no output may replace the config file
        cfg = load_config(config, sets or [], overrides)
        return stage(cfg)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        fail(str(exc), 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except typer.Exit:
        raise
    except OSError as exc:  # the operating system's refusal is bad input too (exit 2)
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", 2)
    except Exception as exc:  # noqa: BLE001 - last-resort boundary of the CLI
        if debug:
            traceback.print_exc()
            raise typer.Exit(1) from None
        fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


def drop_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without the option ``name`` and its value, written ``name N`` or ``name=N``."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == name:
            next(args, None)
        elif not arg.startswith(f"{name}="):
            out.append(arg)
    return out


def _version(value: bool) -> None:
    if value:
        print(f"nowcast {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Precipitation nowcasting from weather-radar archives."""


@app.command()
def synth(
    out: Annotated[
        Optional[Path], typer.Option(help="Output folder \\[synth.out].", show_default=False)
    ] = None,
    start: Annotated[
        Optional[dt.datetime],
        typer.Option(
            formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD \\[synth.start].", show_default=False
        ),
    ] = None,
    days: Annotated[
        Optional[int], typer.Option(help="Number of days \\[synth.days].", show_default=False)
    ] = None,
    seed: Annotated[
        Optional[int], typer.Option(help="Random seed \\[synth.seed].", show_default=False)
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a synthetic radar archive: one CF-netCDF reflectivity file per 6-minute frame."""
    from nowcast.synth import synthesize

    def stage(cfg):
        archive = synthesize(cfg.synth)
        console.print(
            f"synth: wrote {archive.present.size} frames ({len(archive.missing)} left out on purpose) "
            f"to {archive.folder}; clutter pixels in {archive.clutter_file.name}, "
            f"list of missing frames in {archive.manifest_file.name}",
            highlight=False,
            soft_wrap=True,
        )
        return archive

    overrides = {
        "synth.out": str(out) if out else None,
        "synth.start": start.date().isoformat() if start else None,
        "synth.days": days,
        "synth.seed": seed,
    }
    run_stage(stage, config, set_, quiet, debug, overrides)


@app.command()
def preprocess(
    paths: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="More input files, directories or globs (added to --input).", show_default=False
        ),
    ] = None,
    input_: Annotated[
        Optional[list[str]],
        typer.Option(
            "--input",
            "-i",
            help="Radar files, directories or globs (repeatable) \\[input.paths].",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Store file to write \\[data.store].", show_default=False
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            help="Local dask worker processes, 0 = none \\[preprocess.workers].", show_default=False
        ),
    ] = None,
    scheduler: Annotated[
        Optional[str],
        typer.Option(
            help="Address of a running dask scheduler \\[preprocess.scheduler].", show_default=False
        ),
    ] = None,
    skip_bad: Annotated[
        Optional[bool],
        typer.Option(
            "--skip-bad",
            help="Skip (and count) unusable files \\[input.skip_bad].",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Raw radar files (CF-netCDF, ODIM_H5) → HKO-style 100×100 dataset store (one .nc file)."""
    from nowcast.preprocess import preprocess as stage

    inputs = [*(input_ or []), *(paths or [])]
    overrides = {
        "input.paths": inputs or None,
        "data.store": str(output) if output else None,
        "preprocess.workers": workers,
        "preprocess.scheduler": scheduler,
        "input.skip_bad": skip_bad,
    }
    run_stage(stage, config, set_, quiet, debug, overrides)


@app.command()
def train(
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the run in train.out_dir from its checkpoints/last.pt."
        ),
    ] = False,
    device: Annotated[
        Optional[str], typer.Option(help="auto, cpu or cuda \\[train.device].", show_default=False)
    ] = None,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic", help="Deterministic algorithms only \\[train.deterministic]."
        ),
    ] = False,
    nproc: Annotated[
        Optional[int],
        typer.Option(
            "--nproc",
            min=1,
            help="Run N processes on this machine (DDP, launched with torchrun).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train a ConvLSTM, PredRNN or MIM encoder–forecaster on a dataset store."""
    from nowcast.train import preflight
    from nowcast.train import train as train_run
    from nowcast.train.ddp import launch

    overrides = {"train.device": device, "train.deterministic": True if deterministic else None}

    def stage(cfg):
        if nproc is None or nproc == 1:
            result = train_run(cfg, resume=resume)
            if result.main:  # under torchrun: the process that wrote the run
                console.print(train_summary(result), highlight=False, soft_wrap=True)
            return result
        preflight(cfg, resume, world=nproc)  # bad input fails here, once, before any process starts
        # the user's own arguments, run by every process
        args = drop_option(sys.argv[1:], "--nproc")
        code = launch(nproc, args)
        if code != 0:
            fail(
                f"train: the {nproc} torchrun processes failed (exit code {code}; see the messages above)",
                code,
            )
        return cfg.train.out_dir

    run_stage(stage, config, set_, quiet, debug, overrides)


def train_summary(result: Any) -> str:
    """One line on a finished :class:`nowcast.train.TrainResult`: steps, how it ended, the
    best validation value and its step against persistence, where the checkpoints are."""
    how = "stopped early (patience)" if result.stopped_early else "done"
    metric = result.best_metric
    best = (
        f"best val {metric} {result.best_value:.4g} at step {result.best_step}"
        if result.best_value is not None
        else f"no finite val {metric}"
    )
    ref = result.persistence.get(metric)
    ref_text = f" (persistence {ref:.4g})" if ref is not None and math.isfinite(ref) else ""
    return (
        f"train: {result.steps} steps, {how}; {best}{ref_text}; checkpoints in "
        f"{result.last_checkpoint.parent} ({result.best_checkpoint.name}, "
        f"{result.last_checkpoint.name})"
    )


@app.command()
def evaluate(
    checkpoint: Annotated[
        Optional[list[Path]],
        typer.Option(
            help="A trained checkpoint to score (repeatable: one method each).", show_default=False
        ),
    ] = None,
    baselines: Annotated[
        Optional[str],
        typer.Option(
            help=f"Comma-separated baselines ({', '.join(BASELINES)}) or none "
            "\\[evaluate.baselines].",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Report folder \\[evaluate.out].", show_default=False)
    ] = None,
    split: Annotated[
        Optional[str],
        typer.Option(help="train, val or test \\[evaluate.split].", show_default=False),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score checkpoints and baselines: CSI/HSS/POD/FAR and MSE per lead time and threshold."""
    from nowcast.evaluate import evaluate as evaluate_stage

    names = None
    if baselines is not None:
        names = [b.strip() for b in baselines.split(",") if b.strip() and b.strip() != "none"]
        unknown = [b for b in names if b not in BASELINES]
        if unknown:
            fail(
                f"--baselines: unknown baseline {unknown[0]!r} "
                f"(expected {', '.join(BASELINES)} or none)"
            )
    overrides = {
        "evaluate.baselines": names,
        "evaluate.out": str(out) if out else None,
        "evaluate.split": split,
    }

    def stage(cfg):
        result = evaluate_stage(cfg, checkpoint or [])
        print_evaluation(result, quiet)
        return result

    run_stage(stage, config, set_, quiet, debug, overrides)


def print_evaluation(result: Any, quiet: bool) -> None:
    """Show a :class:`nowcast.evaluate.report.EvaluateResult` on stdout: the score table
    (also with ``--quiet``), then the report's files, one path a line (not with ``--quiet``)."""
    from rich.console import Console

    from nowcast.evaluate.report import terminal_table

    stdout = Console(highlight=False)
    if not stdout.is_terminal:  # a log or a pipe: do not squeeze the table into 80 columns
        stdout = Console(highlight=False, width=120)
    stdout.print(terminal_table(result.methods, result.run))
    if not quiet:
        stdout.print(f"evaluate: report in {result.folder}", soft_wrap=True, markup=False)
        for path in result.files:
            stdout.print(f"  {path}", soft_wrap=True, markup=False)


@app.command()
def predict(
    checkpoint: Annotated[
        Path, typer.Option(help="Trained checkpoint (e.g. runs/run/checkpoints/best.pt).")
    ],
    out: Annotated[Path, typer.Option(help="The nowcast file to write (CF-1.8 netCDF).")],
    input_: Annotated[
        Optional[list[str]],
        typer.Option(
            "--input",
            "-i",
            help="Radar files, a directory (its newest frames are used) or a glob; repeatable.",
            show_default=False,
        ),
    ] = None,
    more: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="[PATH]...",
            help="More input paths, so that `--input data/*.nc` works as the shell expands it.",
            show_default=False,
        ),
    ] = None,
    png: Annotated[
        Optional[Path],
        typer.Option(help="Also write one PNG per lead into this folder.", show_default=False),
    ] = None,
    gif: Annotated[
        Optional[Path],
        typer.Option(help="Also write an animated GIF of the leads.", show_default=False),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Nowcast from new radar files with a trained checkpoint; writes CF-netCDF."""
    from nowcast.predict import predict as run_predict

    def stage(cfg):
        path = run_predict(cfg, checkpoint, [*(input_ or []), *(more or [])], out, png=png, gif=gif)
        extra = "".join(f", {what} {p}" for what, p in (("PNGs in", png), ("GIF", gif)) if p)
        if not quiet:
            console.print(f"predict: wrote {path}{extra}", highlight=False, soft_wrap=True)
        # everything is written and closed: the interpreter's last garbage collections at
        # exit need not walk the objects of torch's modules again
        gc.freeze()
        return path

    run_stage(stage, config, set_, quiet, debug)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
