"""Combinators of supervision strategies: `ComposedSupervision` runs several on one detector
output (e.g. mixed + hybrid + encoder + denoising), concatenating their tasks in order;
`Rescaled` divides one stream's tasks of a strategy by a factor read from the output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionStrategy, SupervisionTask, Targets


class ComposedSupervision:
    """All tasks of `strategies`, in order. Task names must not collide."""

    def __init__(self, strategies: Sequence[SupervisionStrategy]) -> None:
        self.strategies = list(strategies)

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        tasks = [task for strategy in self.strategies for task in strategy.plan(output, targets)]
        names = [task.name for task in tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"supervision strategies produced the same task twice: {duplicates}")
        return tasks


@dataclass
class Rescaled:
    """The tasks of `strategy`, those of `stream` with `normalizer_scale = scale(output)` (e.g. Group
    DETR averages the primary group's one-to-one losses with its extra groups')."""

    strategy: SupervisionStrategy
    stream: str
    scale: Callable[[DetectorOutput], float]

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        tasks = self.strategy.plan(output, targets)
        factor = self.scale(output)
        for task in tasks:
            if task.stream == self.stream:
                task.normalizer_scale = factor
        return tasks
