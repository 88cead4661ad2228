"""Align-DETR supervision of a stream: mixed matching with prime-sample weighting.

Every decoder layer but the last is matched many-to-one (each target gets k queries,
`RepeatedHungarianAssigner`, k = 2 in the released configs); the last layer is
matched one-to-one (k = 1), so inference stays NMS-free. Each task carries the
prime-sample weighting `rank_tau` (released tau 1.5): a target's pairs are weighted
exp(-rank / tau) by their IoU-aware quality (`msdetr.losses.iou_aware`). Used with
the `iou_aware` classification loss on the same stream this is the released
Align-DETR criterion; with MS-DETR it replaces the one-to-one strategy of
`MixedSupervision`.
"""

from __future__ import annotations

from msdetr.methods.contracts import ONE_TO_ONE
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionTask, Targets
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.layers import layer_predictions, require_stream, stream_tasks
from msdetr.supervision.repeated_hungarian import RepeatedHungarianAssigner


class AlignSupervision:
    """Many-to-one matching on all layers of `stream` but the last, one-to-one on the last.

    hungarian: the matching cost. k: queries per target on the earlier layers; final_k: on
    the last layer. tau: prime-sample weighting of every task (None: off).
    """

    def __init__(
        self,
        hungarian: HungarianAssigner,
        k: int = 2,
        final_k: int = 1,
        tau: float | None = 1.5,
        stream: str = ONE_TO_ONE,
    ) -> None:
        self.assigner = RepeatedHungarianAssigner(hungarian, k)
        self.final_assigner = RepeatedHungarianAssigner(hungarian, final_k)
        self.tau = tau
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        num_layers = require_stream(output, self.stream, "align (many_to_one)")
        stream = output.streams[self.stream]
        predictions = [layer_predictions(output, self.stream, layer) for layer in range(num_layers)]
        # the earlier layers in one pass (one host transfer), the last one with its own k
        earlier = self.assigner.assign_layers(stream.logits[:-1], stream.boxes[:-1], targets) if num_layers > 1 else []
        assignments = [*earlier, self.final_assigner(predictions[-1], targets)]
        return stream_tasks(output, self.stream, targets, assignments, predictions, rank_tau=self.tau)
