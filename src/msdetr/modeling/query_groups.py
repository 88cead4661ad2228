"""Extra decoder queries that a training method adds (H-DETR hybrid, Group DETR, DN/DINO denoising).

A *query-group provider* is a small module owned by the detector (it holds the
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

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from msdetr.modeling.queries import QueryInit


@dataclass
class QueryGroup:
    """Queries one provider adds.

    name:             the stream its predictions are returned as ("hybrid", "group", "denoising")
    tgt, query_pos:   (B, E, D) content and positional queries
    reference_points: (B, E, 4) normalized boxes, or (B, E, 2) points (same kind as the primary's)
    self_mask:        (E, E) bool, True = blocked, attention inside the group; None: all visible
    sees_primary:     the group's queries may attend to the primary queries
    meta:             whatever the group's supervision needs (e.g. which target each
                      denoising query reconstructs); returned in `DetectorOutput.query_meta[name]`
    """

    name: str
    tgt: Tensor
    query_pos: Tensor
    reference_points: Tensor
    self_mask: Tensor | None = None
    sees_primary: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_queries(self) -> int:
        return self.tgt.shape[1]


@dataclass
class QueryContext:
    """What a provider may build its queries from.

    primary:        the primary queries (with two-stage proposals in `primary.encoder`)
    memory:         (B, S, D) encoder output; padding_mask: (B, S) True on padding
    spatial_shapes: (H_l, W_l) per feature level
    targets:        training targets (list of dicts with normalized cxcywh `boxes`, `labels`),
                    or None when the caller gave none
    source:         the detector's primary query module (`LearnedQueries` / `TwoStageQueries`),
                    whose layers extra queries may share (e.g. single-stage reference points)

    A provider with an int attribute `num_proposals` > 0 gets, with two-stage, the proposals
    ranked right after the primary top-Q in `primary.extra` (the detector asks for the largest
    `num_proposals`; with fewer than Q + E encoder tokens, the lowest-ranked min(E, S) proposals of
    the top-min(Q + E, S), overlapping the primary's: see `TwoStageQueries.forward`). With fewer
    than Q tokens the primary itself has only S queries (`primary.tgt.shape[1]`).
    """

    primary: QueryInit
    memory: Tensor
    padding_mask: Tensor
    spatial_shapes: list[tuple[int, int]]
    targets: list[dict[str, Tensor]] | None = None
    source: nn.Module | None = None


class QueryGroupProvider(Protocol):
    """An `nn.Module` of the detector: `provider(context) -> QueryGroup` (training only)."""

    def __call__(self, context: QueryContext) -> QueryGroup: ...


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


def build_query_group_providers(cfg) -> nn.ModuleList:
    """The providers a `ModelConfig` asks for, in stream order."""
    from msdetr.modeling.group_queries import GroupQueries
    from msdetr.modeling.hybrid_queries import HybridQueries

    providers = nn.ModuleList()
    if cfg.hybrid.num_queries > 0:
        providers.append(HybridQueries(cfg.hybrid.num_queries, cfg.hidden_dim, cfg.two_stage, cfg.mixed_selection))
    if cfg.group.num_groups > 1:
        providers.append(GroupQueries(cfg.group.num_groups, cfg.num_queries, cfg.hidden_dim, cfg.two_stage))
    if cfg.denoising.enabled:  # DN-DETR / DINO denoising queries
        from msdetr.modeling.denoising import DenoisingQueries

        providers.append(DenoisingQueries(cfg.denoising, cfg.num_classes, cfg.hidden_dim))
    return providers
