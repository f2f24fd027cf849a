"""Config validation: every problem is one line that names the key (and the file or --set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nowcast.config import Config, ConfigError, load_config, save_config
from nowcast.config.synth import SynthConfig

REPO = Path(__file__).resolve().parents[1]


def _error(tmp_path, text=None, sets=()):
    path = None
    if text is not None:
        path = tmp_path / "cfg.yaml"
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, sets)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_need_no_file():
    cfg = load_config()
    assert cfg.zr.a == 200.0 and cfg.zr.b == 1.6
    assert cfg.synth == SynthConfig()


def test_wrong_type_names_file_and_key(tmp_path):
    msg = _error(tmp_path, "zr:\n  a: fast\n")
    assert msg == f"{tmp_path / 'cfg.yaml'}: zr.a: expected a positive number, got 'fast'"


def test_out_of_range(tmp_path):
    assert _error(tmp_path, "zr:\n  b: -1\n").endswith("zr.b: expected a positive number, got -1")
    assert _error(tmp_path, "synth:\n  size: 10\n").endswith(
        "synth.size: expected an integer in [64, 4096], got 10"
    )
    assert _error(tmp_path, "synth:\n  days: 0\n").endswith(
        "synth.days: expected a positive integer, got 0"
    )


def test_unknown_key_lists_the_known_ones(tmp_path):
    msg = _error(tmp_path, "synth:\n  dayz: 3\n")
    assert "synth.dayz: unknown key" in msg and "days" in msg
    assert "traing: unknown key" in _error(tmp_path, "traing:\n  lr: 1\n")


def test_wrong_shapes(tmp_path):
    assert _error(tmp_path, "zr: 3\n").endswith("zr: expected a section (a mapping of keys), got 3")
    assert "expected a mapping of sections" in _error(tmp_path, "- 1\n- 2\n")
    assert "invalid YAML at line" in _error(tmp_path, "zr:\n  a: [1\n")
    assert "synth.start: expected a date (YYYY-MM-DD), got 'June'" in _error(
        tmp_path, "synth:\n  start: June\n"
    )


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_set_overrides_are_validated_like_the_file(tmp_path):
    cfg = load_config(None, ["zr.a=58.53", "zr.b=1.56", "synth.days=3"])
    assert (cfg.zr.a, cfg.zr.b, cfg.synth.days) == (58.53, 1.56, 3)
    assert (
        _error(tmp_path, sets=["zr.a=fast"])
        == "--set: zr.a: expected a positive number, got 'fast'"
    )
    assert _error(tmp_path, sets=["synth.dayz=1"]).startswith("--set: synth.dayz: unknown key")
    assert "expected section.key=value" in _error(tmp_path, sets=["synth.days"])


def test_set_beats_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("synth:\n  days: 2\n  seed: 4\n")
    cfg = load_config(path, ["synth.days=5"])
    assert cfg.synth.days == 5 and cfg.synth.seed == 4


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["synth.days=7", "zr.a=300"])
    path = save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert "pixel_km" in path.read_text()  # defaults are written out


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), Config)
