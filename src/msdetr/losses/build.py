"""The single place that turns a `SupervisionConfig` into assigners, strategies and the criterion."""

from __future__ import annotations

import torch

from msdetr.config.supervision import DacSupervisionConfig, SupervisionConfig
from msdetr.losses.criterion import Criterion
from msdetr.losses.mask_losses import MaskLoss, PointSampling
from msdetr.supervision.align import AlignSupervision
from msdetr.supervision.compose import ComposedSupervision
from msdetr.supervision.dac import DacSupervision
from msdetr.supervision.denoising import DenoisingSupervision
from msdetr.supervision.encoder import EncoderAssigner, EncoderSupervision
from msdetr.supervision.group import GroupSupervision
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.hybrid import HybridSupervision
from msdetr.supervision.mask_cost import MaskMatchingCost
from msdetr.supervision.mixed import MixedSupervision
from msdetr.supervision.one_to_one import OneToOneSupervision
from msdetr.supervision.topk import TopKAssigner


def build_criterion(
    config: SupervisionConfig, num_classes: int, generator: torch.Generator | None = None,
    with_masks: bool = False,
) -> Criterion:
    """Criterion for `config`; `generator` is the random source of the top-K subsampling
    (on the predictions' device; None = torch's global generator, as the official code) and of
    the mask points. with_masks: the model has a mask head (mask losses and mask matching cost)."""
    config.validate()
    costs = config.matcher
    masks = config.masks
    mask_cost = None
    if with_masks and (masks.cost_mask or masks.cost_dice):
        mask_cost = MaskMatchingCost(masks.cost_mask, masks.cost_dice, masks.matcher_points, generator)
    hungarian = HungarianAssigner(
        cost_class=costs.cls,
        cost_bbox=costs.bbox,
        cost_giou=costs.giou,
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
        mask_cost=mask_cost,
        iou_epsilon=config.iou_epsilon,
    )
    strategy = OneToOneSupervision(hungarian)
    if config.many_to_one.enabled:  # Align-DETR mixed matching (issue 17)
        m2o = config.many_to_one
        strategy = AlignSupervision(hungarian, k=m2o.k, final_k=m2o.final_k, tau=m2o.tau)
    if config.strategy == "mixed":
        o2m = config.one_to_many
        top_k = TopKAssigner(
            k=o2m.k,
            threshold=o2m.threshold,
            class_weight=o2m.class_weight,
            iou_weight=o2m.iou_weight,
            positive_fraction=o2m.positive_fraction,
            mode=o2m.mode,
            generator=generator,
        )
        strategy = MixedSupervision(strategy, top_k, merge_one_to_one=o2m.merge_one_to_one)
    # methods that add query groups (H-DETR hybrid, Group DETR) compose with the primary strategy
    if config.group.enabled:
        strategy = GroupSupervision(strategy, hungarian, normalize_over_groups=config.group.normalize_over_groups)
    strategies = [strategy]
    if config.hybrid.enabled:
        strategies.append(HybridSupervision(hungarian, config.hybrid.k, config.hybrid.official_normalization))
    encoder = EncoderSupervision(
        EncoderAssigner(
            cost_bbox=costs.bbox, cost_giou=costs.giou, match_on_anchors=config.encoder_match_on_anchors,
            cost_class=costs.cls if config.encoder_class_cost else 0.0,
            focal_alpha=config.focal_alpha, focal_gamma=config.focal_gamma, iou_epsilon=config.iou_epsilon,
        )
    )
    # denoising tasks only when the detector returns a `denoising` stream (model.denoising)
    strategies = [*strategies, encoder, DenoisingSupervision(config.denoising_normalization)]
    if config.dac.enabled:  # DAC-DETR divide-and-conquer branch (issue 17)
        strategies.append(build_dac_supervision(config.dac, generator))
    return Criterion(
        ComposedSupervision(strategies),
        weights=config.loss_weights.as_dict(),
        num_classes=num_classes,
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
        classification_losses=config.classification_loss.as_dict(),
        iou_aware=config.iou_aware,
        mask_loss=MaskLoss(PointSampling(masks.num_points, masks.oversample_ratio, masks.importance_sample_ratio),
                           generator) if with_masks else None,
        iou_epsilon=config.iou_epsilon,
    )


def build_dac_supervision(dac: DacSupervisionConfig, generator: torch.Generator | None) -> DacSupervision:
    """DAC-DETR's branch supervision: top-K one-to-many on the `dac` stream."""
    top_k = TopKAssigner(
        k=dac.k,
        threshold=dac.threshold,
        class_weight=dac.class_weight,
        iou_weight=dac.iou_weight,
        positive_fraction=dac.positive_fraction,
        mode=dac.mode,
        generator=generator,
    )
    return DacSupervision(
        top_k,
        match_on_primary_boxes=dac.match_on_primary_boxes,
        tau=dac.tau if dac.tau > 0 else None,
        normalizer_scale=dac.normalizer_scale,
    )
