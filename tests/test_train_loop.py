"""The training run in-process: run directory, checkpoints, validation, best.pt, early
stopping, divergence, schedules and the config keys that steer them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from train_support import tiny_config, weights

from nowcast.checkpoint import REQUIRED_KEYS, load_checkpoint
from nowcast.config import Config, load_config
from nowcast.data import WindowDataset
from nowcast.data.toy import write_blob_store
from nowcast.errors import UserError
from nowcast.models import REGISTRY, build
from nowcast.store import read_meta
from nowcast.train import TrainingDiverged, train
from nowcast.train.ddp import DistEnv
from nowcast.train.inputs import check_inputs
from nowcast.train.loss import BalancedWeights, masked_loss
from nowcast.train.rundir import RunDir, read_metrics
from nowcast.train.trainer import Trainer
from nowcast.train.validate import score
from nowcast.units import GrayScale

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "store.nc"
    return write_blob_store(path, splits=("train", "train", "val", "test"), h=16, w=24, seed=5)


def cpu_trainer(cfg: Config, run_dir) -> Trainer:
    """A single-process CPU :class:`Trainer` on ``run_dir`` (no metrics writer), for tests
    that drive its steps directly."""
    return Trainer(
        cfg, DistEnv(), torch.device("cpu"), check_inputs(cfg), RunDir(run_dir, writer=False)
    )


def events(run_dir, kind):
    return [e for e in read_metrics(run_dir / "metrics.jsonl") if e["event"] == kind]


def test_run_directory_and_checkpoint_contents(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", steps=6, val_every=3, log_every=2)
    run_dir = train(cfg).run_dir
    assert run_dir == tmp_path / "run"
    assert load_config(run_dir / "config.yaml") == cfg
    kinds = [e["event"] for e in read_metrics(run_dir / "metrics.jsonl")]
    assert kinds == ["start", "baseline", "train", "val", "train", "train", "val", "end"]
    assert [e["step"] for e in events(run_dir, "train")] == [2, 4, 6]  # log_every
    assert [e["step"] for e in events(run_dir, "val")] == [3, 6]  # val_every
    start = events(run_dir, "start")[0]
    assert start["device"] == "cpu" and start["amp"] == "off" and start["world_size"] == 1
    assert start["threads"] == 1  # (the _one_thread fixture)
    meta = read_meta(store)
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    for key in (
        *REQUIRED_KEYS,
        "optimizer",
        "scheduler",
        "rng",
        "sampler",
        "trainer",
        "amp",
        "version",
        "git_commit",
    ):
        assert key in last, key
    assert last["step"] == 6 and last["model_name"] == "convlstm"
    assert last["config"] == cfg.model_dump(mode="json")
    assert last["preprocess"] == meta.preprocess
    assert last["masks"]["months"] == meta.months
    np.testing.assert_array_equal(last["masks"]["noise_mask"], meta.noise_mask)
    np.testing.assert_array_equal(last["masks"]["coverage"], meta.coverage)
    np.testing.assert_array_equal(last["grid"]["x"], meta.x)
    np.testing.assert_array_equal(last["grid"]["y"], meta.y)
    assert last["grid"]["grid_mapping"] == meta.grid_mapping
    assert set(last["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert all(v.dtype == torch.float32 for v in last["state_dict"].values())  # CPU: float32


def test_best_checkpoint_holds_the_best_validated_model(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", steps=8, val_every=2, best_metric="mse", lr=3e-3)
    run_dir = train(cfg).run_dir
    vals = events(run_dir, "val")
    best = min(vals, key=lambda e: e["mse"])
    best_ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert best_ckpt["step"] == best["step"] == best_ckpt["trainer"]["best_step"]
    # the weights in best.pt, scored afresh, give the logged score
    model = build("convlstm", Config.model_validate(best_ckpt["config"]).model)
    model.load_state_dict(best_ckpt["state_dict"])
    model.eval()
    meta = read_meta(store)
    val = WindowDataset(meta, "val", 3, 4)
    batches = torch.utils.data.DataLoader(val, batch_size=4)
    scores = score(
        model,
        batches,
        4,
        cfg.train.val_thresholds,
        GrayScale.from_preprocess(meta.preprocess),
        torch.device("cpu"),
    )
    assert scores["mse"] == pytest.approx(best["mse"], rel=1e-6)


def test_persistence_baseline_matches_a_numpy_reference(store, tmp_path):
    thresholds = [0.5, 5.0, 20.0]
    cfg = tiny_config(
        store,
        tmp_path / "run",
        steps=1,
        val_every=1,
        val_thresholds=thresholds,
        best_metric="csi@5",
    )
    base = events(train(cfg).run_dir, "baseline")[0]
    meta = read_meta(store)
    ds = WindowDataset(meta, "val", 3, 4)
    h, m, f = (np.zeros(len(thresholds)) for _ in range(3))
    se = np.zeros(4)
    for i in range(len(ds)):
        x, y, mask = (t.numpy().astype(np.float64) for t in ds[i])
        obs, fc = y[:, 0], np.repeat(x[-1:, 0], 4, axis=0)
        rate = lambda g: (10 ** ((-10 + 70 * g) / 10) / 58.53) ** (1 / 1.56)  # noqa: E731
        for k, t in enumerate(thresholds):
            o, p = (rate(obs) >= t) & (mask > 0), (rate(fc) >= t) & (mask > 0)
            h[k] += np.sum(o & p)
            m[k] += np.sum(o & ~p)
            f[k] += np.sum(~o & p)
        se += (((fc - obs) ** 2) * mask).sum(axis=(1, 2))
    for k, t in enumerate(thresholds):
        assert base[f"csi@{t:g}"] == pytest.approx(h[k] / (h[k] + m[k] + f[k]), rel=1e-12)
    assert base["mse"] == pytest.approx(
        np.mean(se / len(ds)), rel=1e-5
    )  # HKO-7: per frame, per sequence


def test_a_run_is_never_overwritten(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", steps=1, val_every=1)
    train(cfg)
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(
        UserError, match=r"train.out_dir: .*run already holds a training run .*--resume"
    ):
        train(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before
    with pytest.raises(UserError, match=r"--resume: .*other/checkpoints/last.pt not found"):
        train(tiny_config(store, tmp_path / "other", steps=1), resume=True)


def test_early_stopping_and_resume_with_more_patience(store, tmp_path):
    # lr so small that the weights cannot change: no validation after the first improves
    cfg = tiny_config(store, tmp_path / "run", steps=30, val_every=2, patience=2, lr=1e-30)
    run_dir = train(cfg).run_dir
    vals = events(run_dir, "val")
    assert [v["step"] for v in vals] == [2, 4, 6] and [v["improved"] for v in vals] == [
        True,
        False,
        False,
    ]
    end = events(run_dir, "end")[-1]
    assert end["reason"] == "early_stopping" and end["step"] == 6
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["trainer"]["stopped_early"]
    train(cfg, resume=True)  # same patience: nothing more to do
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 6
    train(
        tiny_config(store, tmp_path / "run", steps=30, val_every=2, patience=3, lr=1e-30),
        resume=True,
    )
    assert [v["step"] for v in events(run_dir, "val")] == [2, 4, 6, 8]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 8


def test_divergence_stops_and_keeps_the_last_good_checkpoint(store, tmp_path):
    # AdamW with lr·weight_decay = 1e30 multiplies the weights by −1e30 a step: inf by step 2
    cfg = tiny_config(
        store,
        tmp_path / "run",
        steps=10,
        checkpoint_every=1,
        val_every=100,
        lr=1e30,
        optimizer="adamw",
        weight_decay=1.0,
        grad_clip=None,
    )
    with pytest.raises(
        TrainingDiverged,
        match=r"non-finite at step 2; stopped, the last good checkpoint is .*last.pt \(step 1\)",
    ):
        train(cfg)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["step"] == 1 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert events(tmp_path / "run", "end")[-1]["reason"] == "diverged"


def test_nan_loss_is_caught_before_the_step(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", steps=3, val_every=100)
    trainer = cpu_trainer(cfg, tmp_path / "run")
    with torch.no_grad():
        next(trainer.net.parameters()).fill_(float("nan"))
    trainer.sampler.set_epoch(0)
    with pytest.raises(
        TrainingDiverged,
        match="the training loss became nan at step 1; stopped, no checkpoint had been written yet",
    ):
        trainer.train_step(next(iter(trainer.loader)))


def test_lr_schedule_warmup_then_cosine(store, tmp_path):
    cfg = tiny_config(
        store,
        tmp_path / "run",
        steps=8,
        val_every=100,
        lr=0.01,
        lr_min=0.001,
        lr_schedule="cosine",
        warmup_steps=3,
    )
    lrs = [e["lr"] for e in events(train(cfg).run_dir, "train")]
    expected = [0.01 * (s + 1) / 3 for s in range(3)]
    expected += [0.001 + 0.009 * (1 + math.cos(math.pi * (s - 3) / 4)) / 2 for s in range(3, 8)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert lrs[-1] == pytest.approx(0.001) and lrs[3] == pytest.approx(0.01)
    cfg = tiny_config(store, tmp_path / "run2", steps=3, val_every=100, lr=0.02)
    assert [e["lr"] for e in events(train(cfg).run_dir, "train")] == [0.02] * 3  # constant


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizer_and_weight_decay(store, tmp_path, name):
    cfg = tiny_config(store, tmp_path / "run", optimizer=name, weight_decay=0.5, lr=0.1)
    trainer = cpu_trainer(cfg, tmp_path / "run")
    p = next(trainer.net.parameters())
    before = p.detach().clone()
    for q in trainer.net.parameters():
        q.grad = torch.zeros_like(q)
    trainer.optimizer.step()
    if name == "adamw":  # decoupled decay: p·(1 − lr·wd), whatever the (zero) gradient
        torch.testing.assert_close(p.detach(), before * (1 - 0.1 * 0.5), rtol=1e-6, atol=0)
    else:  # L2 in the gradient: g = wd·p, and Adam's first step moves each weight by ≈ lr
        step = (before - p.detach())[before != 0]
        torch.testing.assert_close(
            step, 0.1 * torch.sign(before[before != 0]), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("clip", [1e-3, None])
def test_gradient_clipping(store, tmp_path, clip):
    cfg = tiny_config(store, tmp_path / "run", grad_clip=clip)
    trainer = cpu_trainer(cfg, tmp_path / "run")
    trainer.sampler.set_epoch(0)
    trainer.train_step(next(iter(trainer.loader)))
    norm = torch.linalg.vector_norm(torch.stack([q.grad.norm() for q in trainer.net.parameters()]))
    if clip is None:
        assert float(norm) > 10 * 1e-3  # what clipping would have cut
    else:
        assert float(norm) == pytest.approx(clip, rel=1e-4)


def test_bmse_loss_key(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", loss="bmse")
    trainer = cpu_trainer(cfg, tmp_path / "run")
    trainer.sampler.set_epoch(0)
    x, y, mask = next(iter(trainer.loader))
    pred = torch.full_like(y, 0.1)
    weighted = masked_loss(pred, y, mask, BalancedWeights(trainer.inputs.scale))
    assert (
        float(trainer.loss_fn(pred, y, mask))
        == float(weighted)
        != float(masked_loss(pred, y, mask))
    )


def test_seed_decides_the_weights(store, tmp_path):
    runs = {
        name: train(
            tiny_config(
                store, tmp_path / name, steps=2, val_every=100, seed=seed, deterministic=True
            )
        )
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    }
    wa, wb, wc = (weights(r.last_checkpoint) for r in runs.values())
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_epochs_set_the_number_of_steps(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "run", epochs=1, batch_size=8, val_every=100, log_every=100)
    run_dir = train(cfg).run_dir
    n_windows = len(WindowDataset(read_meta(store), "train", 3, 4))  # 2 blocks × 34
    assert events(run_dir, "start")[0]["total_steps"] == n_windows // 8 == 8
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 8


def test_loader_workers_do_not_change_training(store, tmp_path):
    a = train(tiny_config(store, tmp_path / "a", steps=3, val_every=3, workers=0)).run_dir
    b = train(tiny_config(store, tmp_path / "b", steps=3, val_every=3, workers=2)).run_dir
    wa, wb = weights(a / "checkpoints" / "last.pt"), weights(b / "checkpoints" / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert events(a, "val")[0]["mse"] == events(b, "val")[0]["mse"]


@pytest.mark.skipif("predrnn" not in REGISTRY, reason="needs a network that feeds predictions back")
def test_scheduled_sampling_masks_follow_the_step_and_the_rank(store, tmp_path):
    cfg = tiny_config(
        store, tmp_path / "run", batch_size=8, model={"name": "predrnn", "sampling_iters": 100}
    )
    trainer = cpu_trainer(cfg, tmp_path / "run")
    assert (
        trainer.teacher_prob(0) == 1.0
        and trainer.teacher_prob(25) == 0.75
        and trainer.teacher_prob(100) == 0.0
    )
    assert trainer.teacher_mask(100) is None  # no teacher forcing left
    full = trainer.teacher_mask(40)
    assert full.shape == (8, 3) and full.dtype == torch.bool and 0 < int(full.sum()) < 24
    assert torch.equal(trainer.teacher_mask(40), full)  # a function of (seed, step): resumable
    assert not torch.equal(trainer.teacher_mask(41), full)
    trainer.env = DistEnv(rank=1, world=2)  # the rows of process 1 of 2: its windows of the batch
    assert torch.equal(trainer.teacher_mask(40), full[1::2])
    rate = torch.stack([trainer.teacher_mask(s).float().mean() for s in range(40, 60)]).mean()
    assert 0.4 < float(rate) < 0.7  # p ≈ 0.6 … 0.41 over these steps


def test_deterministic_key_switches_torch_to_deterministic_algorithms(store, tmp_path):
    try:
        train(tiny_config(store, tmp_path / "a", steps=1, val_every=1, deterministic=True))
        assert torch.are_deterministic_algorithms_enabled()
        train(tiny_config(store, tmp_path / "b", steps=1, val_every=1, deterministic=False))
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_threads_key_sets_torch_threads_for_the_run(store, tmp_path):
    torch.set_num_threads(2)
    run_dir = train(tiny_config(store, tmp_path / "run", steps=1, val_every=1, threads=1)).run_dir
    assert events(run_dir, "start")[0]["threads"] == 1
    assert torch.get_num_threads() == 2  # given back after the run
