"""Typed configuration of the training supervision: strategy, assigners and loss weights.

Defaults are those of the official Deformable-DETR / MS-DETR scripts. The MS-DETR
recipes use `strategy: mixed` and `loss_weights.one_to_one.cls: 1.0` (the
one-to-many class weight stays 2). `msdetr.losses.build_criterion` is the one
place that turns this into objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from msdetr.config.per_stream import PerStream
from msdetr.config.unit_sections import SupervisionSections, WithUnitSections
from msdetr.errors import MsdetrError
from msdetr.methods.streams import StreamSpec

Strategy = Literal["one_to_one", "mixed"]
TopKMode = Literal["official", "paper"]
ClassificationLoss = Literal["focal", "iou_aware"]


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
class TopKOptions:
    """Options of a top-K one-to-many assignment (`msdetr.supervision.topk`), shared by MS-DETR's
    `one_to_many` and DAC-DETR's `dac` sections.

    mode: "official" reproduces the released code (score >= threshold per query's
    best target, best query per target forced positive, positives capped at
    `positive_fraction` of the queries at random, then top-min(c, k) per target);
    "paper" follows the paper's text (top-k per target, drop scores below the
    threshold; the paper weights the class score by 0.4: class_weight 0.4, iou_weight 0.6).
    """

    k: int = 6
    threshold: float = 0.4
    class_weight: float = 0.3
    iou_weight: float = 0.7
    positive_fraction: float = 0.25
    mode: TopKMode = "official"

    def problems(self, prefix: str) -> list[tuple[str, object, str]]:
        """Invalid values as (`prefix.key`, value, what it must be)."""
        problems = []
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            problems.append((f"{prefix}.k", self.k, "an integer >= 1"))
        if self.mode not in ("official", "paper"):
            problems.append((f"{prefix}.mode", self.mode, "one of 'official', 'paper'"))
        if not 0.0 < self.positive_fraction <= 1.0:
            problems.append((f"{prefix}.positive_fraction", self.positive_fraction, "in (0, 1]"))
        for name in ("threshold", "class_weight", "iou_weight"):
            if getattr(self, name) < 0:
                problems.append((f"{prefix}.{name}", getattr(self, name), ">= 0"))
        return problems


@dataclass
class OneToManyConfig(TopKOptions):
    """MS-DETR top-K assigner (`TopKOptions`).

    merge_one_to_one: add each target's one-to-one match to its one-to-many set.
    """

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
    """Weights of one stream's loss terms: sigmoid focal classification, L1 and GIoU box losses,
    and (models with a mask head only) the point-sampled mask BCE and dice losses (Mask2Former's 5, 5)."""

    cls: float = 2.0
    bbox: float = 5.0
    giou: float = 2.0
    mask: float = 5.0
    dice: float = 5.0


class StreamLossWeights(PerStream):
    """Loss weights per prediction stream (same weights on every decoder layer of a stream): one
    `LossWeights` per declared stream (`msdetr.methods.streams`), by default the stream's declared
    defaults (DAC-DETR's branch: released cls 1, set by its presets)."""

    value_type = LossWeights

    @staticmethod
    def default(spec: StreamSpec) -> LossWeights:
        return LossWeights(**spec.loss_weights)


# --- Align-DETR / DAC-DETR options ---------------------------------------------------------------


class StreamClassificationLoss(PerStream):
    """Classification loss per declared stream: "focal" (sigmoid focal, Deformable DETR) or
    "iou_aware" (Align-DETR's IoU-aware BCE, `msdetr.losses.iou_aware`); default: the stream's
    declared choice (focal for every built-in stream)."""

    value_type = ClassificationLoss

    @staticmethod
    def default(spec: StreamSpec) -> str:
        return spec.classification_loss


@dataclass
class IouAwareConfig:
    """Align-DETR's IoU-aware classification loss (released defaults).

    alpha: the positive target is t = p^alpha * IoU^(1 - alpha) (p: the predicted probability of
        the target's class; not the focal alpha). gamma: negatives are weighted by p^gamma.
    """

    alpha: float = 0.25
    gamma: float = 2.0


@dataclass
class ManyToOneConfig:
    """Align-DETR's mixed matching of the one-to-one stream (`msdetr.supervision.align`).

    enabled: replace the one-to-one (Hungarian) supervision of every decoder layer by it.
    k: queries per target on every layer but the last (Hungarian on the cost repeated k times;
        released: 2). final_k: on the last layer (released: 1, one-to-one, NMS-free inference).
    tau: prime-sample weighting: a target's pairs ranked by IoU-aware quality (0 = best) are
        weighted exp(-rank / tau) in every loss term (released: 1.5 for the 12/24-epoch configs).
    """

    enabled: bool = False
    k: int = 2
    final_k: int = 1
    tau: float = 1.5


@dataclass
class DacSupervisionConfig(TopKOptions):
    """DAC-DETR's divide-and-conquer branch supervision (`msdetr.supervision.dac`); needs the
    detector's `dac` stream (`model.dac.enabled`).

    enabled: supervise the `dac` stream, every decoder layer, with a top-K one-to-many assignment.
    k, threshold, class_weight, iou_weight, positive_fraction, mode (`TopKOptions`): of that top-K
        assignment (released: the same assigner as MS-DETR's official one, 6 / 0.4 / 0.3 / 0.7,
        positives capped at 75 a image = 0.25 of 300 queries).
    match_on_primary_boxes: score the branch's class probabilities with the one-to-one stream's
        boxes of the same layer, as the released code does; false: the branch's own boxes.
    tau: prime-sample weighting of the branch's pairs, exp(-rank / tau) per target (released 1.5;
        0 turns it off).
    normalizer_scale: the branch's losses are divided by this many times the number of targets
        (released: 3, its "balance" normalizer).
    """

    enabled: bool = False
    match_on_primary_boxes: bool = True
    tau: float = 1.5
    normalizer_scale: float = 3.0


# -------------------------------------------------------------------------------------------------


@dataclass
class SupervisionConfig(WithUnitSections):
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
    iou_epsilon: added to the union and the enclosing area where they divide, in every IoU / GIoU
        of the Hungarian matching costs (decoder and encoder) and of the losses (GIoU, IoU-aware
        quality); the top-K assigner's IoU stays exact. 0 (default): exact, as DETR / Deformable
        DETR / MS-DETR / H-DETR / DAC-DETR; 1e-6: the detrex box functions of the released
        Align-DETR (its presets set it). See docs/design.md, "Departures from the releases".
    """

    strategy: Strategy = "one_to_one"
    matcher: MatcherCosts = field(default_factory=MatcherCosts)
    one_to_many: OneToManyConfig = field(default_factory=OneToManyConfig)
    loss_weights: StreamLossWeights = field(default_factory=StreamLossWeights)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    masks: MaskSupervisionConfig = field(default_factory=MaskSupervisionConfig)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    encoder_match_on_anchors: bool = True
    encoder_class_cost: bool = False
    denoising_normalization: Literal["groups", "targets"] = "groups"
    classification_loss: StreamClassificationLoss = field(default_factory=StreamClassificationLoss)
    iou_aware: IouAwareConfig = field(default_factory=IouAwareConfig)
    many_to_one: ManyToOneConfig = field(default_factory=ManyToOneConfig)
    dac: DacSupervisionConfig = field(default_factory=DacSupervisionConfig)
    iou_epsilon: float = 0.0
    # registered method units' own sections (`supervision.<unit>`, `config.unit_sections`)
    units: SupervisionSections = field(default_factory=SupervisionSections, repr=False)

    def validate(self) -> None:
        """Raise `MsdetrError` naming the first invalid value."""
        problems = self.problems()
        if problems:
            key, value, expected = problems[0]
            raise MsdetrError(f"supervision config: {key}: got {value!r}; it must be {expected}")

    def problems(self) -> list[tuple[str, object, str]]:
        """Every invalid value as (key under `supervision.`, value, what it must be)."""
        problems = []
        if self.strategy not in ("one_to_one", "mixed"):
            problems.append(("strategy", self.strategy, "one of 'one_to_one', 'mixed'"))
        if self.denoising_normalization not in ("groups", "targets"):
            problems.append(("denoising_normalization", self.denoising_normalization, "one of 'groups', 'targets'"))
        problems += self.one_to_many.problems("one_to_many")
        if isinstance(self.hybrid.k, bool) or not isinstance(self.hybrid.k, int) or self.hybrid.k < 1:
            problems.append(("hybrid.k", self.hybrid.k, "an integer >= 1"))
        if not 0.0 < self.focal_alpha < 1.0:
            problems.append(("focal_alpha", self.focal_alpha, "in (0, 1)"))
        if self.focal_gamma < 0:
            problems.append(("focal_gamma", self.focal_gamma, ">= 0"))
        for name in ("cls", "bbox", "giou"):
            if getattr(self.matcher, name) < 0:
                problems.append((f"matcher.{name}", getattr(self.matcher, name), ">= 0"))
        if self.matcher.bbox == 0 and self.matcher.giou == 0:
            problems.append(("matcher.bbox", self.matcher.bbox, "> 0 when matcher.giou is 0"))
        for stream, weights in self.loss_weights.as_dict().items():
            for name in ("cls", "bbox", "giou", "mask", "dice"):
                if getattr(weights, name) < 0:
                    problems.append((f"loss_weights.{stream}.{name}", getattr(weights, name), ">= 0"))
        problems += self._method_problems()
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
        return problems

    def _method_problems(self) -> list[tuple[str, object, str]]:
        """Invalid values of the Align-DETR / DAC-DETR options, as (key, value, expected)."""
        problems = []
        for stream, loss in self.classification_loss.as_dict().items():
            if loss not in ("focal", "iou_aware"):
                problems.append((f"classification_loss.{stream}", loss, "one of 'focal', 'iou_aware'"))
        if not 0.0 <= self.iou_aware.alpha <= 1.0:
            problems.append(("iou_aware.alpha", self.iou_aware.alpha, "in [0, 1]"))
        if self.iou_aware.gamma < 0:
            problems.append(("iou_aware.gamma", self.iou_aware.gamma, ">= 0"))
        if not 0.0 <= self.iou_epsilon <= 1e-3:
            problems.append(("iou_epsilon", self.iou_epsilon, "in [0, 0.001] (released Align-DETR: 1e-6; exact: 0)"))
        m2o = self.many_to_one
        for name in ("k", "final_k"):
            value = getattr(m2o, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append((f"many_to_one.{name}", value, "an integer >= 1"))
        if m2o.tau <= 0:
            problems.append(("many_to_one.tau", m2o.tau, "> 0"))
        dac = self.dac
        problems += dac.problems("dac")
        if dac.tau < 0:
            problems.append(("dac.tau", dac.tau, ">= 0"))
        if dac.normalizer_scale <= 0:
            problems.append(("dac.normalizer_scale", dac.normalizer_scale, "> 0"))
        return problems
