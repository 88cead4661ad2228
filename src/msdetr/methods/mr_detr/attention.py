"""The blocks the routes substitute in a decoder layer (the layer's own modules otherwise).

Shapes: B batch, Q queries, T instruction tokens, D hidden size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from msdetr.methods.mr_detr.parameters import RouteLayerParameters


def instructive_self_block(layer: nn.Module, params: RouteLayerParameters, tgt: Tensor, query_pos: Tensor,
                           attn_mask: Tensor | None = None, num_primary: int | None = None) -> Tensor:
    """The layer's self-attention with the T instruction tokens prepended to queries, keys and values.

    tgt, query_pos: (B, Q, D) -> (B, Q, D). Queries and keys: [instruction + instruction_pos;
    tgt + query_pos], values: [instruction; tgt]; the outputs at the token positions are dropped;
    post-norm with the route's own LayerNorm (released `CustomMultiheadAttention`, `o2m=True`).
    attn_mask: (Q, Q) over the queries (True: blocked), None: no mask (every query and token sees
    every other). With a mask the tokens and the first `num_primary` queries see each other, the
    other queries (denoising ones) never see the tokens nor are seen by them (the release's DINO mask).
    """
    b, num_tokens = tgt.shape[0], params.instruction.shape[0]
    tokens = (params.instruction + params.instruction_pos)[None].expand(b, -1, -1)
    qk = torch.cat([tokens, tgt + query_pos], 1)
    v = torch.cat([params.instruction[None].expand(b, -1, -1), tgt], 1)
    mask = None
    if attn_mask is not None:
        visible = num_tokens + (attn_mask.shape[-1] if num_primary is None else num_primary)
        mask = attn_mask.new_ones(num_tokens + attn_mask.shape[-2], num_tokens + attn_mask.shape[-1])
        mask[num_tokens:, num_tokens:] = attn_mask
        mask[:num_tokens, :visible] = False
        mask[num_tokens:visible, :num_tokens] = False
    out = layer.self_attn(qk, qk, v, attn_mask=mask, need_weights=False)[0][:, num_tokens:]
    return params.norm(tgt + layer.dropout2(out))


def sep_ffn_block(layer: nn.Module, params: RouteLayerParameters, tgt: Tensor) -> Tensor:
    """The layer's FFN block with the route's two linears (activation, dropout, norm3 shared).
    (B, Q, D) -> (B, Q, D)."""
    out = params.linear2(layer.dropout3(layer.activation(params.linear1(tgt))))
    return layer.norm3(tgt + layer.dropout4(out))
