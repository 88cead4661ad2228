"""Runs several supervision strategies on one detector output (e.g. mixed + encoder; later
mixed + denoising or mixed + hybrid), concatenating their tasks in order."""

from __future__ import annotations

from collections.abc import Sequence

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
