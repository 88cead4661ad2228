"""Contracts shared by assigners and supervision strategies.

An **assigner** maps one layer's predictions to the targets:
``(predictions, targets) -> assignment``, where the assignment holds, per image,
``(pred_idx, target_idx)``: two int64 tensors of equal length P. Entry ``p``
says that query ``pred_idx[p]`` is supervised by target ``target_idx[p]`` of
that image. A one-to-one assigner never repeats a query or a target; a
one-to-many assigner may give a target several queries and (top-K) may even give
a query to several targets: then every pair counts for the box losses and the
*last* pair of that query decides its class target (assigners order pairs by
increasing matching score, so the best-scoring target wins, as in the official
code).

An assigner may also offer ``assign_layers(logits, boxes, targets)`` taking all
decoder layers of a stream at once ((L, B, Q, C) logits, (L, B, Q, 4) boxes) and
returning one assignment per layer, identical to layer-by-layer calls; strategies
use it when present, which saves most of the per-call overhead. An assigner with a
``mask_cost`` (Hungarian, mask head) also takes ``masks=`` (`MaskPredictions` of the layers).

A **supervision strategy** turns a `DetectorOutput` and the targets into a list
of `SupervisionTask`: which predictions (stream, layer) are supervised, by which
targets, with which assignment. The criterion only computes losses of tasks (all of them in one
batched path, `msdetr.losses.batched`).
Each method's strategy is one file producing tasks for its own streams (one_to_one,
mixed, align, hybrid, group, denoising, dac, encoder), all through
`layers.stream_tasks`; `ComposedSupervision` runs several. A method that needs extra
decoder queries gives the detector a provider (`msdetr.methods.contracts`), whose typed
meta its strategy reads from `DetectorOutput.query_meta`; the detector never matches anything.

Targets everywhere: a list (one per image) of dicts with ``boxes`` (n, 4) float
normalized (cx, cy, w, h) and ``labels`` (n,) int64 in [0, num_classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from msdetr.methods.contracts import ENCODER
from msdetr.modeling.outputs import DetectorOutput, MaskPredictions

__all__ = ["ENCODER", "Assigner", "Assignment", "LayerPredictions", "StreamLayer", "SupervisionStrategy",
           "SupervisionTask", "Targets"]

# One (pred_idx, target_idx) pair of int64 tensors per image.
Assignment = list[tuple[Tensor, Tensor]]
Targets = list[dict[str, Tensor]]



@dataclass
class LayerPredictions:
    """Predictions of one decoder layer (or of the encoder proposals).

    logits: (B, Q, C) class logits (sigmoid classifier).
    boxes:  (B, Q, 4) normalized (cx, cy, w, h).
    masks:  this layer's masks (query_embed (1, B, Q, M)) when the detector has a mask head, else None.
    """

    logits: Tensor
    boxes: Tensor
    masks: MaskPredictions | None = None


class StreamLayer(LayerPredictions):
    """`LayerPredictions` of layer `layer` of a stacked stream, whose (B, Q, ...) views are
    made on first access only (a batched consumer, like the criterion, uses the stream itself).

    stream: the stream's predictions, logits (L, B, Q, C) and boxes (L, B, Q, 4).
    """

    def __init__(self, stream, layer: int) -> None:  # stream: modeling.outputs.StreamPredictions
        self.stream = stream
        self.layer = layer
        self._views: dict[bool, tuple[Tensor, Tensor]] = {}

    def _get(self) -> tuple[Tensor, Tensor]:
        # one cache per grad mode: views made under no_grad (by an assigner) carry no gradient
        grad = torch.is_grad_enabled()
        views = self._views.get(grad)
        if views is None:
            views = self._views[grad] = (self.stream.logits[self.layer], self.stream.boxes[self.layer])
        return views

    @property
    def logits(self) -> Tensor:
        return self._get()[0]

    @property
    def boxes(self) -> Tensor:
        return self._get()[1]

    @property
    def masks(self) -> MaskPredictions | None:
        masks = getattr(self.stream, "masks", None)
        return masks.layer(self.layer) if masks is not None else None


class Assigner(Protocol):
    """``(predictions, targets) -> per image (pred_idx, target_idx)``, computed without gradient."""

    def __call__(self, predictions: LayerPredictions, targets: Targets) -> Assignment: ...


@dataclass
class SupervisionTask:
    """One supervised set of predictions, ready for the criterion.

    stream: the loss-weight group ("one_to_one", "one_to_many", "encoder", ...).
    layer: decoder layer index (0-based), or None for the encoder proposals.
    predictions: the (B, Q, C) logits and (B, Q, 4) boxes (and masks, with a mask head) that receive
        the losses.
    targets: the targets of this task (the encoder uses class-agnostic targets).
    assignment: per image (pred_idx, target_idx), see the module docstring.
    log_class_error: also log the class error (the official code does so on the
        final layer of each decoder stream only).
    rank_tau: prime-sample weighting (Align-DETR, DAC-DETR): each pair's box terms (L1, GIoU) and
        its IoU-aware classification target are scaled by exp(-rank / rank_tau), rank = the pair's
        place among its target's pairs by IoU-aware quality (0 = best; see `msdetr.losses.iou_aware`;
        a focal classification term is not weighted). None: every pair weighs 1.
    normalizer_scale: the task's losses are divided by N * normalizer_scale (N: the
        batch's target count); H-DETR's one-to-many branch uses k (its targets are
        repeated k times), Group DETR the number of groups G, DN-DETR / DINO denoising the
        number of denoising groups, DAC-DETR's branch 3.
    clamp_after_scale: divide by max(N * normalizer_scale, 1) instead of max(N, 1) *
        normalizer_scale (the two differ only for a batch with fewer than one target per rank):
        DAC-DETR's branch and H-DETR's one-to-many branch count their scaled targets, then
        clamp; DN-DETR / DINO denoising clamp N first (`losses.normalization.task_normalizer`).
    rank_weights_l1: the prime-sample weights (`rank_tau`) also scale the L1 term (Align-DETR,
        DAC-DETR); False: only the classification target and the GIoU term (Mr. DETR's Align release).
    """

    stream: str
    layer: int | None
    predictions: LayerPredictions
    targets: Targets
    assignment: Assignment
    log_class_error: bool = False
    rank_tau: float | None = None
    normalizer_scale: float = 1.0
    clamp_after_scale: bool = False
    rank_weights_l1: bool = True

    @property
    def name(self) -> str:
        """`<stream>.layer<i>` or `<stream>` (encoder); prefix of the loss term names."""
        return self.stream if self.layer is None else f"{self.stream}.layer{self.layer}"


class SupervisionStrategy(Protocol):
    """Turns the detector's output into supervision tasks (matching included)."""

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]: ...
