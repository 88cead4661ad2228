"""The extra routes: the decoder's layers run again, block by block, with the route's substitutions.

Each route is a separate pass over the encoder memory with the primary's layer modules, box
refinement and heads (the routes never attend to each other). A layer's blocks run in the layer's
own order (self -> cross -> FFN; MS-DETR's layers: cross -> self -> FFN) without the MS-DETR tap:
- instructive: `attention.instructive_self_block` instead of the layer's self-attention block;
- sep: `attention.sep_ffn_block` instead of the layer's FFN block.
Predictions come from the primary's per-layer class and box heads; the reference boxes are refined
like the primary's (detached between layers, look forward twice as configured), with the inverse
sigmoid clamped at `reference_eps` (the release's detrex 1e-3).

Shapes: L layers, B batch, Q queries, D hidden size, C classes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from msdetr.methods.mr_detr.attention import instructive_self_block, sep_ffn_block
from msdetr.methods.mr_detr.parameters import MrDetrParameters
from msdetr.modeling.decoder import DeformableDecoder, inverse_sigmoid
from msdetr.modeling.heads import PredictionHeads
from msdetr.modeling.outputs import StreamPredictions
from msdetr.modeling.stacked import stacked_linear

STANDARD_ORDER = ("self", "cross", "ffn")


def run_route(route: str, decoder: DeformableDecoder, heads: PredictionHeads, params: MrDetrParameters,
              tgt: Tensor, query_pos: Tensor, reference: Tensor, memory: Tensor,
              spatial_shapes: list[tuple[int, int]], valid_ratios: Tensor, padding_mask: Tensor,
              attn_mask: Tensor | None = None, num_primary: int | None = None) -> StreamPredictions:
    """One route ("instructive" or "sep") from its queries: tgt, query_pos (B, Q, D), reference
    boxes (B, Q, 4), memory (B, S, D), valid_ratios (B, levels, 2), padding_mask (B, S);
    attn_mask (Q, Q) True = blocked, with denoising queries after the first `num_primary`;
    returns logits (L, B, Q, C) and boxes (L, B, Q, 4)."""
    eps = params.cfg.reference_eps
    out, predict_from = tgt, reference
    hidden, boxes = [], []
    for layer, route_params, box_head in zip(decoder.layers, params.layers, heads.box_heads):
        ref_input = reference[:, :, None] * torch.cat([valid_ratios, valid_ratios], -1)[:, None]
        for name in getattr(layer, "order", STANDARD_ORDER):
            out = _block(route, name, layer, route_params, out, query_pos, ref_input, memory, spatial_shapes,
                         padding_mask, attn_mask, num_primary)
        delta = box_head(out)
        hidden.append(out)
        boxes.append((delta + inverse_sigmoid(predict_from, eps)).sigmoid())
        if decoder.refine:
            refined = (delta + inverse_sigmoid(reference, eps)).sigmoid()
            reference = refined.detach()
            predict_from = refined if decoder.look_forward_twice else reference
    logits = stacked_linear(list(heads.class_heads), torch.stack(hidden))
    return StreamPredictions(logits=logits, boxes=torch.stack(boxes))


def _block(route: str, name: str, layer: nn.Module, params: nn.Module, tgt: Tensor, query_pos: Tensor,
           ref_input: Tensor, memory: Tensor, spatial_shapes: list[tuple[int, int]], padding_mask: Tensor,
           attn_mask: Tensor | None, num_primary: int | None) -> Tensor:
    if name == "self":
        if route == "instructive":
            return instructive_self_block(layer, params, tgt, query_pos, attn_mask, num_primary)
        return layer.self_block(tgt, query_pos, attn_mask)
    if name == "cross":
        return layer.cross_block(tgt, query_pos, ref_input, memory, spatial_shapes, padding_mask)
    if route == "sep":
        return sep_ffn_block(layer, params, tgt)
    return layer.ffn_block(tgt)
