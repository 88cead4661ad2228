"""DAB-Deformable-DETR queries: learned content and learned 4-d anchor boxes.

The anchors are the reference boxes of the first decoder layer and are refined layer by layer
(iterative box refinement). Each layer's positional query is computed from its current anchor
(`AnchorPositionalQuery`, passed to the decoder by the detector) instead of being a fixed
embedding:

    query_pos_i = s_i * MLP(sine(anchor_i)),  s_0 = 1,  s_i = MLP'(content_i) for i > 0

Shapes: B batch, Q queries, D hidden size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from msdetr.modeling.heads import MLP
from msdetr.modeling.queries import QueryInit


def anchor_sine_embedding(boxes: Tensor, num_pos_feats: int, temperature: float = 10000.0) -> Tensor:
    """Sine embedding of normalized boxes, DAB order (y, x, w, h).

    boxes:   (B, Q, 4) normalized (cx, cy, w, h)
    returns: (B, Q, 4 * num_pos_feats)
    """
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)
    pos = boxes[..., None] * (2 * math.pi) / dim_t
    pos = torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)
    x, y, w, h = pos.unbind(-2)
    return torch.cat([y, x, w, h], -1)


class AnchorPositionalQuery(nn.Module):
    """A decoder layer's positional query from its current anchor (and content from layer 1 on)."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.ref_point_head = MLP(2 * hidden_dim, hidden_dim, hidden_dim, 2)
        self.query_scale = MLP(hidden_dim, hidden_dim, hidden_dim, 2)

    def forward(self, anchors: Tensor, content: Tensor, layer: int) -> Tensor:
        """
        anchors: (B, Q, 4) the layer's reference boxes, scaled by the first level's valid ratios
        content: (B, Q, D) the layer's input content queries
        returns: (B, Q, D) positional queries
        """
        raw = self.ref_point_head(anchor_sine_embedding(anchors, self.hidden_dim // 2))
        return raw if layer == 0 else self.query_scale(content) * raw


class AnchorQueries(nn.Module):
    """Q learned content queries and Q learned anchors (in logit space).

    content_dim: hidden_dim, or hidden_dim - 1 when denoising uses DN-DETR's label indicator
    (the primary queries then carry a zero indicator feature).
    position: the per-layer positional query module, handed to the decoder by the detector.
    """

    def __init__(self, num_queries: int, hidden_dim: int, content_dim: int | None = None):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.tgt_embed = nn.Embedding(num_queries, content_dim or hidden_dim)
        self.refpoint_embed = nn.Embedding(num_queries, 4)
        self.position = AnchorPositionalQuery(hidden_dim)

    def reset_parameters(self) -> None:
        """Embeddings N(0, 1) (torch's default, as the reference)."""
        nn.init.normal_(self.tgt_embed.weight)
        nn.init.normal_(self.refpoint_embed.weight)

    def forward(self, memory: Tensor, **_) -> QueryInit:
        """memory: (B, S, D) (only its batch size is used). query_pos is zeros: the decoder computes it."""
        b = memory.shape[0]
        tgt = self.tgt_embed.weight
        if tgt.shape[1] < self.hidden_dim:
            tgt = torch.cat([tgt, tgt.new_zeros(tgt.shape[0], self.hidden_dim - tgt.shape[1])], 1)
        tgt = tgt[None].expand(b, -1, -1)
        reference = self.refpoint_embed.weight.sigmoid()[None].expand(b, -1, -1)
        return QueryInit(tgt=tgt, query_pos=torch.zeros_like(tgt), reference_points=reference)
