"""The method-unit contract: everything one training method adds, declared in one place.

A `MethodUnit` names its streams (with default loss weights and classification loss), and
may give the detector a query-group provider (extra queries, `contracts.QueryGroup`) or a
decoder branch (a rerun of the decoder, e.g. DAC-DETR without self-attention), and the
criterion a supervision strategy: either one more strategy next to the others (`strategy`)
or a change of the primary one (`primary`: Align replaces it, MS-DETR and Group DETR wrap it).
Every hook returns None when the config leaves the method off. Register a unit with
`msdetr.methods.registry.register`; the builders loop over the registered units and name none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msdetr.methods.streams import StreamSpec

__all__ = ["MethodUnit", "StreamSpec", "SupervisionTools"]

if TYPE_CHECKING:
    import torch
    from torch import nn

    from msdetr.config.model import ModelConfig
    from msdetr.config.overlay import Overlay
    from msdetr.config.problem import Problem
    from msdetr.config.schema import Config
    from msdetr.config.supervision import SupervisionConfig
    from msdetr.supervision.base import SupervisionStrategy
    from msdetr.supervision.encoder import EncoderAssigner
    from msdetr.supervision.hungarian import HungarianAssigner
    from msdetr.supervision.topk import TopKAssigner


@dataclass
class SupervisionTools:
    """What the criterion builder hands every unit's strategy hook.

    config: the supervision config; num_classes; generator: random source (top-K subsampling,
    mask points); with_masks: the model has a mask head; hungarian: the shared one-to-one assigner.
    """

    config: SupervisionConfig
    num_classes: int
    generator: torch.Generator | None
    with_masks: bool
    hungarian: HungarianAssigner

    def encoder_assigner(self) -> EncoderAssigner:
        """The encoder-proposal matcher of the config (costs, anchors or refined boxes, class cost,
        IoU epsilon); units with a proposal set of their own match it the same way."""
        from msdetr.supervision.encoder import EncoderAssigner

        config, costs = self.config, self.config.matcher
        return EncoderAssigner(
            cost_bbox=costs.bbox, cost_giou=costs.giou, match_on_anchors=config.encoder_match_on_anchors,
            cost_class=costs.cls if config.encoder_class_cost else 0.0,
            focal_alpha=config.focal_alpha, focal_gamma=config.focal_gamma, iou_epsilon=config.iou_epsilon,
        )

    def top_k(self, options: Any) -> TopKAssigner:
        """The top-K assigner from any options record with k, threshold, class_weight, iou_weight,
        positive_fraction and mode (`supervision.one_to_many`, `supervision.dac`)."""
        from msdetr.supervision.topk import TopKAssigner

        return TopKAssigner(k=options.k, threshold=options.threshold, class_weight=options.class_weight,
                            iou_weight=options.iou_weight, positive_fraction=options.positive_fraction,
                            mode=options.mode, generator=self.generator)


@dataclass
class MethodUnit:
    """One training method.

    name:     the unit's name (the overlay spelling, e.g. "hybrid").
    streams:  the streams it adds.
    provider: model config -> query-group provider module (`contracts.QueryGroupProvider`) or None.
    branch:   model config -> decoder branch module (`modeling.branches.DecoderBranch`) or None.
    primary:  (tools, primary strategy) -> the new primary strategy, or None to leave it.
    strategy: tools -> one more strategy, or None.
    overlays: the method as config overlays (`BASE+name`, `config.overlay.Overlay`).
    checks:   config -> the problems of its options (`config.problem.Problem`), at load time.
    model_section / supervision_section: dataclasses of its own config sections, `model.<name>` /
              `supervision.<name>` (`config.unit_sections`; read as `cfg.model.<name>`).
    """

    name: str
    streams: tuple[StreamSpec, ...] = ()
    provider: Callable[[ModelConfig], nn.Module | None] | None = None
    branch: Callable[[ModelConfig], nn.Module | None] | None = None
    primary: Callable[[SupervisionTools, SupervisionStrategy], SupervisionStrategy | None] | None = None
    strategy: Callable[[SupervisionTools], SupervisionStrategy | None] | None = None
    overlays: tuple[Overlay, ...] = ()
    checks: Callable[[Config], list[Problem]] | None = None
    model_section: type | None = None
    supervision_section: type | None = None
