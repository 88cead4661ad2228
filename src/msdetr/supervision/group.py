"""Group DETR: one-to-one (Hungarian) matching of each extra query group separately, on every
decoder layer, next to the primary strategy's tasks.

The `group` stream holds G - 1 groups of q queries each (its `GroupMeta` in `query_meta["group"]`); all
groups of all images are matched in one batched call (groups become extra batch rows)
and each image's pairs are listed group after group, query indices offset by g * q.
Group DETR divides the loss of all G groups (the primary one included) by G * N: with
`normalize_over_groups`, the group tasks carry `normalizer_scale = G`, and the Group DETR unit
(`msdetr.methods.group`) rescales the primary's `one_to_one` tasks the same way
(`compose.Rescaled`; the MS-DETR one-to-many and encoder tasks keep N).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from msdetr.methods.contracts import GROUP, GroupMeta
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import (
    Assigner,
    Assignment,
    LayerPredictions,
    SupervisionTask,
    Targets,
)
from msdetr.supervision.layers import require_stream, stream_tasks


@dataclass
class GroupSupervision:
    """Tasks `group.layer<i>` (per-group Hungarian), divided by G * N with `normalize_over_groups`
    (`group_normalizer` gives the primary's one-to-one tasks the same scale)."""

    assigner: Assigner
    normalize_over_groups: bool = True
    stream: str = GROUP

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        require_stream(output, self.stream, "group")
        meta = GroupMeta.of(output.query_meta[self.stream])
        assignments = self._assign(output, targets, meta.num_groups, meta.group_size)
        options = {"normalizer_scale": group_normalizer(output, self.stream)} if self.normalize_over_groups else {}
        return stream_tasks(output, self.stream, targets, assignments, **options)

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


def group_normalizer(output: DetectorOutput, stream: str = GROUP) -> float:
    """G, the number of groups the primary's and the extra groups' losses are averaged over."""
    return float(GroupMeta.of(output.query_meta[stream]).num_groups + 1)
