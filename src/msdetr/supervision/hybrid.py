"""H-DETR hybrid matching: one-to-one (Hungarian) matching of the `hybrid` stream against
the targets repeated k times, on every decoder layer, so each object gets k queries.

H-DETR computes the branch's loss normalizer from the repeated targets, max(k * N, 1); with
`official_normalization` the tasks carry `normalizer_scale = k`, clamped after scaling. Its encoder proposal
loss is not repeated for the branch (only the primary criterion call sees the proposals).
"""

from __future__ import annotations

from dataclasses import dataclass

from msdetr.methods.contracts import HYBRID
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assigner, SupervisionTask, Targets
from msdetr.supervision.layers import assign_stream, require_stream, stream_tasks


def repeat_targets(targets: Targets, k: int) -> Targets:
    """Each image's boxes (n, 4) and labels (n,) repeated k times -> (k * n, 4), (k * n,) (H-DETR's order)."""
    return [{"boxes": t["boxes"].repeat(k, 1), "labels": t["labels"].repeat(k)} for t in targets]


@dataclass
class HybridSupervision:
    """Tasks `hybrid.layer<i>`: Hungarian assignment to the k-times repeated targets."""

    assigner: Assigner
    k: int
    official_normalization: bool = True
    stream: str = HYBRID

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        require_stream(output, self.stream, "hybrid")
        repeated = repeat_targets(targets, self.k)
        assignments = assign_stream(self.assigner, output, self.stream, repeated)
        options = {"normalizer_scale": float(self.k), "clamp_after_scale": True} if self.official_normalization else {}
        return stream_tasks(output, self.stream, repeated, assignments, **options)
