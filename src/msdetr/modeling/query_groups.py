"""Extra decoder queries that a training method adds (H-DETR hybrid, Group DETR, DN/DINO denoising).

A *query-group provider* (contract in `msdetr.methods.contracts`) is a small module owned by the detector (it holds the
parameters its queries need: learned content embeddings, a label embedding, ...).
While training, each provider returns one `QueryGroup`; the detector appends the
groups after the primary queries, runs everything through the same decoder under
one self-attention mask, and returns each group's predictions as a stream named
after the group (`hybrid`, `group`, `denoising`). At inference no provider runs,
so inference costs exactly what the plain detector costs.

The decoder knows nothing of this beyond a longer query tensor and the mask.
Mask rules (True = blocked, as `nn.MultiheadAttention`):
- the primary queries never see any extra query;
- a group never sees another group;
- a group sees the primary queries only when it says so (`sees_primary`; DN-DETR);
- inside a group, its own `self_mask` (e.g. denoising sub-groups that must not see
  each other); None lets every query of the group see every other.

Shapes: B batch, Q primary queries, E a group's queries, D hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from msdetr.methods.contracts import QueryContext, QueryGroup
from msdetr.modeling.queries import QueryInit

__all__ = ["AssembledQueries", "QueryContext", "QueryGroup", "assemble_queries"]


@dataclass
class AssembledQueries:
    """Primary and extra queries side by side, ready for the decoder.

    tgt, query_pos:   (B, Q + sum E, D)
    reference_points: (B, Q + sum E, 4 or 2)
    attn_mask:        (Q + sum E, Q + sum E) bool, True = blocked; None without extra groups
    slices:           stream name -> the query range of that stream (the primary is `primary_name`)
    """

    tgt: Tensor
    query_pos: Tensor
    reference_points: Tensor
    attn_mask: Tensor | None
    slices: dict[str, slice]


def assemble_queries(primary: QueryInit, groups: list[QueryGroup], primary_name: str) -> AssembledQueries:
    """Concatenate the groups after the primary queries and build the self-attention mask."""
    num_primary = primary.tgt.shape[1]
    slices = {primary_name: slice(0, num_primary)}
    if not groups:
        return AssembledQueries(primary.tgt, primary.query_pos, primary.reference_points, None, slices)
    total = num_primary + sum(g.num_queries for g in groups)
    device = primary.tgt.device
    mask = torch.ones(total, total, dtype=torch.bool, device=device)
    mask[:num_primary, :num_primary] = False
    start = num_primary
    for group in groups:
        if group.name in slices:
            raise ValueError(f"two query groups are named {group.name!r}")
        if group.reference_points.shape[-1] != primary.reference_points.shape[-1]:
            raise ValueError(
                f"query group {group.name!r}: reference points of size {group.reference_points.shape[-1]}, "
                f"the primary queries have {primary.reference_points.shape[-1]}"
            )
        end = start + group.num_queries
        block = mask[start:end, start:end]
        block.copy_(group.self_mask.to(device) if group.self_mask is not None else torch.zeros_like(block))
        if group.sees_primary:
            mask[start:end, :num_primary] = False
        slices[group.name] = slice(start, end)
        start = end
    return AssembledQueries(
        tgt=torch.cat([primary.tgt, *(g.tgt for g in groups)], 1),
        query_pos=torch.cat([primary.query_pos, *(g.query_pos for g in groups)], 1),
        reference_points=torch.cat([primary.reference_points, *(g.reference_points for g in groups)], 1),
        attn_mask=mask,
        slices=slices,
    )
