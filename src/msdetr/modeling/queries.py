"""Where the decoder's queries come from.

- `LearnedQueries`: single-stage Deformable DETR, learned (position, content)
  pairs and a linear layer predicting reference points.
- `TwoStageQueries`: the top-k encoder proposals become reference boxes; their
  sine embedding gives the positional (and, without mixed selection, content)
  queries. With mixed selection the content queries are learned (Deformable-DETR++).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from msdetr.modeling.outputs import EncoderPredictions
from msdetr.modeling.position import box_sine_embedding


@dataclass
class QueryInit:
    """Decoder inputs.

    tgt:              (B, Q, D) content queries
    query_pos:        (B, Q, D) positional queries
    reference_points: (B, Q, 4) boxes or (B, Q, 2) points, normalized
    encoder:          two-stage proposals, or None
    extra:            two-stage only, when asked (`num_extra`): the E proposals ranked right after
                      the primary top-Q, as queries (B, E, ...) built the same way (extra query
                      groups such as H-DETR's hybrid branch take them; on images with fewer than
                      Q + E encoder tokens the last min(E, S) of the top-min(Q + E, S) ranks);
                      None otherwise
    position_of:      (B, E, 4) boxes in logit space -> (B, E, D) positional queries made the way
                      the primary's are (for extra query groups, e.g. denoising); None when the
                      decoder computes positional queries itself (anchor queries) or has none
    """

    tgt: Tensor
    query_pos: Tensor
    reference_points: Tensor
    encoder: EncoderPredictions | None = None
    extra: QueryInit | None = None
    position_of: Callable[[Tensor], Tensor] | None = None


class LearnedQueries(nn.Module):
    """Single-stage: Q learned (position, content) embeddings and 2-D reference points."""

    def __init__(self, num_queries: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.query_embed = nn.Embedding(num_queries, hidden_dim * 2)
        self.reference_points = nn.Linear(hidden_dim, 2)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
        nn.init.zeros_(self.reference_points.bias)

    def forward(self, memory: Tensor, **_) -> QueryInit:
        """memory: (B, S, D) (only its batch size is used)."""
        b = memory.shape[0]
        query_pos, tgt = self.query_embed.weight.split(self.hidden_dim, dim=1)
        query_pos = query_pos[None].expand(b, -1, -1)
        return QueryInit(tgt=tgt[None].expand(b, -1, -1), query_pos=query_pos,
                         reference_points=self.reference_points(query_pos).sigmoid())


def encoder_proposals(memory: Tensor, padding_mask: Tensor,
                      spatial_shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """One anchor per encoder token: its cell centre, side 0.05 * 2**level.

    memory: (B, S, D); padding_mask: (B, S) bool
    returns: memory with padded/invalid tokens zeroed (B, S, D),
             anchors in logit space (B, S, 4), +inf where invalid
    """
    b = memory.shape[0]
    anchors, start = [], 0
    for level, (h, w) in enumerate(spatial_shapes):
        mask = padding_mask[:, start : start + h * w].view(b, h, w)
        valid_h = (~mask[:, :, 0]).sum(1)
        valid_w = (~mask[:, 0, :]).sum(1)
        grid_y, grid_x = torch.meshgrid(
            torch.arange(h, dtype=torch.float32, device=memory.device),
            torch.arange(w, dtype=torch.float32, device=memory.device),
            indexing="ij",
        )
        grid = torch.stack([grid_x, grid_y], -1)
        scale = torch.stack([valid_w, valid_h], 1).view(b, 1, 1, 2)
        centres = (grid[None] + 0.5) / scale
        sizes = torch.full_like(centres, 0.05 * (2.0**level))
        anchors.append(torch.cat([centres, sizes], -1).view(b, -1, 4))
        start += h * w
    anchors = torch.cat(anchors, 1)
    valid = ((anchors > 0.01) & (anchors < 0.99)).all(-1, keepdim=True)
    anchors = torch.log(anchors / (1 - anchors))
    anchors = anchors.masked_fill(padding_mask[..., None] | ~valid, float("inf"))
    memory = memory.masked_fill(padding_mask[..., None] | ~valid, 0.0)
    return memory, anchors


class TwoStageQueries(nn.Module):
    """Top-k encoder proposals as reference boxes (Deformable DETR two-stage).

    rank_valid_only: never select proposals at padded or invalid (border) locations;
    the official code ranks them too (their memory is zeroed, anchors infinite).
    """

    def __init__(self, num_queries: int, hidden_dim: int, mixed_selection: bool, rank_valid_only: bool = False):
        super().__init__()
        self.num_queries = num_queries
        self.rank_valid_only = rank_valid_only
        self.hidden_dim = hidden_dim
        self.enc_output = nn.Linear(hidden_dim, hidden_dim)
        self.enc_output_norm = nn.LayerNorm(hidden_dim)
        self.pos_trans = nn.Linear(hidden_dim * 2, hidden_dim * 2)
        self.pos_trans_norm = nn.LayerNorm(hidden_dim * 2)
        self.content_embed = nn.Embedding(num_queries, hidden_dim) if mixed_selection else None

    def forward(self, memory: Tensor, padding_mask: Tensor, spatial_shapes: list[tuple[int, int]],
                class_head: nn.Module, box_head: nn.Module, num_extra: int = 0) -> QueryInit:
        """
        memory: (B, S, D); padding_mask: (B, S) bool
        class_head, box_head: the encoder proposal heads (owned by the detector)
        num_extra: also return the next `num_extra` proposals (one top-(Q + E) selection,
                   split after Q) in `QueryInit.extra`, without content queries of their own
                   (their `tgt` is the proposal content part even with mixed selection)

        Small images: with S < Q (+ E) encoder tokens (S of the padded batch, so one count for the
        whole batch) the primary gets k = min(Q, S) queries, proposal ranks 0..k-1, and with mixed
        selection the first k content embeddings (the others are unused for that batch); every
        stream built from them has k queries. The extra proposals are then the last min(E, S)
        ranks, overlapping the primary's when S < Q + E.
        """
        out_memory, anchors_unact = encoder_proposals(memory, padding_mask, spatial_shapes)
        out_memory = self.enc_output_norm(self.enc_output(out_memory))
        logits = class_head(out_memory)
        boxes_unact = box_head(out_memory) + anchors_unact
        k = min(self.num_queries + num_extra, logits.shape[1])
        # Proposals are ranked by the first class: the encoder loss trains all objects as class 0.
        rank = logits[..., 0]
        if self.rank_valid_only:
            rank = rank.masked_fill(torch.isinf(anchors_unact[..., 0]), float("-inf"))
        top = torch.topk(rank, k, dim=1)[1]
        top_boxes_unact = torch.gather(boxes_unact, 1, top[..., None].expand(-1, -1, 4)).detach()
        pos = self.pos_trans_norm(self.pos_trans(box_sine_embedding(top_boxes_unact, self.hidden_dim // 2)))
        query_pos, tgt = pos.split(self.hidden_dim, dim=2)
        reference_points = top_boxes_unact.sigmoid()
        extra = None
        if num_extra:
            # the primary takes the top min(Q, k), the extra ones the last min(E, k) of the top-k: ranks
            # Q..Q+E-1 whenever the encoder has Q + E tokens; on smaller images they overlap the primary's
            # lowest ranks (shared proposals, as Group DETR's groups share the primary's)
            q, start = min(self.num_queries, k), max(0, k - num_extra)
            extra = QueryInit(tgt=tgt[:, start:], query_pos=query_pos[:, start:],
                              reference_points=reference_points[:, start:])
            tgt, query_pos, reference_points = tgt[:, :q], query_pos[:, :q], reference_points[:, :q]
        if self.content_embed is not None:
            # one learned content query per selected proposal rank: with fewer encoder tokens than
            # Q (small images) only the first `reference_points.shape[1]` are used
            count = reference_points.shape[1]
            tgt = self.content_embed.weight[:count][None].expand(memory.shape[0], -1, -1)
        encoder = EncoderPredictions(logits=logits, boxes=boxes_unact.sigmoid(), anchors=anchors_unact.sigmoid())
        return QueryInit(tgt=tgt, query_pos=query_pos, reference_points=reference_points, encoder=encoder,
                         extra=extra, position_of=self.positional_query)

    def positional_query(self, boxes_unact: Tensor) -> Tensor:
        """(B, E, 4) boxes in logit space -> (B, E, D) positional queries, as the proposals'."""
        pos = self.pos_trans_norm(self.pos_trans(box_sine_embedding(boxes_unact, self.hidden_dim // 2)))
        return pos[..., : self.hidden_dim]
