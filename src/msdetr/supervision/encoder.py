"""Two-stage encoder proposals: class-agnostic one-to-one assignment, matched on the anchors.

As in the official code, every target becomes class 0, the Hungarian matcher uses
no class cost, and the match is computed on the fixed anchors while the losses
are computed on the refined proposal boxes.
"""

from __future__ import annotations

from msdetr.modeling.outputs import DetectorOutput, EncoderPredictions
from msdetr.supervision.base import ENCODER, Assignment, LayerPredictions, SupervisionTask, Targets
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.targets import class_agnostic


class EncoderAssigner:
    """Hungarian assignment of class-agnostic targets to the encoder proposals.

    cost_bbox, cost_giou: matching cost weights (the official encoder matcher
    reuses the decoder's, 5 / 2). match_on_anchors: match the (B, S, 4) anchors
    (official) instead of the refined proposal boxes. cost_class: class cost weight
    (0 for MS-DETR; Deformable DETR's and H-DETR's code use the decoder's, 2). iou_epsilon: of the
    GIoU cost (`HungarianAssigner`).
    """

    def __init__(self, cost_bbox: float = 5.0, cost_giou: float = 2.0, match_on_anchors: bool = True,
                 cost_class: float = 0.0, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 iou_epsilon: float = 0.0) -> None:
        # cost_class > 0: the Deformable-DETR / H-DETR encoder matcher (focal class cost on class 0)
        self.hungarian = HungarianAssigner(cost_class=cost_class, cost_bbox=cost_bbox, cost_giou=cost_giou,
                                           focal_alpha=focal_alpha, focal_gamma=focal_gamma,
                                           iou_epsilon=iou_epsilon)
        self.match_on_anchors = match_on_anchors

    def __call__(self, encoder: EncoderPredictions, targets: Targets, agnostic: bool = False) -> Assignment:
        """agnostic: the targets are already class-agnostic (saves relabeling them)."""
        boxes = encoder.anchors if self.match_on_anchors else encoder.boxes
        targets = targets if agnostic else class_agnostic(targets)
        return self.hungarian(LayerPredictions(logits=encoder.logits, boxes=boxes), targets)


class EncoderSupervision:
    """Supervises the two-stage encoder proposals when the detector produced them.

    stream: `encoder` (the primary proposals, `DetectorOutput.encoder`) or the name of a further
    proposal set of a decoder branch (`DetectorOutput.encoders[stream]`)."""

    def __init__(self, assigner: EncoderAssigner, stream: str = ENCODER) -> None:
        self.assigner = assigner
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        encoder = output.encoder if self.stream == ENCODER else output.encoders.get(self.stream)
        if encoder is None:
            return []
        agnostic = class_agnostic(targets)
        return [
            SupervisionTask(
                stream=self.stream,
                layer=None,
                predictions=LayerPredictions(logits=encoder.logits, boxes=encoder.boxes),
                targets=agnostic,
                assignment=self.assigner(encoder, agnostic, agnostic=True),
            )
        ]
