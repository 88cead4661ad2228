"""The single place that turns a `SupervisionConfig` into assigners, strategies and the criterion:
the registered method units (`msdetr.methods.registry`) each contribute their strategy."""

from __future__ import annotations

import torch

from msdetr.config.supervision import SupervisionConfig
from msdetr.losses.criterion import Criterion
from msdetr.losses.mask_losses import MaskLoss, PointSampling
from msdetr.methods.registry import registered
from msdetr.methods.unit import SupervisionTools
from msdetr.supervision.compose import ComposedSupervision
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.mask_cost import MaskMatchingCost


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
    tools = SupervisionTools(config, num_classes, generator, with_masks, hungarian)
    units = registered()
    primary = None
    for unit in units:  # the primary strategy: DETR's, replaced or wrapped by the units that do so
        if unit.primary is not None:
            primary = unit.primary(tools, primary) or primary
    made = (unit.strategy(tools) for unit in units if unit.strategy is not None)
    strategies = [primary, *(strategy for strategy in made if strategy is not None)]
    return Criterion(
        ComposedSupervision(strategies),
        weights=config.loss_weights.as_dict(),  # every declared stream, units' included
        num_classes=num_classes,
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
        classification_losses=config.classification_loss.as_dict(),
        iou_aware=config.iou_aware,
        mask_loss=MaskLoss(PointSampling(masks.num_points, masks.oversample_ratio, masks.importance_sample_ratio),
                           generator) if with_masks else None,
        iou_epsilon=config.iou_epsilon,
    )
