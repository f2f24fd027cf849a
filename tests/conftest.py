"""Shared fixtures: the real radar folders beside the repo, and a small synthetic archive."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from nowcast.config.synth import SynthConfig
from nowcast.progress import set_quiet
from nowcast.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
SHARED_RADAR = REPO.parent / "shared" / "data" / "radar"


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


@pytest.fixture(scope="session")
def radar_dir() -> Path:
    """``../shared/data/radar``: skipped (with the reason) where a clone has no ../shared."""
    if not SHARED_RADAR.is_dir():
        pytest.skip(
            f"real radar data not found at {SHARED_RADAR} (only present beside the project's own checkout)"
        )
    return SHARED_RADAR


@pytest.fixture(scope="session")
def synth_cfg(tmp_path_factory) -> SynthConfig:
    """A two-day, full-size archive that straddles a month boundary (30 June – 1 July 2024)."""
    return SynthConfig(
        out=tmp_path_factory.mktemp("synth"), start=dt.date(2024, 6, 30), days=2, seed=11
    )


@pytest.fixture(scope="session")
def synth_archive(synth_cfg):
    set_quiet(True)
    return synthesize(synth_cfg)


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread (tiny convolutions only contend on the 2 CI cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
