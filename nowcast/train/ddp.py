"""Multi-process data parallelism: the torchrun environment, process groups, the sampler.

``torchrun --nproc_per_node N -m nowcast train …`` starts N processes and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; each process trains on its share of every global batch
and DDP averages the gradients. Backends: gloo on the CPU, nccl on CUDA GPUs. Only rank 0
writes files.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from nowcast.errors import UserError


@dataclass(frozen=True)
class DistEnv:
    """This process's place among the training processes (world 1 = no DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def env_from_os(environ: dict[str, str] | None = None) -> DistEnv:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun (absent: one process)."""
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise UserError(f"torchrun environment: {exc}") from None
    return DistEnv(rank=rank, world=world, local_rank=local)


def init_process_group(env: DistEnv, device: torch.device) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA); nothing to do for one process."""
    if not env.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, timeout=dt.timedelta(minutes=30), **kwargs)


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over all processes (the tensor itself with one process)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def all_sum_(tensors: list[torch.Tensor]) -> None:
    """Sum each tensor in place over all processes (nothing with one process)."""
    if dist.is_available() and dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def broadcast_object(obj):
    """Rank 0's ``obj`` (any picklable value) on every process."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class ResumableSampler(DistributedSampler):
    """A shuffling DistributedSampler that can start an epoch part-way (exact resume).

    Epoch ``e`` uses the permutation of ``torch.randperm(n)`` seeded with ``seed + e`` (as
    DistributedSampler); rank r takes every world-th window from position r, so batch k of
    all ranks together is window positions [k·B, (k+1)·B) of the permutation, whatever the
    number of processes (B = global batch). ``set_epoch(e, skip)`` drops the first ``skip``
    windows of this rank's share (the batches already trained on before a resume).
    """

    def __init__(self, dataset: Dataset, env: DistEnv, seed: int):
        super().__init__(
            dataset, num_replicas=env.world, rank=env.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def launch(nproc: int, args: Sequence[str]) -> int:
    """Run ``torchrun --standalone --nproc_per_node nproc -m nowcast <args>``; its exit code."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
    ]
    cmd += ["-m", "nowcast", *args]
    return subprocess.call(cmd)
