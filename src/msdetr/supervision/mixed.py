"""MS-DETR mixed supervision: one-to-one on the `one_to_one` stream, top-K one-to-many on the
`one_to_many` stream of every decoder layer (both streams come from the same primary decoder)."""

from __future__ import annotations

from msdetr.modeling.outputs import ONE_TO_MANY, DetectorOutput
from msdetr.supervision.base import Assigner, SupervisionTask, Targets
from msdetr.supervision.merge import merge_one_to_one
from msdetr.supervision.one_to_one import OneToOneSupervision, layer_predictions, require_stream


class MixedSupervision:
    """One-to-one supervision plus one-to-many supervision of the `one_to_many` stream.

    one_to_one: the one-to-one strategy (its tasks come first).
    one_to_many: the top-K assigner.
    merge_one_to_one: add each layer's one-to-one match to that layer's one-to-many
        set (see `merge`).

    The one-to-many layers are assigned in the official order (final layer, then
    layers 0, 1, ...), so a random top-K subsampling draws the same numbers as the
    official code; an assigner with `assign_layers` does all layers in one pass.
    """

    def __init__(
        self,
        one_to_one: OneToOneSupervision,
        one_to_many: Assigner,
        merge_one_to_one: bool = False,
        stream: str = ONE_TO_MANY,
    ) -> None:
        self.one_to_one = one_to_one
        self.one_to_many = one_to_many
        self.merge_one_to_one = merge_one_to_one
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        num_layers = require_stream(output, self.stream, "mixed")
        one_to_one_tasks = self.one_to_one.plan(output, targets)
        if self.merge_one_to_one and len(one_to_one_tasks) != num_layers:
            raise ValueError(
                f"merge_one_to_one needs as many one-to-one layers as one-to-many layers "
                f"({len(one_to_one_tasks)} vs {num_layers})"
            )
        stream = output.streams[self.stream]
        order = [num_layers - 1, *range(num_layers - 1)]  # the official criterion's order
        assign_layers = getattr(self.one_to_many, "assign_layers", None)
        if assign_layers is not None:  # all layers in one pass (same result, less overhead)
            assignments = dict(enumerate(assign_layers(stream.logits, stream.boxes, targets, order)))
        else:
            assignments = {
                layer: self.one_to_many(layer_predictions(output, self.stream, layer), targets)
                for layer in order
            }
        if self.merge_one_to_one:
            num_queries = stream.logits.shape[2]
            for layer, assignment in assignments.items():
                one_to_one = one_to_one_tasks[layer].assignment
                assignments[layer] = merge_one_to_one(assignment, one_to_one, num_queries)
        one_to_many_tasks = [
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
        return one_to_one_tasks + one_to_many_tasks
