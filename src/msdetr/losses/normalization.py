"""The loss normalizer: number of target boxes, averaged over distributed ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from msdetr.supervision.base import Targets


def num_targets_across_ranks(targets: Targets, device: torch.device) -> Tensor:
    """Scalar float32: this batch's target count, averaged over ranks when distributed, at least 1.

    Every loss term (one-to-many and encoder included) is divided by it, as in the official code.
    """
    count = torch.tensor(float(sum(len(t["labels"]) for t in targets)), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return count.clamp(min=1)
