"""`nowcast train`: the training run — setup, the step, validation, checkpoints, resume.

    result = train(cfg)                  # a new run in cfg.train.out_dir -> TrainResult
    result = train(cfg, resume=True)     # continue it from checkpoints/last.pt

One step: a global batch of ``train.batch_size`` windows (split over the DDP processes),
optionally flipped or turned (``train.augment``), forward with the scheduled-sampling mask
of ``model.sampling_iters``, masked (B-)MSE,
backward, gradient clipping, Adam/AdamW, LR schedule. Every ``val_every`` steps the model
is scored on the whole val split (MSE, B-MSE, CSI); :class:`BestCheckpoint` decides
whether ``best_metric`` improved (then best.pt is written), :class:`EarlyStopping` counts
validations without improvement, and :class:`DivergenceGuard` stops a run whose loss,
gradient or weights are no longer finite (parts in :mod:`nowcast.train.callbacks`).
last.pt (every ``checkpoint_every`` steps, at each validation and at the end) holds
everything an exact resume needs, the state of every part included; both files are written
atomically, best.pt before last.pt. Nothing is printed here but the progress bar; the
command line prints the :class:`TrainResult`.
"""

from __future__ import annotations

import gc
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from nowcast.checkpoint import build_model, load_checkpoint
from nowcast.config import Config
from nowcast.data import worker_context
from nowcast.forecast import ForecastMethod, persistence
from nowcast.models import build, scheduled_sampling_mask, teacher_forcing_prob
from nowcast.precision import amp_name, autocast, precision_line, resolve_amp
from nowcast.progress import info, make_progress, set_quiet
from nowcast.store import StoreMeta
from nowcast.train import state as train_state
from nowcast.train.augment import augment_batch, draw_codes
from nowcast.train.callbacks import (
    BestCheckpoint,
    DivergenceGuard,
    EarlyStopping,
    TrainingDiverged,
)
from nowcast.train.ddp import (
    DistEnv,
    ResumableSampler,
    all_mean,
    all_sum_,
    barrier,
    broadcast_object,
    destroy_process_group,
    env_from_os,
    init_process_group,
)
from nowcast.train.inputs import TrainInputs, check_inputs, pick_device
from nowcast.train.loss import make_loss
from nowcast.train.rundir import RunDir
from nowcast.train.schedule import make_optimizer, make_scheduler
from nowcast.train.validate import score

__all__ = ["TrainResult", "Trainer", "TrainingDiverged", "preflight", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What a training run did (every process returns one; ``main`` on the one that wrote).

    ``steps``: optimiser steps done in all (a resumed run counts its earlier ones);
    ``best_value`` / ``best_step``: the best finite validation value of ``best_metric`` and
    its step (None: no finite value yet); ``persistence``: the persistence forecast's val
    scores (metric name → value), the reference for ``best_metric``.
    """

    run_dir: Path
    steps: int
    best_metric: str
    best_value: float | None
    best_step: int | None
    stopped_early: bool
    best_checkpoint: Path
    last_checkpoint: Path
    persistence: dict[str, float] = field(default_factory=dict)
    main: bool = True


def train(cfg: Config, resume: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data.store``; returns what the run did.

    Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) every process calls this; they
    join one process group and only rank 0 writes.
    """
    env = env_from_os()
    if not env.is_main:
        set_quiet(True)
    device = pick_device(cfg.train.device, env)
    inputs = check_inputs(cfg, env)
    run = RunDir(cfg.train.out_dir, writer=env.is_main)
    run.lock(resume)
    try:
        return _train(cfg, resume, env, device, inputs, run)
    finally:
        run.unlock()


def _train(
    cfg: Config, resume: bool, env: DistEnv, device: torch.device, inputs: TrainInputs, run: RunDir
) -> TrainResult:
    resume = run.check(resume)  # False: a run stopped before its first checkpoint starts again
    saved = resume_checkpoint(cfg, run, inputs.meta) if resume else None
    init_process_group(env, device)
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    trainer = None
    try:
        barrier()  # every process has checked the run folder before rank 0 writes to it
        trainer = Trainer(cfg, env, device, inputs, run, saved)
        out = trainer.fit()
        # rank 0 still writes its last checkpoint and summary: no process tears its
        # process group down while a peer still works
        barrier()
        return out
    finally:
        torch.set_num_threads(threads)
        # The DDP wrapper holds the process group, and the first Trainer of a process sits
        # in a reference cycle (through frames kept by torch's lazy imports), so without
        # this the gloo group would outlive destroy_process_group() and be destructed by
        # the garbage collector, possibly while the interpreter shuts down, with gloo's
        # threads still running: std::terminate, SIGABRT ("terminate called without an
        # active exception"). Drop it, collect, then destroy the group.
        if trainer is not None:
            trainer.model = trainer.net
        trainer = None
        if env.distributed:
            gc.collect()
        destroy_process_group()


def preflight(cfg: Config, resume: bool = False, world: int = 1) -> None:
    """The checks :func:`train` makes before it starts, for ``world`` processes (``--nproc``
    runs them before launching torchrun, so that bad input fails once, plainly)."""
    meta = check_inputs(cfg, DistEnv(world=world)).meta
    run = RunDir(cfg.train.out_dir, writer=False)
    resume = run.check(resume)
    if resume:
        resume_checkpoint(cfg, run, meta)


def resume_checkpoint(cfg: Config, run: RunDir, meta: StoreMeta) -> dict[str, Any]:
    """The run's last.pt, read safely and checked: it holds a training state, trains the same
    thing as ``cfg`` on ``meta``'s store, and its weights fit ``cfg.model`` (UserErrors)."""
    saved = load_checkpoint(run.last)
    train_state.check_resumable(saved, cfg.model_dump(mode="json"), meta, run.last)
    build_model(run.last, saved, cfg.model)
    return saved


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; switch deterministic algorithms on or off."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic or torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(
            deterministic
        )  # (first call imports torch._inductor: ~5 s)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _end_logger(run: RunDir):
    """``(what, step) -> None``: logs the end of a run that diverged in ``run``'s metrics."""

    def log(what: str, step: int) -> None:
        run.log("end", step, reason="diverged", message=what)

    return log


class Trainer:
    """One training run (see module docstring); :meth:`fit` runs it to the end."""

    def __init__(
        self,
        cfg: Config,
        env: DistEnv,
        device: torch.device,
        inputs: TrainInputs,
        run: RunDir,
        saved: dict[str, Any] | None = None,
    ):
        tc = cfg.train
        self.cfg, self.tc, self.env, self.device, self.inputs, self.run = (
            cfg,
            tc,
            env,
            device,
            inputs,
            run,
        )
        self.n_out = cfg.data.n_out
        seed_everything(tc.seed, tc.deterministic)
        self.net = build(cfg.model.name, cfg.model).to(device)
        if saved is not None:
            self.net.load_state_dict(saved["state_dict"])
        elif inputs.init_weights is not None:  # fine-tuning: train.init_from's weights
            self.net.load_state_dict(inputs.init_weights)
        self.model = self.net
        if env.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        self.optimizer = make_optimizer(self.net.parameters(), tc)
        self.per_rank = tc.batch_size // env.world
        self.sampler = ResumableSampler(inputs.train, env, tc.seed)
        self.steps_per_epoch = self.sampler.num_samples // self.per_rank
        self.total = tc.epochs * self.steps_per_epoch if tc.epochs else tc.steps
        self.scheduler = make_scheduler(self.optimizer, tc, self.total)
        self.amp = resolve_amp(tc.amp, device, "train.amp")  # None: float32
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.loss_fn = make_loss(tc.loss, inputs.scale)
        self.step = 0
        self.persistence: dict[str, float] = {}  # the persistence forecast's val scores
        self.best = BestCheckpoint(tc.best_metric)
        self.early_stopping = EarlyStopping(tc.patience)
        # (a function of run alone: a bound method here would put the trainer in a
        # reference cycle, left to the garbage collector with its open store files)
        self.guard = DivergenceGuard(run.last, on_diverged=_end_logger(run))
        self.parts = (self.best, self.early_stopping, self.guard)
        cuda = device.type == "cuda"
        workers = cfg.data.workers
        self.loader = DataLoader(
            inputs.train,
            batch_size=self.per_rank,
            sampler=self.sampler,
            num_workers=workers,
            drop_last=True,
            pin_memory=cuda,
            persistent_workers=workers > 0,
            multiprocessing_context=worker_context(workers),
            generator=torch.Generator().manual_seed(tc.seed),
        )
        # every process scores windows rank, rank + world, … of the val split (see evaluate)
        val_share = Subset(inputs.val, range(env.rank, len(inputs.val), env.world))
        val_workers = min(workers, len(val_share))
        self.val_loader = DataLoader(
            val_share,
            batch_size=self.per_rank,
            num_workers=val_workers,
            pin_memory=cuda,
            persistent_workers=val_workers > 0,
            multiprocessing_context=worker_context(val_workers),
            generator=torch.Generator().manual_seed(tc.seed),
        )
        if saved is not None:
            self._restore(saved)

    # ------------------------------------------------------------------ run

    def fit(self) -> TrainResult:
        """Train until ``total`` steps or early stopping; returns what the run did."""
        run = self.run
        resumed = self.guard.last_good_step is not None
        run.start(self.cfg, fresh=not resumed)
        info(precision_line(self.amp, self.device, self.tc.amp))
        if resumed:
            dropped = run.rewind(self.step)
            run.log(
                "resume",
                self.step,
                dropped_lines=dropped,
                world_size=self.env.world,
                amp=amp_name(self.amp),
            )
        else:
            run.log(
                "start",
                0,
                total_steps=self.total,
                steps_per_epoch=self.steps_per_epoch,
                train_windows=len(self.inputs.train),
                val_windows=len(self.inputs.val),
                world_size=self.env.world,
                device=str(self.device),
                threads=torch.get_num_threads(),
                amp=amp_name(self.amp),
                parameters=sum(p.numel() for p in self.net.parameters()),
                init_from=str(self.tc.init_from) if self.tc.init_from else None,
            )
            self.persistence = self.evaluate(persistence)
            run.log("baseline", 0, method="persistence", **self.persistence)
        if self.step < self.total and not self.early_stopping.stopped:
            self._loop()
        if self.guard.last_good_step != self.step:
            self.save(self.run.last)
        self._log_end()
        return self.result()

    def _loop(self) -> None:
        tc = self.tc
        window_loss, window_steps, t0 = 0.0, 0, time.perf_counter()
        columns = (
            TextColumn("loss {task.fields[loss]:.4g}"),
            TextColumn("lr {task.fields[lr]:.2e}"),
            TextColumn("{task.fields[sps]:.1f} samples/s"),
        )
        with make_progress(*columns) as progress:
            task = progress.add_task(
                "train", total=self.total, completed=self.step, loss=math.nan, lr=self.lr, sps=0.0
            )
            while self.step < self.total and not self.early_stopping.stopped:
                epoch, done = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch, done * self.per_rank)
                for batch in self.loader:
                    lr = self.lr
                    window_loss += self.train_step(batch)
                    window_steps += 1
                    self.step += 1
                    if self.step % tc.log_every == 0 or self.step == self.total:
                        dt = time.perf_counter() - t0
                        sps = window_steps * tc.batch_size / dt
                        mean = window_loss / window_steps
                        self.run.log(
                            "train",
                            self.step,
                            epoch=epoch,
                            loss=mean,
                            lr=lr,
                            teacher_forcing=self.teacher_prob(self.step - 1),
                            samples_per_s=sps,
                        )
                        progress.update(task, loss=mean, lr=lr, sps=sps)
                        window_loss, window_steps, t0 = 0.0, 0, time.perf_counter()
                    progress.update(task, completed=self.step)
                    paused = time.perf_counter()  # validation and checkpoints: not in samples/s
                    if self.step % tc.val_every == 0 or self.step == self.total:
                        self.validate()
                    elif self.step % tc.checkpoint_every == 0:
                        self.save(self.run.last)
                    t0 += time.perf_counter() - paused
                    if self.step >= self.total or self.early_stopping.stopped:
                        break

    # ------------------------------------------------------------------ one step

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def teacher_prob(self, step: int) -> float:
        """Teacher-forcing probability at ``step`` (0 for networks that feed nothing back)."""
        if not getattr(self.net, "feeds_predictions", True):
            return 0.0
        return teacher_forcing_prob(step, self.cfg.model.sampling_iters)

    def teacher_mask(self, step: int) -> torch.Tensor | None:
        """This process's rows of the global batch's scheduled-sampling mask (None: no teacher
        forcing). The mask of the global batch is drawn from a generator seeded by (seed,
        step), and rank r takes rows r, r + world, … — the windows the sampler gave it."""
        if self.teacher_prob(step) <= 0.0:
            return None
        g = torch.Generator(device=self.device)
        g.manual_seed((self.tc.seed * 1_000_003 + step) % 2**63)
        full = scheduled_sampling_mask(
            self.tc.batch_size, self.n_out, step, self.cfg.model.sampling_iters, self.device, g
        )
        return full[self.env.rank :: self.env.world]

    def augmented(self, step: int, *batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``train.augment``: this process's windows (inputs, targets, mask), each under the
        symmetry its row of the global batch drew from a generator seeded by (seed, step)."""
        g = torch.Generator().manual_seed((self.tc.seed * 1_000_033 + step + 1) % 2**63)
        h, w = batch[0].shape[-2:]
        codes = draw_codes(self.tc.batch_size, h == w, g)
        return augment_batch(codes[self.env.rank :: self.env.world], *batch)

    def train_step(self, batch) -> float:
        """One optimiser step on this process's part of a batch; the global mean loss."""
        inputs, targets, mask = (t.to(self.device, non_blocking=True) for t in batch)
        step = self.step
        if self.tc.augment:
            inputs, targets, mask = self.augmented(step, inputs, targets, mask)
        tm = self.teacher_mask(step)
        self.model.train()
        with autocast(self.device, self.amp):
            if tm is None:
                pred = self.model(inputs, self.n_out)
            else:
                pred = self.model(inputs, self.n_out, targets=targets, teacher_mask=tm)
        loss = self.loss_fn(pred.float(), targets, mask)
        value = float(all_mean(loss.detach()))
        self.guard.check_loss(value, step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.tc.grad_clip or math.inf)
        if not self.scaler.is_enabled():  # with fp16 loss scaling the scaler skips such steps
            self.guard.check_grad_norm(float(norm), step + 1)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return value

    # ------------------------------------------------------------------ validation

    def evaluate(self, forecast: ForecastMethod) -> dict[str, float]:
        """Scores of ``forecast`` on the val split. Every process scores its share and the
        sums are added over processes; every process then takes rank 0's scores (so all
        decide alike, to the last bit)."""
        self.net.eval()

        def low_precision(inputs: torch.Tensor, n_out: int) -> torch.Tensor:
            with autocast(self.device, self.amp):  # the forecast only: metrics stay float32
                return forecast(inputs, n_out)

        try:
            scores = score(
                low_precision,
                self.val_loader,
                self.n_out,
                self.tc.val_thresholds,
                self.inputs.scale,
                self.device,
                combine=all_sum_,
            )
        finally:
            self.net.train()
        return broadcast_object(scores)

    def validate(self) -> None:
        """Score the model, keep best.pt, count towards early stopping, write last.pt."""
        scores = self.evaluate(self.net)
        improved = self.best.update(scores, self.step)
        self.early_stopping.update(improved)
        if improved:
            self.save(self.run.best)
        self.save(self.run.last)
        self.run.log(
            "val",
            self.step,
            **scores,
            best_metric=self.best.metric,
            improved=improved,
            best_value=self.best.best_value,
            best_step=self.best.best_step,
            bad_validations=self.early_stopping.bad_validations,
        )

    # ------------------------------------------------------------------ checkpoints

    def save(self, path: Path) -> None:
        """Write a checkpoint of the current state (rank 0 only; atomic). Weights that are no
        longer finite are never saved: training stops, keeping the last good checkpoint."""
        self.guard.check_weights(self.net.parameters(), self.step)
        if path == self.run.last:
            self.guard.saved(self.step)
        if not self.env.is_main:
            return
        train_state.write(
            path,
            model_name=self.cfg.model.name,
            config=self.cfg.model_dump(mode="json"),
            state_dict=self.net.state_dict(),
            **train_state.store_payload(self.inputs.meta),
            step=self.step,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            grad_scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            sampler={
                "seed": self.tc.seed,
                "epoch": self.step // self.steps_per_epoch,
                "windows_done": (self.step % self.steps_per_epoch) * self.tc.batch_size,
                "steps_per_epoch": self.steps_per_epoch,
            },
            trainer=self.state_dict(),
            world_size=self.env.world,
            total_steps=self.total,
            amp=amp_name(self.amp),
        )

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``trainer`` entry: the step, the state of every part (their keys
        side by side, see :mod:`nowcast.train.callbacks`) and the persistence scores."""
        state: dict[str, Any] = {"step": self.step}
        for part in self.parts:
            state.update(part.state_dict())
        state["persistence"] = dict(self.persistence)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step, every part and the persistence scores from a ``trainer`` entry."""
        self.step = int(state.get("step", 0))
        for part in self.parts:
            part.load_state_dict(state)
        self.persistence = dict(state.get("persistence") or {})

    def _restore(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint: optimiser, scheduler, scaler, every part, RNG states."""
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler.is_enabled() and saved.get("grad_scaler"):
            self.scaler.load_state_dict(saved["grad_scaler"])
        self.load_state_dict(saved["trainer"])
        self.step = int(saved["step"])
        self.guard.saved(self.step)  # the checkpoint resumed from is the last good one
        train_state.set_rng_states(saved["rng"])

    # ------------------------------------------------------------------ the end

    def _log_end(self) -> None:
        stopped = self.early_stopping.stopped
        self.run.log(
            "end",
            self.step,
            reason="early_stopping" if stopped else "done",
            best_metric=self.best.metric,
            best_value=self.best.best_value,
            best_step=self.best.best_step,
        )

    def result(self) -> TrainResult:
        """What the run did so far (see :class:`TrainResult`)."""
        return TrainResult(
            run_dir=self.run.root,
            steps=self.step,
            best_metric=self.best.metric,
            best_value=self.best.best_value,
            best_step=self.best.best_step,
            stopped_early=self.early_stopping.stopped,
            best_checkpoint=self.run.best,
            last_checkpoint=self.run.last,
            persistence=dict(self.persistence),
            main=self.env.is_main,
        )
