"""H-DETR hybrid matching: one-to-one (Hungarian) matching of the `hybrid` stream against
the targets repeated k times, on every decoder layer, so each object gets k queries.

H-DETR computes the branch's loss normalizer from the repeated targets, max(k * N, 1); with
`official_normalization` the tasks carry `normalizer_scale = k`, clamped after scaling. Its encoder proposal
loss is not repeated for the branch (only the primary criterion call sees the proposals).
"""

from __future__ import annotations

from msdetr.modeling.hybrid_queries import HYBRID
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assigner, SupervisionTask, Targets
from msdetr.supervision.one_to_one import OneToOneSupervision, require_stream


def repeat_targets(targets: Targets, k: int) -> Targets:
    """Each image's boxes (n, 4) and labels (n,) repeated k times -> (k * n, 4), (k * n,) (H-DETR's order)."""
    return [{"boxes": t["boxes"].repeat(k, 1), "labels": t["labels"].repeat(k)} for t in targets]


class HybridSupervision:
    """Tasks `hybrid.layer<i>`: Hungarian assignment to the k-times repeated targets."""

    def __init__(self, assigner: Assigner, k: int, official_normalization: bool = True, stream: str = HYBRID):
        self.k = k
        self.official_normalization = official_normalization
        self.stream = stream
        self.one_to_one = OneToOneSupervision(assigner, stream)

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        require_stream(output, self.stream, "hybrid")
        tasks = self.one_to_one.plan(output, repeat_targets(targets, self.k))
        if self.official_normalization:
            for task in tasks:
                task.normalizer_scale = float(self.k)
                task.clamp_after_scale = True
        return tasks
