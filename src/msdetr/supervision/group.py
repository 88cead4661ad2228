"""Group DETR: one-to-one (Hungarian) matching of each extra query group separately, on every
decoder layer, next to the primary strategy's tasks.

The `group` stream holds G - 1 groups of q queries each (`query_meta["group"]`); all
groups of all images are matched in one batched call (groups become extra batch rows)
and each image's pairs are listed group after group, query indices offset by g * q.
Group DETR divides the loss of all G groups (the primary one included) by G * N: with
`normalize_over_groups`, the group tasks and the primary `one_to_one` tasks carry
`normalizer_scale = G` (the MS-DETR one-to-many and encoder tasks keep N).
"""

from __future__ import annotations

import torch

from msdetr.modeling.group_queries import GROUP
from msdetr.modeling.outputs import ONE_TO_ONE, DetectorOutput
from msdetr.supervision.base import (
    Assigner,
    Assignment,
    LayerPredictions,
    SupervisionStrategy,
    SupervisionTask,
    Targets,
)
from msdetr.supervision.one_to_one import layer_predictions, require_stream


class GroupSupervision:
    """The primary strategy's tasks, then tasks `group.layer<i>` (per-group Hungarian)."""

    def __init__(self, primary: SupervisionStrategy, assigner: Assigner, normalize_over_groups: bool = True,
                 stream: str = GROUP):
        self.primary = primary
        self.assigner = assigner
        self.normalize_over_groups = normalize_over_groups
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        num_layers = require_stream(output, self.stream, "group")
        meta = output.query_meta[self.stream]
        groups, size = meta["num_groups"], meta["group_size"]
        assignments = self._assign(output, targets, groups, size)
        tasks = [
            SupervisionTask(
                stream=self.stream,
                layer=layer,
                predictions=layer_predictions(output, self.stream, layer),
                targets=targets,
                assignment=assignments[layer],
                log_class_error=layer == num_layers - 1,
            )
            for layer in range(num_layers)
        ]
        primary_tasks = self.primary.plan(output, targets)
        if self.normalize_over_groups:
            for task in tasks + [t for t in primary_tasks if t.stream == ONE_TO_ONE]:
                task.normalizer_scale = float(groups + 1)
        return primary_tasks + tasks

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
