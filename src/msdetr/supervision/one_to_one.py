"""Plain DETR supervision: Hungarian one-to-one assignment on every decoder layer of a stream."""

from __future__ import annotations

from msdetr.methods.contracts import ONE_TO_ONE
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assigner, SupervisionTask, Targets
from msdetr.supervision.layers import assign_stream, layer_predictions, require_stream, stream_tasks

__all__ = ["OneToOneSupervision", "layer_predictions", "require_stream"]


class OneToOneSupervision:
    """One-to-one supervision of all decoder layers of `stream` (DETR's auxiliary losses included).

    The final layer also logs the class error, as the official code does.
    """

    def __init__(self, assigner: Assigner, stream: str = ONE_TO_ONE) -> None:
        self.assigner = assigner
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        require_stream(output, self.stream, "one_to_one")
        masks = output.streams[self.stream].masks
        # mask head and an assigner with a mask cost: the masks go to the matching too
        with_masks = masks is not None and getattr(self.assigner, "mask_cost", None) is not None
        assignments = assign_stream(self.assigner, output, self.stream, targets,
                                    **({"masks": masks} if with_masks else {}))
        return stream_tasks(output, self.stream, targets, assignments)
