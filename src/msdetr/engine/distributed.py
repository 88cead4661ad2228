"""Process-group setup under `torchrun` and the few collectives the trainer needs.

`torchrun` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (also across
nodes through its rendezvous); when they are absent the run is a single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from msdetr.collectives import broadcast_from_main, gather_to_main, is_initialized  # noqa: F401
from msdetr.errors import MsdetrError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: global rank, rank on its node, number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """The running process group's view (single process when there is none)."""
    if not is_initialized():
        return DistInfo()
    return DistInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (no-op otherwise).

    Backend: nccl for CUDA, gloo otherwise. Returns this process's `DistInfo`.
    """
    if is_initialized():
        return current()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise MsdetrError(
            f"environment: WORLD_SIZE={world_size} but {', '.join(missing)} not set; "
            "start distributed runs with torchrun"
        )
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return current()


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_true(flag: bool, device: torch.device) -> bool:
    """True when `flag` is True on every rank (one tiny all-reduce when distributed)."""
    if not is_initialized():
        return flag
    value = torch.tensor(1.0 if flag else 0.0, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats over ranks. A key some rank lacks counts as 0 there (a loss
    stream a rank had no task for, e.g. denoising on a batch without objects), so every rank
    ends with the same keys and the collective never mismatches."""
    if not is_initialized():
        return dict(values)
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, sorted(values))
    keys = sorted(set().union(*everyone))
    if not keys:
        return {}
    packed = torch.tensor([float(values.get(k, 0.0)) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    packed /= dist.get_world_size()
    return dict(zip(keys, packed.tolist()))
