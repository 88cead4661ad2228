"""Deformable decoder with iterative box refinement and look-forward-twice."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from msdetr.modeling.decoder_layers import BlockSubstitutes, aux_ffn_all_layers


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """logit(x) with x clamped to [eps, 1 - eps] (as the official code)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def apply_box_delta(delta: Tensor, reference: Tensor) -> Tensor:
    """Refine references in logit space.

    delta:     (..., 4) head output
    reference: (..., 4) boxes or (..., 2) points, normalized
    returns:   (..., 4) normalized (cx, cy, w, h)
    """
    if reference.shape[-1] == 4:
        return (delta + inverse_sigmoid(reference)).sigmoid()
    return torch.cat([delta[..., :2] + inverse_sigmoid(reference), delta[..., 2:]], -1).sigmoid()


@dataclass
class DecoderMemory:
    """The encoder output as the decoder reads it.

    memory:         (B, S, D) encoder tokens of all levels
    spatial_shapes: (H_l, W_l) per level
    valid_ratios:   (B, L, 2) unpadded fraction (w, h) per image and level
    padding_mask:   (B, S) True on padding
    """

    memory: Tensor
    spatial_shapes: list[tuple[int, int]]
    valid_ratios: Tensor
    padding_mask: Tensor


@dataclass
class DecoderQueries:
    """What the decoder starts from: tgt, query_pos (B, Q, D); reference_points (B, Q, 4) boxes or
    (B, Q, 2) points; attn_mask (Q, Q) bool, True = blocked, or None."""

    tgt: Tensor
    query_pos: Tensor
    reference_points: Tensor
    attn_mask: Tensor | None = None


@dataclass
class DecoderOutput:
    """Per-layer decoder results, layers stacked on dim 0.

    hidden:     (L, B, Q, D) one-to-one stream features
    hidden_o2m: (L, B, Q, D) one-to-many stream features, or None
    box_deltas: (L, B, Q, 4) box head outputs on `hidden`, in logit space
    references: L tensors (B, Q, 4) (or (B, Q, 2) points for a single-stage first
                layer): the reference each layer's boxes are predicted from
    """

    hidden: Tensor
    hidden_o2m: Tensor | None
    box_deltas: Tensor
    references: list[Tensor]


class DeformableDecoder(nn.Module):
    """Runs the decoder layers; refines the reference boxes with the given box heads.

    refine: iterative box refinement (each layer's prediction becomes the next
            layer's reference, detached).
    look_forward_twice: the reference a layer predicts from is the previous
            layer's refined box *without* detaching, so the box loss of layer i
            also trains layer i-1 (DINO).
    """

    def __init__(self, layers: list[nn.Module], refine: bool, look_forward_twice: bool):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.refine = refine
        self.look_forward_twice = look_forward_twice and refine

    def forward(self, queries: DecoderQueries, memory: DecoderMemory, box_heads: list[nn.Module],
                tap: bool = True, tap_queries: int | None = None, query_position: nn.Module | None = None,
                substitutes: list[BlockSubstitutes | None] | None = None) -> DecoderOutput:
        """
        queries:        content / positional queries (B, Q, D), reference boxes (B, Q, 4) or points
                        (B, Q, 2), optional self-attention mask (extra queries of other methods)
        memory:         the encoder output and its layout (`DecoderMemory`)
        box_heads:      one box head per layer (passed in, owned by the detector)
        tap:            ask mixed-supervision layers for their one-to-many features
        tap_queries:    tap only the first this many queries (the primary ones); None: all
        query_position: computes each layer's positional query from its reference boxes
                        (anchor queries: `(anchors (B, Q, 4), content (B, Q, D), layer) -> (B, Q, D)`);
                        None: every layer uses `queries.query_pos`
        substitutes:    per layer, blocks run instead of the layer's own (a decoder branch, see
                        `modeling.branches`); None: the layers as they are
        """
        # MS-DETR auxiliary FFNs: applied after the loop, to all layers at once (they feed nothing
        # back into the decoder)
        defer = tap and all(getattr(layer, "aux_ffn", False) for layer in self.layers)
        extra = {"defer_aux_ffn": True} if defer else {}
        out, query_pos = queries.tgt, queries.query_pos
        reference = predict_from = queries.reference_points
        valid_ratios = memory.valid_ratios
        hidden, hidden_o2m, deltas, references = [], [], [], []
        if substitutes is None:
            substitutes = [None] * len(self.layers)
        for index, (layer, box_head, substitute) in enumerate(zip(self.layers, box_heads, substitutes)):
            if reference.shape[-1] == 4:
                ref_input = reference[:, :, None] * torch.cat([valid_ratios, valid_ratios], -1)[:, None]
            else:
                ref_input = reference[:, :, None] * valid_ratios[:, None]
            if query_position is not None:
                query_pos = query_position(ref_input[:, :, 0], out, index)
            out, out_o2m = layer(out, query_pos, ref_input, memory.memory, memory.spatial_shapes,
                                 memory.padding_mask, attn_mask=queries.attn_mask, tap=tap, tap_queries=tap_queries,
                                 substitute=substitute, **extra)
            delta = box_head(out)
            hidden.append(out)
            deltas.append(delta)
            references.append(predict_from)
            if out_o2m is not None:
                hidden_o2m.append(out_o2m)
            if self.refine:
                refined = apply_box_delta(delta, reference)
                reference = refined.detach()
                predict_from = refined if self.look_forward_twice else reference
        return DecoderOutput(
            hidden=torch.stack(hidden),
            hidden_o2m=_tapped(self.layers, hidden_o2m, defer),
            box_deltas=torch.stack(deltas),
            references=references,
        )


def _tapped(layers: nn.ModuleList, tapped: list[Tensor], deferred: bool) -> Tensor | None:
    """(L, B, Q, D) one-to-many features from the layers' taps (their auxiliary FFNs applied
    here, batched, when the layers deferred them), or None without taps."""
    if not tapped:
        return None
    stacked = torch.stack(tapped)
    if deferred:
        return aux_ffn_all_layers(list(layers), stacked)
    return stacked
