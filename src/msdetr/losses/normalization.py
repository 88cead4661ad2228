"""The loss normalizers: number of target boxes, averaged over distributed ranks (and over the
micro-batches of an accumulated step), and each task's divisor derived from it.

The official Deformable-DETR / MS-DETR code divides its terms by N = max(count / world_size, 1),
count the targets of the whole (all-reduced) batch. Not every task divides by N itself: a task's
`normalizer_scale` / `clamp_after_scale` make it k N (H-DETR's one-to-many branch), G N (Group
DETR), the denoising group count times N (DN-DETR, DINO) or max(3 N, 1) (DAC-DETR's branch); see
`task_normalizer`. With gradient accumulation the step's micro-batches together play
the part of a larger batch: `step_target_count` gives their count averaged over ranks and
micro-batches, so every micro-batch is divided by the same N and the accumulated gradient equals
that of the micro-batches run as one batch on more GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from msdetr.supervision.base import Targets


def _count(targets: Targets) -> float:
    return float(sum(len(t["labels"]) for t in targets))


def _mean_over_ranks(count: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return count


def target_count_across_ranks(targets: Targets, device: torch.device) -> Tensor:
    """Scalar float32: this batch's target count, averaged over ranks when distributed (not clamped)."""
    return _mean_over_ranks(torch.tensor(_count(targets), device=device))


def step_target_count(micro_batches: Sequence[Targets], device: torch.device) -> Tensor:
    """Scalar float32: the targets of all `micro_batches` of a step, averaged over ranks and
    micro-batches (not clamped): one all-reduce for the step."""
    total = torch.tensor(sum(_count(targets) for targets in micro_batches), device=device)
    return _mean_over_ranks(total) / max(len(micro_batches), 1)


def num_targets_across_ranks(targets: Targets, device: torch.device) -> Tensor:
    """Scalar float32: this batch's target count, averaged over ranks when distributed, at least 1.

    The base normalizer N (see the module docstring for the tasks that scale it).
    """
    return target_count_across_ranks(targets, device).clamp(min=1)


def task_normalizer(count: Tensor, clamped: Tensor, scale: float, clamp_after_scale: bool) -> Tensor:
    """A task's divisor from the (unclamped) mean target `count` and `clamped` = max(count, 1):
    max(scale * count, 1) when `clamp_after_scale` (DAC-DETR's and H-DETR's released branches
    count their scaled targets, then clamp), else scale * max(count, 1) (DN-DETR / DINO denoising,
    Group DETR)."""
    if clamp_after_scale:
        return (count * scale).clamp(min=1)
    return clamped if scale == 1.0 else clamped * scale
