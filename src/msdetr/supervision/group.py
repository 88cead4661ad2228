"""Group DETR: one-to-one (Hungarian) matching of each extra query group separately, on every
decoder layer, next to the primary strategy's tasks.

The `group` stream holds G - 1 groups of q queries each (its `GroupMeta` in `query_meta["group"]`); all
groups of all images are matched in one batched call (groups become extra batch rows)
and each image's pairs are listed group after group, query indices offset by g * q.
Group DETR divides the loss of all G groups (the primary one included) by G * N: with
`normalize_over_groups`, the group tasks and the primary `one_to_one` tasks carry
`normalizer_scale = G` (the MS-DETR one-to-many and encoder tasks keep N).
"""

from __future__ import annotations

import torch

from msdetr.methods.contracts import GROUP, ONE_TO_ONE, GroupMeta
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import (
    Assigner,
    Assignment,
    LayerPredictions,
    SupervisionStrategy,
    SupervisionTask,
    Targets,
)
from msdetr.supervision.layers import require_stream, stream_tasks


class GroupSupervision:
    """The primary strategy's tasks, then tasks `group.layer<i>` (per-group Hungarian)."""

    def __init__(self, primary: SupervisionStrategy, assigner: Assigner, normalize_over_groups: bool = True,
                 stream: str = GROUP):
        self.primary = primary
        self.assigner = assigner
        self.normalize_over_groups = normalize_over_groups
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        require_stream(output, self.stream, "group")
        meta = GroupMeta.of(output.query_meta[self.stream])
        assignments = self._assign(output, targets, meta.num_groups, meta.group_size)
        primary_tasks = self.primary.plan(output, targets)
        if not self.normalize_over_groups:
            return primary_tasks + stream_tasks(output, self.stream, targets, assignments)
        scale = float(meta.num_groups + 1)
        for task in primary_tasks:  # the primary group is one of the G averaged groups
            if task.stream == ONE_TO_ONE:
                task.normalizer_scale = scale
        return primary_tasks + stream_tasks(output, self.stream, targets, assignments, normalizer_scale=scale)

    def _assign(self, output: DetectorOutput, targets: Targets, groups: int, size: int) -> list[Assignment]:
        """Per layer, per image: (pred_idx, target_idx) of all groups, group by group."""
        stream = output.streams[self.stream]
        layers, batch = stream.logits.shape[:2]
        # (L, B, G*q, ...) -> (L, G*B, q, ...): group g of image b is batch row g * B + b
        logits = stream.logits.unflatten(2, (groups, size)).transpose(1, 2).flatten(1, 2)
        boxes = stream.boxes.unflatten(2, (groups, size)).transpose(1, 2).flatten(1, 2)
        rows = targets * groups
        assign_layers = getattr(self.assigner, "assign_layers", None)
        if assign_layers is not None:
            per_layer = assign_layers(logits, boxes, rows)
        else:
            per_layer = [self.assigner(LayerPredictions(logits[i], boxes[i]), rows) for i in range(layers)]
        result = []
        for assignment in per_layer:
            image_pairs = []
            for b in range(batch):
                parts = [assignment[g * batch + b] for g in range(groups)]
                image_pairs.append((
                    torch.cat([pred + g * size for g, (pred, _) in enumerate(parts)]),
                    torch.cat([tgt for _, tgt in parts]),
                ))
            result.append(image_pairs)
        return result
