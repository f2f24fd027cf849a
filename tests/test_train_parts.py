"""The parts of a training run on their own (best score, early stopping, divergence), with
hand-made score sequences, and the result object that train() returns."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from train_support import tiny_config

from nowcast.checkpoint import load_checkpoint
from nowcast.data.toy import write_blob_store
from nowcast.train import TrainResult, train
from nowcast.train.callbacks import (
    BestCheckpoint,
    DivergenceGuard,
    EarlyStopping,
    TrainingDiverged,
)
from nowcast.train.rundir import read_metrics

NAN, INF = math.nan, math.inf


def _feed(best: BestCheckpoint, values: list[float]) -> list[bool]:
    return [best.update({best.metric: v, "other": -1.0}, step) for step, v in enumerate(values, 1)]


@pytest.mark.parametrize(
    "metric, values, improved, best_value, best_step",
    [
        ("csi_mean", [0.1, 0.3, 0.2, 0.3, 0.4], [True, True, False, False, True], 0.4, 5),
        ("csi@0.5", [0.2, 0.1], [True, False], 0.2, 1),
        ("mse", [5.0, 3.0, 4.0, 3.0, 1.0], [True, True, False, False, True], 1.0, 5),
        ("bmse", [2.0, 2.5], [True, False], 2.0, 1),
        # NaN and inf never improve, not even the first time
        ("csi_mean", [NAN, 0.2, NAN, INF], [False, True, False, False], 0.2, 2),
        ("mse", [INF, -INF, NAN], [False, False, False], None, None),
    ],
)
def test_best_checkpoint_follows_the_metric_direction(
    metric, values, improved, best_value, best_step
):
    best = BestCheckpoint(metric)
    assert _feed(best, values) == improved
    assert best.best_value == best_value and best.best_step == best_step
    assert best.state_dict() == {"best_value": best_value, "best_step": best_step}


def test_best_checkpoint_state_round_trip():
    best = BestCheckpoint("mse")
    _feed(best, [4.0, 2.0, 3.0])
    again = BestCheckpoint("mse")
    again.load_state_dict({"step": 3, **best.state_dict(), "bad_validations": 1})
    assert (again.best_value, again.best_step) == (2.0, 2)
    # it continues as the original would: 2.5 does not improve, 1.5 does
    assert not again.improves(2.5) and again.improves(1.5)
    assert again.update({"mse": 1.5}, 7) and again.state_dict() == {
        "best_value": 1.5,
        "best_step": 7,
    }
    fresh = BestCheckpoint("csi_mean")
    fresh.load_state_dict({})  # a trainer entry without the keys: no best yet
    assert fresh.state_dict() == {"best_value": None, "best_step": None}


@pytest.mark.parametrize(
    "patience, improved, stops_after",
    [
        (2, [True, False, True, False, False, True], 5),
        (1, [True, False], 2),
        (3, [False, False, False], 3),  # no first improvement counts as a bad validation too
        (None, [False] * 20, None),
    ],
)
def test_early_stopping_counts_validations_without_improvement(patience, improved, stops_after):
    es = EarlyStopping(patience)
    stopped_at = None
    for i, good in enumerate(improved, 1):
        if es.update(good) and stopped_at is None:
            stopped_at = i
    assert stopped_at == stops_after
    bad = len(improved) - max((i for i, g in enumerate(improved, 1) if g), default=0)
    assert es.state_dict() == {"bad_validations": bad, "stopped_early": stops_after is not None}


def test_early_stopping_resumes_with_its_own_patience():
    es = EarlyStopping(2)
    for good in (True, False, False):
        es.update(good)
    saved = es.state_dict()
    assert saved == {"bad_validations": 2, "stopped_early": True}
    same = EarlyStopping(2)
    same.load_state_dict(saved)
    assert same.stopped and same.bad_validations == 2
    larger = EarlyStopping(3)  # a larger patience lets a stopped run go on
    larger.load_state_dict(saved)
    assert not larger.stopped
    assert larger.update(False) and larger.bad_validations == 3
    never = EarlyStopping(None)
    never.load_state_dict({"bad_validations": 50, "stopped_early": True})
    assert not never.stopped


def test_divergence_guard_messages_and_the_last_good_checkpoint(tmp_path):
    logged: list[tuple[str, int]] = []
    last = tmp_path / "checkpoints" / "last.pt"
    guard = DivergenceGuard(last, on_diverged=lambda what, step: logged.append((what, step)))
    guard.check_loss(0.5, 1)
    guard.check_grad_norm(1e30, 1)
    guard.check_weights([torch.ones(3), torch.zeros(2, 2)], 1)
    assert logged == []
    with pytest.raises(
        TrainingDiverged,
        match=r"^train: the training loss became nan at step 3; stopped, no checkpoint had been "
        r"written yet \(try a lower train.lr or a train.grad_clip\)$",
    ):
        guard.check_loss(NAN, 3)
    guard.saved(4)
    with pytest.raises(
        TrainingDiverged,
        match=rf"^train: the gradient norm became inf at step 6; stopped, the last good "
        rf"checkpoint is {last} \(step 4\)",
    ):
        guard.check_grad_norm(INF, 6)
    with pytest.raises(
        TrainingDiverged, match=r"the weights became non-finite at step 7; .*step 4"
    ):
        guard.check_weights([torch.ones(3), torch.tensor([1.0, NAN])], 7)
    assert logged == [
        ("the training loss became nan", 3),
        ("the gradient norm became inf", 6),
        ("the weights became non-finite", 7),
    ]
    assert guard.state_dict() == {}


def test_the_parts_state_dicts_do_not_clash():
    keys = [
        set(part.state_dict())
        for part in (BestCheckpoint("mse"), EarlyStopping(2), DivergenceGuard(Path("x")))
    ]
    assert sum(len(k) for k in keys) == len(set().union(*keys))
    assert not set().union(*keys) & {"step", "persistence"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("parts") / "store.nc"
    return write_blob_store(path, splits=("train", "train", "val", "test"), h=16, w=24, seed=5)


@pytest.mark.usefixtures("one_torch_thread")
def test_train_returns_what_the_run_did(store, tmp_path, capsys):
    cfg = tiny_config(store, tmp_path / "run", steps=8, val_every=2, best_metric="mse", lr=3e-3)
    result = train(cfg)
    assert capsys.readouterr() == ("", "")  # the library prints nothing (quiet: no bar)
    assert isinstance(result, TrainResult) and result.main
    assert result.run_dir == tmp_path / "run" and result.steps == 8
    assert result.best_checkpoint == result.run_dir / "checkpoints" / "best.pt"
    assert result.last_checkpoint == result.run_dir / "checkpoints" / "last.pt"
    events = read_metrics(result.run_dir / "metrics.jsonl")
    vals = [e for e in events if e["event"] == "val"]
    best = min(vals, key=lambda e: e["mse"])
    assert result.best_metric == "mse"
    assert result.best_step == best["step"] == vals[-1]["best_step"]
    assert result.best_value == pytest.approx(best["mse"], rel=1e-12)
    baseline = next(e for e in events if e["event"] == "baseline")
    assert result.persistence["mse"] == pytest.approx(baseline["mse"], rel=1e-12)
    assert not result.stopped_early
    # the checkpoint's trainer entry holds every part's state side by side
    entry = load_checkpoint(result.last_checkpoint)["trainer"]
    assert entry["step"] == 8 and entry["best_step"] == result.best_step
    assert entry["bad_validations"] == vals[-1]["bad_validations"]
    assert entry["stopped_early"] is False and entry["persistence"] == result.persistence


@pytest.mark.usefixtures("one_torch_thread")
def test_result_of_an_early_stopped_and_resumed_run(store, tmp_path):
    # lr so small that the weights cannot change: no validation after the first improves
    cfg = tiny_config(store, tmp_path / "run", steps=30, val_every=2, patience=2, lr=1e-30)
    first = train(cfg)
    assert first.stopped_early and first.steps == 6 and first.best_step == 2
    again = train(cfg, resume=True)  # nothing left to do: the same result, read back
    assert again == first
