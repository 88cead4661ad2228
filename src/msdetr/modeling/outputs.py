"""Typed outputs of the detector.

The detector knows nothing about supervision: it returns named prediction
streams. Every stream holds all decoder layers stacked on dim 0.

Shapes: L = decoder layers, B = batch, Q = queries, C = classes,
S = encoder tokens over all feature levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

ONE_TO_ONE = "one_to_one"
ONE_TO_MANY = "one_to_many"


@dataclass
class StreamPredictions:
    """One stream of per-layer predictions.

    logits: (L, B, Q, C) class logits (sigmoid classifier, no background class).
    boxes:  (L, B, Q, 4) boxes as normalized (cx, cy, w, h) in [0, 1],
            relative to each image's unpadded size.
    """

    logits: Tensor
    boxes: Tensor

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
    query_meta: per extra query group, what its provider recorded for its supervision.
    """

    streams: dict[str, StreamPredictions] = field(default_factory=dict)
    encoder: EncoderPredictions | None = None
    query_meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def logits(self) -> Tensor:
        """(B, Q, C) final-layer logits of the one-to-one stream (the inference output)."""
        return self.streams[ONE_TO_ONE].logits[-1]

    @property
    def boxes(self) -> Tensor:
        """(B, Q, 4) final-layer normalized cxcywh boxes of the one-to-one stream."""
        return self.streams[ONE_TO_ONE].boxes[-1]
