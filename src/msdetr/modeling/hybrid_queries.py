"""H-DETR hybrid matching: the extra queries of the one-to-many branch (training only).

Two-stage (H-DETR's recipes): the encoder proposals ranked right after the primary
top-Q (one top-(Q + E) selection split after Q, as H-DETR does) give the positional
queries and reference boxes (on images with S < Q + E encoder tokens, the last min(E, S)
of the top-S, overlapping the primary's lowest ranks); with mixed selection the content
queries are E learned embeddings (H-DETR's `query_embed` rows Q..Q+E-1), otherwise the
proposals' own content.
Single-stage: E learned (position, content) pairs; reference points from the primary's
reference-point layer (shared, as H-DETR shares it over all Q + E queries).

The branch's queries attend to each other but never to the primary ones (and the
primary never to them); its predictions are the `hybrid` stream.
Shapes: B batch, E = num_queries extra queries, D hidden size.
"""

from __future__ import annotations

from torch import nn

from msdetr.errors import MsdetrError
from msdetr.methods.contracts import HYBRID, HybridMeta, QueryContext, QueryGroup


class HybridQueries(nn.Module):
    """Provider of the `hybrid` query group: E queries, returned as (B, E, D) / (B, E, 4 or 2)."""

    def __init__(self, num_queries: int, hidden_dim: int, two_stage: bool, mixed_selection: bool):
        super().__init__()
        self.num_queries = num_queries
        self.hidden_dim = hidden_dim
        self.two_stage = two_stage
        # two-stage: the detector hands over this many proposals after the primary top-Q
        self.num_proposals = num_queries if two_stage else 0
        self.content_embed = nn.Embedding(num_queries, hidden_dim) if two_stage and mixed_selection else None
        self.query_embed = None if two_stage else nn.Embedding(num_queries, 2 * hidden_dim)

    def forward(self, context: QueryContext) -> QueryGroup:
        b = context.memory.shape[0]
        if self.two_stage:
            extra = context.primary.extra
            if extra is None:
                raise MsdetrError("hybrid queries: the two-stage query module returned no extra proposals")
            count = extra.tgt.shape[1]  # E, or min(E, S) when the image has S < E encoder tokens
            tgt = extra.tgt
            if self.content_embed is not None:
                tgt = self.content_embed.weight[:count][None].expand(b, -1, -1)
            return QueryGroup(HYBRID, tgt, extra.query_pos, extra.reference_points, meta=HybridMeta(count))
        query_pos, tgt = self.query_embed.weight.split(self.hidden_dim, dim=1)
        query_pos = query_pos[None].expand(b, -1, -1)
        reference_points = context.source.reference_points(query_pos).sigmoid()
        return QueryGroup(HYBRID, tgt[None].expand(b, -1, -1), query_pos, reference_points,
                          meta=HybridMeta(self.num_queries))
