"""Typed configuration of the training supervision: strategy, assigners and loss weights.

Defaults are those of the official Deformable-DETR / MS-DETR scripts. The MS-DETR
recipes use `strategy: mixed` and `loss_weights.one_to_one.cls: 1.0` (the
one-to-many class weight stays 2). `msdetr.losses.build_criterion` is the one
place that turns this into objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from msdetr.errors import MsdetrError

Strategy = Literal["one_to_one", "mixed"]
TopKMode = Literal["official", "paper"]


@dataclass
class MatcherCosts:
    """Hungarian matching cost weights (official `--set_cost_*`); the encoder matcher reuses bbox/giou."""

    cls: float = 2.0
    bbox: float = 5.0
    giou: float = 2.0


@dataclass
class MaskSupervisionConfig:
    """Mask losses and mask matching costs (models with a mask head; ignored otherwise).

    num_points, oversample_ratio, importance_sample_ratio: point sampling of the mask losses
    (Mask2Former: 12544, 3, 0.75). cost_mask, cost_dice: weights of the point-sampled BCE and
    dice costs in the one-to-one matcher (0 = boxes only); matcher_points: uniform points per
    image for those costs.
    """

    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    cost_mask: float = 5.0
    cost_dice: float = 5.0
    matcher_points: int = 12544


@dataclass
class OneToManyConfig:
    """MS-DETR top-K assigner (see `msdetr.supervision.topk`).

    mode: "official" reproduces the released code (score >= threshold per query's
    best target, best query per target forced positive, positives capped at
    `positive_fraction` of the queries at random, then top-min(c, k) per target);
    "paper" follows the paper's text (top-k per target, drop scores below the
    threshold; the paper weights the class score by 0.4: class_weight 0.4, iou_weight 0.6).
    merge_one_to_one: add each target's one-to-one match to its one-to-many set.
    """

    k: int = 6
    threshold: float = 0.4
    class_weight: float = 0.3
    iou_weight: float = 0.7
    positive_fraction: float = 0.25
    mode: TopKMode = "official"
    merge_one_to_one: bool = False


@dataclass
class LossWeights:
    """Weights of one stream's loss terms: sigmoid focal classification, L1 and GIoU box losses,
    and (models with a mask head only) the point-sampled mask BCE and dice losses (Mask2Former's 5, 5)."""

    cls: float = 2.0
    bbox: float = 5.0
    giou: float = 2.0
    mask: float = 5.0
    dice: float = 5.0


@dataclass
class StreamLossWeights:
    """Loss weights per prediction stream (same weights on every decoder layer of a stream)."""

    one_to_one: LossWeights = field(default_factory=LossWeights)
    one_to_many: LossWeights = field(default_factory=LossWeights)
    encoder: LossWeights = field(default_factory=LossWeights)

    def as_dict(self) -> dict[str, LossWeights]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SupervisionConfig:
    """How the detector is supervised during training.

    strategy: "one_to_one" (DETR: Hungarian on every decoder layer) or "mixed"
    (MS-DETR: plus top-K one-to-many on the `one_to_many` stream). Two-stage
    detectors also get the encoder proposal loss.
    focal_alpha, focal_gamma: of the focal classification loss and matching cost.
    encoder_match_on_anchors: match encoder proposals on their anchors (official).
    """

    strategy: Strategy = "one_to_one"
    matcher: MatcherCosts = field(default_factory=MatcherCosts)
    one_to_many: OneToManyConfig = field(default_factory=OneToManyConfig)
    loss_weights: StreamLossWeights = field(default_factory=StreamLossWeights)
    masks: MaskSupervisionConfig = field(default_factory=MaskSupervisionConfig)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    encoder_match_on_anchors: bool = True

    def validate(self) -> None:
        """Raise `MsdetrError` naming the first invalid value."""
        problems = []
        if self.strategy not in ("one_to_one", "mixed"):
            problems.append(("strategy", self.strategy, "one of 'one_to_one', 'mixed'"))
        o2m = self.one_to_many
        if o2m.mode not in ("official", "paper"):
            problems.append(("one_to_many.mode", o2m.mode, "one of 'official', 'paper'"))
        if isinstance(o2m.k, bool) or not isinstance(o2m.k, int) or o2m.k < 1:
            problems.append(("one_to_many.k", o2m.k, "an integer >= 1"))
        if not 0.0 < o2m.positive_fraction <= 1.0:
            problems.append(("one_to_many.positive_fraction", o2m.positive_fraction, "in (0, 1]"))
        if not 0.0 < self.focal_alpha < 1.0:
            problems.append(("focal_alpha", self.focal_alpha, "in (0, 1)"))
        if self.focal_gamma < 0:
            problems.append(("focal_gamma", self.focal_gamma, ">= 0"))
        for name in ("threshold", "class_weight", "iou_weight"):
            if getattr(o2m, name) < 0:
                problems.append((f"one_to_many.{name}", getattr(o2m, name), ">= 0"))
        for name in ("cls", "bbox", "giou"):
            if getattr(self.matcher, name) < 0:
                problems.append((f"matcher.{name}", getattr(self.matcher, name), ">= 0"))
        if self.matcher.bbox == 0 and self.matcher.giou == 0:
            problems.append(("matcher.bbox", self.matcher.bbox, "> 0 when matcher.giou is 0"))
        for stream, weights in self.loss_weights.as_dict().items():
            for name in ("cls", "bbox", "giou", "mask", "dice"):
                if getattr(weights, name) < 0:
                    problems.append((f"loss_weights.{stream}.{name}", getattr(weights, name), ">= 0"))
        m = self.masks
        for name in ("num_points", "matcher_points"):
            if isinstance(getattr(m, name), bool) or not isinstance(getattr(m, name), int) or getattr(m, name) < 1:
                problems.append((f"masks.{name}", getattr(m, name), "an integer >= 1"))
        if m.oversample_ratio < 1:
            problems.append(("masks.oversample_ratio", m.oversample_ratio, ">= 1"))
        if not 0.0 <= m.importance_sample_ratio <= 1.0:
            problems.append(("masks.importance_sample_ratio", m.importance_sample_ratio, "in [0, 1]"))
        for name in ("cost_mask", "cost_dice"):
            if getattr(m, name) < 0:
                problems.append((f"masks.{name}", getattr(m, name), ">= 0"))
        if problems:
            key, value, expected = problems[0]
            raise MsdetrError(f"supervision config: {key}: got {value!r}; it must be {expected}")
