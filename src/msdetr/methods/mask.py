"""Mask-Deformable-DETR: an overlay-only unit (the mask head is part of the detector; its losses
are terms of every stream)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay, stream_weights
from msdetr.config.schema import Config
from msdetr.methods.unit import MethodUnit

MASK_POINTS_REFERENCE = 12544  # Mask2Former, for COCO images up to 1333 pixels
MASK_POINTS_MIN = 1024  # tiny_seg: 80-128 pixel images
MASK_REFERENCE_SIZE = 1333


def overlay_mask(cfg: Config, where: str) -> dict[str, Any]:
    size = max(cfg.data.transforms.train_max_size, cfg.data.transforms.eval_max_size)
    scaled = round(MASK_POINTS_REFERENCE * (size / MASK_REFERENCE_SIZE) ** 2)
    points = int(min(MASK_POINTS_REFERENCE, max(MASK_POINTS_MIN, scaled)))
    o2o = {**stream_weights(cfg, "one_to_one"), "mask": 5.0, "dice": 5.0}
    return {
        "model": {"mask_head": {"enabled": True, "mask_dim": cfg.model.hidden_dim}},
        "data": {"masks": True},
        "supervision": {
            "masks": {"num_points": points, "oversample_ratio": 3.0, "importance_sample_ratio": 0.75,
                      "cost_mask": 5.0, "cost_dice": 5.0, "matcher_points": points},
            "loss_weights": {"one_to_one": o2o},
        },
    }


OVERLAYS = (
    Overlay("mask", overlay_mask, "mask head", rank=2),
)

UNIT = MethodUnit("mask", overlays=OVERLAYS)
