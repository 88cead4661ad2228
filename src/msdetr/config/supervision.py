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
class HybridConfig:
    """H-DETR one-to-many branch supervision (stream `hybrid`; needs model.hybrid.num_queries > 0).

    enabled: supervise the `hybrid` stream: Hungarian matching of every decoder layer
        against the targets repeated `k` times.
    k: repetitions of the targets (H-DETR `k_one2many`; its recipes use 6).
    official_normalization: divide the branch's losses by k * N (H-DETR computes its
        normalizer from the repeated targets) instead of N.
    The branch weight lambda is folded into `loss_weights.hybrid` (lambda 1: the one-to-one weights).
    """

    enabled: bool = False
    k: int = 6
    official_normalization: bool = True


@dataclass
class GroupConfig:
    """Group DETR supervision (stream `group`; needs model.group.num_groups > 1).

    enabled: Hungarian matching of each extra group separately, on every decoder layer.
    normalize_over_groups: as Group DETR, divide every one-to-one loss (primary and extra
        groups) by G * N, so the G groups are averaged; false divides by N (each group counts fully).
    """

    enabled: bool = False
    normalize_over_groups: bool = True


@dataclass
class LossWeights:
    """Weights of one stream's loss terms: sigmoid focal classification, L1 and GIoU box losses."""

    cls: float = 2.0
    bbox: float = 5.0
    giou: float = 2.0


@dataclass
class StreamLossWeights:
    """Loss weights per prediction stream (same weights on every decoder layer of a stream)."""

    one_to_one: LossWeights = field(default_factory=LossWeights)
    one_to_many: LossWeights = field(default_factory=LossWeights)
    encoder: LossWeights = field(default_factory=LossWeights)
    hybrid: LossWeights = field(default_factory=LossWeights)
    group: LossWeights = field(default_factory=LossWeights)
    denoising: LossWeights = field(default_factory=LossWeights)

    def as_dict(self) -> dict[str, LossWeights]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SupervisionConfig:
    """How the detector is supervised during training.

    strategy: "one_to_one" (DETR: Hungarian on every decoder layer) or "mixed"
    (MS-DETR: plus top-K one-to-many on the `one_to_many` stream). Two-stage
    detectors also get the encoder proposal loss.
    focal_alpha, focal_gamma: of the focal classification loss and matching cost.
    encoder_match_on_anchors: match encoder proposals on their anchors (official MS-DETR).
    encoder_class_cost: add the class cost (matcher.cls) to the encoder matching. H-DETR's
        code (and Deformable DETR's) match the encoder proposals like a decoder layer: class
        cost on, refined boxes (encoder_match_on_anchors: false).
    denoising_normalization: denoising terms (model.denoising) divided by N * groups ("groups",
        DN-DETR and DINO) or by N ("targets", as the other streams).
    """

    strategy: Strategy = "one_to_one"
    matcher: MatcherCosts = field(default_factory=MatcherCosts)
    one_to_many: OneToManyConfig = field(default_factory=OneToManyConfig)
    loss_weights: StreamLossWeights = field(default_factory=StreamLossWeights)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    encoder_match_on_anchors: bool = True
    encoder_class_cost: bool = False
    denoising_normalization: Literal["groups", "targets"] = "groups"

    def validate(self) -> None:
        """Raise `MsdetrError` naming the first invalid value."""
        problems = []
        if self.strategy not in ("one_to_one", "mixed"):
            problems.append(("strategy", self.strategy, "one of 'one_to_one', 'mixed'"))
        if self.denoising_normalization not in ("groups", "targets"):
            problems.append(("denoising_normalization", self.denoising_normalization, "one of 'groups', 'targets'"))
        o2m = self.one_to_many
        if o2m.mode not in ("official", "paper"):
            problems.append(("one_to_many.mode", o2m.mode, "one of 'official', 'paper'"))
        if isinstance(o2m.k, bool) or not isinstance(o2m.k, int) or o2m.k < 1:
            problems.append(("one_to_many.k", o2m.k, "an integer >= 1"))
        if isinstance(self.hybrid.k, bool) or not isinstance(self.hybrid.k, int) or self.hybrid.k < 1:
            problems.append(("hybrid.k", self.hybrid.k, "an integer >= 1"))
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
            for name in ("cls", "bbox", "giou"):
                if getattr(weights, name) < 0:
                    problems.append((f"loss_weights.{stream}.{name}", getattr(weights, name), ">= 0"))
        if problems:
            key, value, expected = problems[0]
            raise MsdetrError(f"supervision config: {key}: got {value!r}; it must be {expected}")
