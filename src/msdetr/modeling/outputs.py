"""Typed outputs of the detector.

The detector knows nothing about supervision: it returns named prediction
streams. Every stream holds all decoder layers stacked on dim 0.

Shapes: L = decoder layers, B = batch, Q = queries, C = classes,
S = encoder tokens over all feature levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from msdetr.methods.streams import ONE_TO_MANY, ONE_TO_ONE

__all__ = ["ONE_TO_MANY", "ONE_TO_ONE", "DetectorOutput", "EncoderPredictions", "MaskPredictions",
           "StreamPredictions"]


@dataclass
class MaskPredictions:
    """Instance masks of one stream, kept factored (see `msdetr.modeling.mask_head`).

    query_embed: (L, B, Q, M) per-layer, per-query mask embeddings.
    pixel_embed: (B, M, H_m, W_m) per-pixel embeddings, shared by all layers and streams;
                 the map covers the padded input, pixel (i, j) the input pixels
                 [stride * i, stride * (i + 1)) x [stride * j, stride * (j + 1)).
    stride:      input pixels per map pixel (4 or 8).
    The mask logits of layer l are `query_embed[l] . pixel_embed` (see `logits`); the losses
    and the matcher evaluate them at sampled points only.
    """

    query_embed: Tensor
    pixel_embed: Tensor
    stride: int

    def logits(self, layer: int = -1) -> Tensor:
        """(B, Q, H_m, W_m) mask logits of one layer (dense, at the map's resolution)."""
        return torch.einsum("bqm,bmhw->bqhw", self.query_embed[layer], self.pixel_embed)

    def layer(self, index: int) -> MaskPredictions:
        """Layer `index` alone (query_embed (1, B, Q, M))."""
        index = index % self.query_embed.shape[0]
        return MaskPredictions(self.query_embed[index : index + 1], self.pixel_embed, self.stride)

    def queries(self, part: slice) -> MaskPredictions:
        """The masks of queries `part` (dim 2 of the query embeddings)."""
        return MaskPredictions(self.query_embed[:, :, part], self.pixel_embed, self.stride)


@dataclass
class StreamPredictions:
    """One stream of per-layer predictions.

    logits: (L, B, Q, C) class logits (sigmoid classifier, no background class).
    boxes:  (L, B, Q, 4) boxes as normalized (cx, cy, w, h) in [0, 1],
            relative to each image's unpadded size.
    masks:  instance masks (factored), only from a detector with a mask head; else None.
    """

    logits: Tensor
    boxes: Tensor
    masks: MaskPredictions | None = None

    @property
    def num_layers(self) -> int:
        return self.logits.shape[0]


@dataclass
class EncoderPredictions:
    """Two-stage encoder proposals, one per feature-map location.

    logits:  (B, S, C) class logits of the proposal head.
    boxes:   (B, S, 4) refined proposal boxes, normalized (cx, cy, w, h).
    anchors: (B, S, 4) the fixed anchor boxes, normalized (cx, cy, w, h); padded
             or invalid locations hold 1.0 (sigmoid of +inf), like the official code.
    """

    logits: Tensor
    boxes: Tensor
    anchors: Tensor


@dataclass
class DetectorOutput:
    """Everything the detector predicts for a batch.

    streams: `one_to_one` always; `one_to_many` with mixed supervision (training
             aid only); while training, one stream per extra query group, named after
             it (`hybrid`, `group`, `denoising`; see `modeling.query_groups`).
    encoder: two-stage proposals, or None.
    encoders: further named proposal sets (B, S, ...) of the decoder branches (`modeling.branches.BranchOutput`),
             supervised by their method's strategy.
    query_meta: per extra query group, the typed record its provider made for its strategy
                (`msdetr.methods.contracts`).
    """

    streams: dict[str, StreamPredictions] = field(default_factory=dict)
    encoder: EncoderPredictions | None = None
    query_meta: dict[str, Any] = field(default_factory=dict)
    encoders: dict[str, EncoderPredictions] = field(default_factory=dict)

    @property
    def logits(self) -> Tensor:
        """(B, Q, C) final-layer logits of the one-to-one stream (the inference output)."""
        return self.streams[ONE_TO_ONE].logits[-1]

    @property
    def boxes(self) -> Tensor:
        """(B, Q, 4) final-layer normalized cxcywh boxes of the one-to-one stream."""
        return self.streams[ONE_TO_ONE].boxes[-1]

    @property
    def masks(self) -> MaskPredictions | None:
        """Masks of the one-to-one stream (all layers), or None without a mask head."""
        return self.streams[ONE_TO_ONE].masks
