"""DAC-DETR supervision of the divide-and-conquer branch (the detector's `dac` stream).

The branch runs the decoder's layers again on the primary queries without
self-attention (the DAC unit's decoder branch, `msdetr.methods.dac`); its every layer is supervised one-to-many
with the top-K assigner (the released DAC-DETR code uses the same assigner as
MS-DETR's official one: k 6, threshold 0.4, score 0.3 class + 0.7 IoU, positives
capped at 75 an image). As released:

- the score takes the branch's class probabilities but the one-to-one stream's
  boxes of the same layer (`match_on_primary_boxes`; false: the branch's own boxes);
- the layers are assigned final layer first, then 0, 1, ... (the random draws of the
  positive cap follow that order);
- pairs are listed by target, best matching score first (the released order): equal
  IoU-aware qualities rank in that order, and a query named twice for one class takes
  the target listed last;
- each task carries prime-sample weights exp(-rank / 1.5) and a normalizer of 3x the
  number of targets (its "balance" targets), clamped at 1 after scaling: max(3N, 1), as
  released; the released classification loss of the branch is the IoU-aware one
  (`classification_loss.dac: iou_aware`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from msdetr.methods.contracts import DAC, ONE_TO_ONE
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assignment, SupervisionTask, Targets
from msdetr.supervision.layers import require_stream, stream_tasks
from msdetr.supervision.topk import TopKAssigner


@dataclass
class DacSupervision:
    """Top-K one-to-many supervision of every layer of the `dac` stream.

    top_k: the assigner. match_on_primary_boxes: see the module docstring. tau: prime-sample
    weighting (None: off). normalizer_scale: the branch's terms are divided by this times N.
    """

    top_k: TopKAssigner
    match_on_primary_boxes: bool = True
    tau: float | None = 1.5
    normalizer_scale: float = 3.0
    stream: str = DAC

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        require_stream(output, self.stream, "dac")
        branch = output.streams[self.stream]
        boxes = branch.boxes
        if self.match_on_primary_boxes:
            require_stream(output, ONE_TO_ONE, "dac")
            boxes = output.streams[ONE_TO_ONE].boxes
        # all layers at once, random draws in the released order (the assigner's default)
        assignments = self.top_k.assign_layers(branch.logits.detach(), boxes.detach(), targets)
        assignments = [by_target_best_first(assignment) for assignment in assignments]
        return stream_tasks(output, self.stream, targets, assignments, rank_tau=self.tau,
                            normalizer_scale=self.normalizer_scale, clamp_after_scale=True)


def by_target_best_first(assignment: Assignment) -> Assignment:
    """Reorder each image's top-K pairs (listed by increasing matching score) by target index,
    best score first within a target."""
    reordered = []
    for pred_idx, target_idx in assignment:
        pred_idx, target_idx = pred_idx.flip(0), target_idx.flip(0)
        order = torch.argsort(target_idx, stable=True)
        reordered.append((pred_idx[order], target_idx[order]))
    return reordered

