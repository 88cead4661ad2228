"""Plain DETR supervision: Hungarian one-to-one assignment on every decoder layer of a stream."""

from __future__ import annotations

from msdetr.errors import MsdetrError
from msdetr.modeling.outputs import ONE_TO_ONE, DetectorOutput
from msdetr.supervision.base import Assigner, LayerPredictions, StreamLayer, SupervisionTask, Targets


def layer_predictions(output: DetectorOutput, stream: str, layer: int) -> LayerPredictions:
    """(B, Q, C) logits and (B, Q, 4) boxes (and masks, with a mask head) of one decoder layer of a stream."""
    return StreamLayer(output.streams[stream], layer)  # the views are made when used


def require_stream(output: DetectorOutput, stream: str, strategy: str) -> int:
    """Number of decoder layers of `stream`; a clear error when the detector did not produce it."""
    if stream not in output.streams:
        raise MsdetrError(
            f"supervision: strategy '{strategy}': the detector output has no '{stream}' stream "
            f"(it has {sorted(output.streams)}); enable the matching model option or change "
            "supervision.strategy"
        )
    return output.streams[stream].num_layers


class OneToOneSupervision:
    """One-to-one supervision of all decoder layers of `stream` (DETR's auxiliary losses included).

    The final layer also logs the class error, as the official code does.
    """

    def __init__(self, assigner: Assigner, stream: str = ONE_TO_ONE) -> None:
        self.assigner = assigner
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        num_layers = require_stream(output, self.stream, "one_to_one")
        stream = output.streams[self.stream]
        assign_layers = getattr(self.assigner, "assign_layers", None)
        if assign_layers is not None:  # all layers in one pass (same result, less overhead)
            # mask head and an assigner with a mask cost: the masks go to the matching too
            with_masks = stream.masks is not None and getattr(self.assigner, "mask_cost", None) is not None
            extra = {"masks": stream.masks} if with_masks else {}
            assignments = assign_layers(stream.logits, stream.boxes, targets, **extra)
        else:
            assignments = [
                self.assigner(layer_predictions(output, self.stream, i), targets) for i in range(num_layers)
            ]
        return [
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
