"""Group DETR: G - 1 extra groups of queries of the primary's size (training only).

Every extra group is a copy of the primary query set with its own learned content
queries ((G - 1) * Q embeddings). Two-stage: all groups take the primary's top-Q
proposals as positional queries and reference boxes (detached, as the primary's).
Single-stage: each group has its own learned (position, content) pairs; reference
points from the primary's reference-point layer (shared).

Self-attention stays inside a group: the groups never see each other nor the primary
group (and the primary never sees them). All extra groups together are the `group`
stream, group g (0-based among the extra ones) at queries [g * Q, (g + 1) * Q).
Shapes: B batch, Q primary queries, E = (G - 1) * Q, D hidden size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from msdetr.methods.contracts import GROUP, GroupMeta, QueryContext, QueryGroup


def block_diagonal_mask(num_groups: int, group_size: int, device: torch.device) -> Tensor:
    """(E, E) bool, True = blocked: query i sees query j only inside the same group."""
    ids = torch.arange(num_groups * group_size, device=device) // group_size
    return ids[:, None] != ids[None, :]


class GroupQueries(nn.Module):
    """Provider of the `group` query group: (G - 1) * Q queries, (B, E, D) / (B, E, 4 or 2)."""

    def __init__(self, num_groups: int, group_size: int, hidden_dim: int, two_stage: bool):
        super().__init__()
        self.num_extra_groups = num_groups - 1
        self.group_size = group_size
        self.hidden_dim = hidden_dim
        self.two_stage = two_stage
        self.num_proposals = 0  # takes the primary's proposals, none beyond them
        width = hidden_dim if two_stage else 2 * hidden_dim
        self.query_embed = nn.Embedding(self.num_extra_groups * group_size, width)

    def forward(self, context: QueryContext) -> QueryGroup:
        primary = context.primary
        b, q = primary.tgt.shape[:2]  # q < Q when the image has fewer encoder tokens than Q
        g = self.num_extra_groups
        embed = self.query_embed.weight.view(g, self.group_size, -1)[:, :q].reshape(g * q, -1)
        if self.two_stage:
            tgt = embed[None].expand(b, -1, -1)
            query_pos = primary.query_pos.repeat(1, g, 1)
            reference_points = primary.reference_points.repeat(1, g, 1)
        else:
            query_pos, tgt = embed.split(self.hidden_dim, dim=1)
            query_pos, tgt = query_pos[None].expand(b, -1, -1), tgt[None].expand(b, -1, -1)
            reference_points = context.source.reference_points(query_pos).sigmoid()
        return QueryGroup(GROUP, tgt, query_pos, reference_points,
                          self_mask=block_diagonal_mask(g, q, tgt.device),
                          meta=GroupMeta(g, q))
