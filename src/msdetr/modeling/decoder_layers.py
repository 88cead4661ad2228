"""Decoder layers: the standard Deformable DETR layer and the MS-DETR mixed-supervision layer.

Both are built from the same three blocks (self-attention, deformable
cross-attention, FFN; each with residual + post-norm). The standard layer runs
self-attn -> cross-attn -> FFN. The mixed-supervision layer runs its blocks in
the order of its placement and taps the features after one block for the
one-to-many stream, optionally through an auxiliary FFN. Paper Fig. 4:

    a: self -> cross -> FFN,  tap after the FFN
    b: cross -> self -> FFN,  tap after the FFN
    c: cross -> [tap] -> self -> FFN   (MS-DETR)
    d: self -> [tap] -> cross -> FFN

Parameter names follow the official code so official checkpoints load as they are.
Shapes: B batch, Q queries, D hidden_dim, S memory tokens, L levels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor, nn

from msdetr.modeling.encoder import activation_fn
from msdetr.modeling.stacked import stacked_layer_norm, stacked_linear
from msdetr.ops.ms_deform_attn import MultiScaleDeformableAttention

# placement -> (block order, index of the block after which the tap is taken)
# A decoder branch's replacement blocks by name ("self", "cross", "ffn"); None skips the block.
BlockSubstitutes = Mapping[str, Callable[..., Tensor] | None]

PLACEMENTS: dict[str, tuple[tuple[str, str, str], int]] = {
    "a": (("self", "cross", "ffn"), 2),
    "b": (("cross", "self", "ffn"), 2),
    "c": (("cross", "self", "ffn"), 0),
    "d": (("self", "cross", "ffn"), 0),
}


class _DecoderBlocks(nn.Module):
    """The three residual blocks a decoder layer is made of."""

    def __init__(self, hidden_dim: int, dim_feedforward: int, dropout: float, activation: str,
                 num_levels: int, num_heads: int, num_points: int):
        super().__init__()
        self.cross_attn = MultiScaleDeformableAttention(hidden_dim, num_levels, num_heads, num_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.self_attn = nn.MultiheadAttention(hidden_dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.linear1 = nn.Linear(hidden_dim, dim_feedforward)
        self.activation = activation_fn(activation)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, hidden_dim)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(hidden_dim)

    def self_block(self, tgt: Tensor, query_pos: Tensor, attn_mask: Tensor | None) -> Tensor:
        """tgt, query_pos: (B, Q, D); attn_mask: (Q, Q) or (B*heads, Q, Q), True = blocked."""
        q = k = tgt + query_pos
        out = self.self_attn(q, k, tgt, attn_mask=attn_mask, need_weights=False)[0]
        return self.norm2(tgt + self.dropout2(out))

    def cross_block(self, tgt: Tensor, query_pos: Tensor, reference_points: Tensor, memory: Tensor,
                    spatial_shapes: list[tuple[int, int]], padding_mask: Tensor) -> Tensor:
        """reference_points: (B, Q, L, 2 or 4); memory: (B, S, D); padding_mask: (B, S)."""
        out = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes, padding_mask)
        return self.norm1(tgt + self.dropout1(out))

    def ffn_block(self, tgt: Tensor) -> Tensor:
        out = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(out))

    def run_block(self, name: str, tgt: Tensor, query_pos: Tensor, reference_points: Tensor, memory: Tensor,
                  spatial_shapes: list[tuple[int, int]], padding_mask: Tensor,
                  attn_mask: Tensor | None, substitute: BlockSubstitutes | None = None) -> Tensor:
        """Block `name` ("self", "cross" or "ffn"); `substitute[name]`, when given, runs instead
        (None: the block is skipped), called as `block(layer, tgt, query_pos, attn_mask)`."""
        if substitute is not None and name in substitute:
            block = substitute[name]
            return tgt if block is None else block(self, tgt, query_pos, attn_mask)
        if name == "self":
            return self.self_block(tgt, query_pos, attn_mask)
        if name == "cross":
            return self.cross_block(tgt, query_pos, reference_points, memory, spatial_shapes, padding_mask)
        return self.ffn_block(tgt)


class DecoderLayer(_DecoderBlocks):
    """Standard Deformable DETR decoder layer: self-attn -> cross-attn -> FFN. One stream."""

    def forward(self, tgt: Tensor, query_pos: Tensor, reference_points: Tensor, memory: Tensor,
                spatial_shapes: list[tuple[int, int]], padding_mask: Tensor,
                attn_mask: Tensor | None = None, tap: bool = False,
                tap_queries: int | None = None, substitute: BlockSubstitutes | None = None) -> tuple[Tensor, None]:
        """Returns (one_to_one (B, Q, D), None). substitute: blocks run instead of this layer's own
        (a decoder branch's, e.g. DAC-DETR's skipped self-attention), see `run_block`."""
        for name in ("self", "cross", "ffn"):
            tgt = self.run_block(name, tgt, query_pos, reference_points, memory, spatial_shapes, padding_mask,
                                 attn_mask, substitute)
        return tgt, None


class MixedSupervisionDecoderLayer(_DecoderBlocks):
    """MS-DETR decoder layer: returns the one-to-one output and the tapped one-to-many features."""

    def __init__(self, hidden_dim: int, dim_feedforward: int, dropout: float, activation: str,
                 num_levels: int, num_heads: int, num_points: int, placement: str = "c", aux_ffn: bool = True):
        super().__init__(hidden_dim, dim_feedforward, dropout, activation, num_levels, num_heads, num_points)
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown tap placement {placement!r}; use one of {sorted(PLACEMENTS)}")
        self.order, self.tap_after = PLACEMENTS[placement]
        self.aux_ffn = aux_ffn
        if aux_ffn:
            self.linear3 = nn.Linear(hidden_dim, dim_feedforward)
            self.dropout5 = nn.Dropout(dropout)
            self.linear4 = nn.Linear(dim_feedforward, hidden_dim)
            self.dropout6 = nn.Dropout(dropout)
            self.norm4 = nn.LayerNorm(hidden_dim)

    def aux_ffn_block(self, tgt: Tensor) -> Tensor:
        out = self.linear4(self.dropout5(self.activation(self.linear3(tgt))))
        return self.norm4(tgt + self.dropout6(out))

    def forward(self, tgt: Tensor, query_pos: Tensor, reference_points: Tensor, memory: Tensor,
                spatial_shapes: list[tuple[int, int]], padding_mask: Tensor,
                attn_mask: Tensor | None = None, tap: bool = True,
                defer_aux_ffn: bool = False, tap_queries: int | None = None,
                substitute: BlockSubstitutes | None = None) -> tuple[Tensor, Tensor | None]:
        """Returns (one_to_one (B, Q, D), one_to_many (B, Q', D) or None when tap is False).

        defer_aux_ffn: return the tapped features *before* the auxiliary FFN; the caller
        applies it (the decoder does so for all layers at once, `aux_ffn_all_layers`).
        tap_queries: tap only the first Q' queries (the primary ones, when extra query groups
        follow them; None: all).
        substitute: blocks run instead of this layer's own (a decoder branch's), see `run_block`."""
        tapped = None
        for index, name in enumerate(self.order):
            tgt = self.run_block(name, tgt, query_pos, reference_points, memory, spatial_shapes,
                                 padding_mask, attn_mask, substitute)
            if tap and index == self.tap_after:
                tapped = tgt if tap_queries is None else tgt[:, :tap_queries]
                tapped = self.aux_ffn_block(tapped) if self.aux_ffn and not defer_aux_ffn else tapped
        return tgt, tapped


def aux_ffn_all_layers(layers: list[MixedSupervisionDecoderLayer], tapped: Tensor) -> Tensor:
    """Each layer's auxiliary FFN on its tapped features, all layers in one batched pass.

    tapped: (L, B, Q, D), slice l from layers[l] -> (L, B, Q, D). Equal to
    `layers[l].aux_ffn_block(tapped[l])` up to float rounding of the batched matrix products
    (dropout draws its masks for all layers at once)."""
    first = layers[0]
    hidden = first.activation(stacked_linear([layer.linear3 for layer in layers], tapped))
    out = stacked_linear([layer.linear4 for layer in layers], first.dropout5(hidden))
    return stacked_layer_norm([layer.norm4 for layer in layers], tapped + first.dropout6(out))
