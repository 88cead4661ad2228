"""Class and box prediction heads, one per decoder layer (plus the encoder's)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msdetr.modeling.decoder import DecoderOutput, apply_box_delta, inverse_sigmoid
from msdetr.modeling.outputs import StreamPredictions
from msdetr.modeling.stacked import stacked_linear, stacked_mlp


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between them. (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [out_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


def make_class_head(hidden_dim: int, num_classes: int, prior_prob: float = 0.01) -> nn.Linear:
    """Linear classifier with the focal-loss prior on its bias."""
    head = nn.Linear(hidden_dim, num_classes)
    nn.init.constant_(head.bias, -math.log((1 - prior_prob) / prior_prob))
    return head


def make_box_head(hidden_dim: int, size_bias: float = 0.0) -> MLP:
    """3-layer MLP predicting (cx, cy, w, h) deltas in logit space; starts at zero delta."""
    head = MLP(hidden_dim, hidden_dim, 4, 3)
    nn.init.zeros_(head.layers[-1].weight)
    nn.init.zeros_(head.layers[-1].bias)
    with torch.no_grad():
        head.layers[-1].bias[2:] = size_bias
    return head


def _replicate(module: nn.Module, n: int, distinct: bool) -> nn.ModuleList:
    """n independent copies, or the same module n times (shared weights)."""
    return nn.ModuleList(copy.deepcopy(module) if distinct else module for _ in range(n))


class PredictionHeads(nn.Module):
    """All heads of the detector, passed explicitly to the decoder and query selector.

    class_heads, box_heads: one per decoder layer (distinct with box refinement,
        otherwise one shared head, as Deformable DETR).
    encoder_class_head, encoder_box_head: two-stage proposal heads (or None).
    o2m_class_heads, o2m_box_heads: heads of the one-to-many stream when it does
        not share them with the one-to-one stream (paper Table 6), else None.
    """

    def __init__(self, hidden_dim: int, num_classes: int, num_layers: int, refine: bool, two_stage: bool,
                 one_to_many: bool, share_class: bool = True, share_box: bool = True):
        super().__init__()
        class_head = make_class_head(hidden_dim, num_classes)
        box_head = make_box_head(hidden_dim, size_bias=0.0 if two_stage else -2.0)
        self.class_heads = _replicate(class_head, num_layers, refine)
        self.box_heads = _replicate(box_head, num_layers, refine)
        if not two_stage and refine:
            # later layers refine an already sized box: they start from a zero size delta
            for head in list(self.box_heads)[1:]:
                nn.init.zeros_(head.layers[-1].bias)
        self.encoder_class_head = (copy.deepcopy(class_head) if refine else class_head) if two_stage else None
        self.encoder_box_head = (copy.deepcopy(box_head) if refine else box_head) if two_stage else None
        self.o2m_class_heads = (
            _replicate(class_head, num_layers, True) if one_to_many and not share_class else None
        )
        self.o2m_box_heads = _replicate(box_head, num_layers, True) if one_to_many and not share_box else None

    def predict(self, decoder_out: DecoderOutput) -> StreamPredictions:
        """One-to-one stream: logits (L, B, Q, C), boxes (L, B, Q, 4)."""
        logits = stacked_linear(list(self.class_heads), decoder_out.hidden)
        return StreamPredictions(logits=logits, boxes=_Refiner(decoder_out.references)(decoder_out.box_deltas))

    def predict_one_to_many(self, decoder_out: DecoderOutput) -> StreamPredictions:
        """One-to-many stream from the tapped features, same references as one-to-one."""
        return self.predict_streams(decoder_out)[1]

    def predict_streams(self, decoder_out: DecoderOutput) -> tuple[StreamPredictions, StreamPredictions | None]:
        """Both streams, all decoder layers at once (`stacked`): the one-to-one stream and, when
        the decoder tapped features, the one-to-many stream (else None).

        With shared class heads (the default) both streams' features go through the class heads
        together; the box references (and their inverse sigmoid) are shared by both streams.
        """
        hidden, tapped = decoder_out.hidden, decoder_out.hidden_o2m
        refine = _Refiner(decoder_out.references)
        o2o_boxes = refine(decoder_out.box_deltas)
        if tapped is None:
            logits = stacked_linear(list(self.class_heads), hidden)
            return StreamPredictions(logits=logits, boxes=o2o_boxes), None
        if self.o2m_class_heads is None:  # shared: both streams in one call, split on the query dim
            num_queries = hidden.shape[2]
            both = stacked_linear(list(self.class_heads), torch.cat([hidden, tapped], dim=2))
            logits, o2m_logits = both[:, :, :num_queries], both[:, :, num_queries:]
        else:
            logits = stacked_linear(list(self.class_heads), hidden)
            o2m_logits = stacked_linear(list(self.o2m_class_heads), tapped)
        box_heads = self.o2m_box_heads if self.o2m_box_heads is not None else self.box_heads
        if tapped.shape[2] != hidden.shape[2]:  # only the primary queries were tapped (extra query groups)
            refine = _Refiner([r[:, : tapped.shape[2]] for r in decoder_out.references])
        o2m_boxes = refine(stacked_mlp(list(box_heads), tapped))
        return (StreamPredictions(logits=logits, boxes=o2o_boxes),
                StreamPredictions(logits=o2m_logits, boxes=o2m_boxes))


class _Refiner:
    """`apply_box_delta` for all layers at once: (L, B, Q, 4) deltas -> boxes, against the
    decoder's per-layer references, their inverse sigmoid computed once (shared by both
    streams). References of different sizes (a single-stage first layer's points) go layer
    by layer."""

    def __init__(self, references: list[Tensor]):
        self.references = references
        self.size = references[0].shape[-1]
        self.logit = None
        if all(r.shape == references[0].shape for r in references):
            self.logit = inverse_sigmoid(torch.stack(references))

    def __call__(self, delta: Tensor) -> Tensor:
        if self.logit is None:
            return torch.stack([apply_box_delta(d, r) for d, r in zip(delta, self.references)])
        if self.size == 4:
            return (delta + self.logit).sigmoid()
        return torch.cat([delta[..., :2] + self.logit, delta[..., 2:]], -1).sigmoid()
