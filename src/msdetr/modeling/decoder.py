"""Deformable decoder with iterative box refinement and look-forward-twice."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from msdetr.modeling.decoder_layers import aux_ffn_all_layers


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

    def forward(self, tgt: Tensor, query_pos: Tensor, reference_points: Tensor, memory: Tensor,
                spatial_shapes: list[tuple[int, int]], valid_ratios: Tensor, padding_mask: Tensor,
                box_heads: list[nn.Module], tap: bool = True, attn_mask: Tensor | None = None,
                tap_queries: int | None = None, query_position: nn.Module | None = None,
                self_attention: list[bool] | None = None) -> DecoderOutput:
        """
        tgt, query_pos:   (B, Q, D) content and positional queries
        reference_points: (B, Q, 4) normalized boxes or (B, Q, 2) points
        memory:           (B, S, D); valid_ratios: (B, L, 2); padding_mask: (B, S)
        box_heads:        one box head per layer (passed in, owned by the detector)
        tap:              ask mixed-supervision layers for their one-to-many features
        attn_mask:        optional self-attention mask (extra queries of other strategies)
        tap_queries:      tap only the first this many queries (the primary ones); None: all
        query_position:   computes each layer's positional query from its reference boxes
                          (anchor queries: `(anchors (B, Q, 4), content (B, Q, D), layer) -> (B, Q, D)`);
                          None: every layer uses `query_pos`
        self_attention:   per layer, run its self-attention block (default: all); DAC-DETR's
                          divide-and-conquer pass turns it off
        """
        # MS-DETR auxiliary FFNs: applied after the loop, to all layers at once (they feed nothing
        # back into the decoder)
        defer = tap and all(getattr(layer, "aux_ffn", False) for layer in self.layers)
        extra = {"defer_aux_ffn": True} if defer else {}
        out = tgt
        reference = reference_points
        predict_from = reference_points
        hidden, hidden_o2m, deltas, references = [], [], [], []
        if self_attention is None:
            self_attention = [True] * len(self.layers)
        for index, (layer, box_head, with_self) in enumerate(zip(self.layers, box_heads, self_attention)):
            if reference.shape[-1] == 4:
                ref_input = reference[:, :, None] * torch.cat([valid_ratios, valid_ratios], -1)[:, None]
            else:
                ref_input = reference[:, :, None] * valid_ratios[:, None]
            if query_position is not None:
                query_pos = query_position(ref_input[:, :, 0], out, index)
            out, out_o2m = layer(out, query_pos, ref_input, memory, spatial_shapes, padding_mask,
                                 attn_mask=attn_mask, tap=tap, tap_queries=tap_queries, self_attention=with_self,
                                 **extra)
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
