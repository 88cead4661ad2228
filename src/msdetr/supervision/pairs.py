"""Conversions between the per-image assignment and flat (batch-wide) pair tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from msdetr.supervision.base import Assignment


@dataclass
class FlatPairs:
    """All pairs of a batch, in assignment order.

    image: (P,) int64 image index; query: (P,) query index; target: (P,) target index
    within its image.
    """

    image: Tensor
    query: Tensor
    target: Tensor

    def __len__(self) -> int:
        return self.image.shape[0]


def flatten(assignment: Assignment, device: torch.device) -> FlatPairs:
    """Concatenate the per-image pairs, image by image."""
    if not assignment:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return FlatPairs(empty, empty, empty)
    sizes = torch.tensor([len(pred_idx) for pred_idx, _ in assignment], dtype=torch.int64)
    image = torch.repeat_interleave(torch.arange(len(assignment)), sizes).to(device)
    query = torch.cat([pred_idx.to(device) for pred_idx, _ in assignment])
    target = torch.cat([target_idx.to(device) for _, target_idx in assignment])
    return FlatPairs(image=image, query=query, target=target)


def unflatten(pairs: FlatPairs, batch_size: int) -> Assignment:
    """Split image-sorted flat pairs back into per image (pred_idx, target_idx)."""
    sizes = torch.bincount(pairs.image, minlength=batch_size).tolist()
    return list(zip(pairs.query.split(sizes), pairs.target.split(sizes)))


def last_occurrence(image: Tensor, query: Tensor, batch_size: int, num_queries: int) -> Tensor:
    """(P,) bool: True on the last pair of each (image, query).

    When a one-to-many assignment gives a query to several targets, the last pair
    decides the query's class target; this makes that rule deterministic on every
    device (a plain index_put with repeated indices is not).
    """
    key = image * num_queries + query
    position = torch.arange(key.shape[0], device=key.device)
    last = torch.full((batch_size * num_queries,), -1, dtype=torch.int64, device=key.device)
    last.scatter_reduce_(0, key, position, reduce="amax")
    return last[key] == position
