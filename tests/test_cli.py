"""The command line: help, exit codes and one-line errors (a real subprocess where it matters)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from nowcast.cli import app

runner = CliRunner()


def _nowcast(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nowcast", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("preprocess", "train", "evaluate", "predict", "synth"):
        assert command in result.output


def test_every_command_has_help_with_common_options():
    for command in ("preprocess", "train", "evaluate", "predict", "synth"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, command
        for option in ("--config", "--set", "--quiet", "--debug"):
            assert option in result.output, (command, option)


def test_config_typo_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("synth:\n  dayz: 3\n")
    proc = _nowcast("synth", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"nowcast: error: {cfg}: synth.dayz: unknown key")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_bad_set_value_exit_2(tmp_path):
    proc = _nowcast("synth", "--set", "synth.days=many", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "nowcast: error: --set: synth.days: expected a positive integer, got 'many'"
    )


def test_bad_option_value_names_the_key(tmp_path):
    result = runner.invoke(app, ["synth", "--days", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "synth.days: expected a positive integer, got 0" in result.output


def test_synth_command_writes_an_archive(tmp_path):
    proc = _nowcast(
        "synth",
        "--out",
        str(tmp_path),
        "--start",
        "2024-06-30",
        "--days",
        "1",
        "--seed",
        "3",
        "--set",
        "synth.size=64",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list(tmp_path.glob("synth_20240630*.nc"))) == 238
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "clutter_mask.nc").exists()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("nowcast ")


def _boom(cfg):
    raise RuntimeError("kaput")


def test_internal_error_exit_1_and_debug_traceback(capsys):
    import pytest
    import typer

    from nowcast.cli import run_stage

    with pytest.raises(typer.Exit) as info:
        run_stage(_boom, None, [], True, False)
    assert info.value.exit_code == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaput" in err and "Traceback" not in err
    with pytest.raises(typer.Exit) as info:
        run_stage(_boom, None, [], True, True)
    assert info.value.exit_code == 1
    assert "Traceback" in capsys.readouterr().err
