"""The single place that turns a `SupervisionConfig` into assigners, strategies and the criterion."""

from __future__ import annotations

import torch

from msdetr.config.supervision import SupervisionConfig
from msdetr.losses.criterion import Criterion
from msdetr.losses.mask_losses import MaskLoss, PointSampling
from msdetr.supervision.compose import ComposedSupervision
from msdetr.supervision.encoder import EncoderAssigner, EncoderSupervision
from msdetr.supervision.hungarian import HungarianAssigner
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
    )
    strategy = OneToOneSupervision(hungarian)
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
    encoder = EncoderSupervision(
        EncoderAssigner(
            cost_bbox=costs.bbox, cost_giou=costs.giou, match_on_anchors=config.encoder_match_on_anchors
        )
    )
    return Criterion(
        ComposedSupervision([strategy, encoder]),
        weights=config.loss_weights.as_dict(),
        num_classes=num_classes,
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
        mask_loss=MaskLoss(PointSampling(masks.num_points, masks.oversample_ratio, masks.importance_sample_ratio),
                           generator) if with_masks else None,
    )
