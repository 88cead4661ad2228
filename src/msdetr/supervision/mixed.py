"""MS-DETR mixed supervision: one-to-one on the `one_to_one` stream, top-K one-to-many on the
`one_to_many` stream of every decoder layer (both streams come from the same primary decoder)."""

from __future__ import annotations

from dataclasses import dataclass

from msdetr.methods.contracts import ONE_TO_MANY
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assigner, SupervisionTask, Targets
from msdetr.supervision.layers import assign_stream, require_stream, stream_tasks
from msdetr.supervision.merge import merge_one_to_one
from msdetr.supervision.one_to_one import OneToOneSupervision


@dataclass
class MixedSupervision:
    """One-to-one supervision plus one-to-many supervision of the `one_to_many` stream.

    one_to_one: the one-to-one strategy (its tasks come first).
    one_to_many: the top-K assigner.
    merge_one_to_one: add each layer's one-to-one match to that layer's one-to-many
        set (see `merge`).

    The top-K assigner's `assign_layers` assigns all layers in one pass, drawing its random
    numbers in the official order (final layer, then layers 0, 1, ...), as the official code.
    """

    one_to_one: OneToOneSupervision
    one_to_many: Assigner
    merge_one_to_one: bool = False
    stream: str = ONE_TO_MANY

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        num_layers = require_stream(output, self.stream, "mixed")
        one_to_one_tasks = self.one_to_one.plan(output, targets)
        if self.merge_one_to_one and len(one_to_one_tasks) != num_layers:
            raise ValueError(
                f"merge_one_to_one needs as many one-to-one layers as one-to-many layers "
                f"({len(one_to_one_tasks)} vs {num_layers})"
            )
        # top-K draws its random numbers in the official layer order (its `assign_layers` default)
        assignments = assign_stream(self.one_to_many, output, self.stream, targets, final_first=True)
        if self.merge_one_to_one:
            num_queries = output.streams[self.stream].logits.shape[2]
            assignments = [merge_one_to_one(assignment, task.assignment, num_queries)
                           for assignment, task in zip(assignments, one_to_one_tasks)]
        return one_to_one_tasks + stream_tasks(output, self.stream, targets, assignments)
