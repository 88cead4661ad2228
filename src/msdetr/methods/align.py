"""Align-DETR: mixed (many-to-one, then one-to-one) matching of the `one_to_one` stream with
prime-sample weighting (`supervision.many_to_one`, `msdetr.supervision.align`)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay
from msdetr.config.schema import Config
from msdetr.methods.unit import MethodUnit, SupervisionTools
from msdetr.supervision.align import AlignSupervision


def primary(tools: SupervisionTools, current):
    m2o = tools.config.many_to_one
    if not m2o.enabled:
        return None
    return AlignSupervision(tools.hungarian, k=m2o.k, final_k=m2o.final_k, tau=m2o.tau)


def overlay_align(cfg: Config, where: str) -> dict[str, Any]:
    overlay: dict[str, Any] = {
        "supervision": {
            "many_to_one": {"enabled": True, "k": 2, "final_k": 1, "tau": 1.5},
            "classification_loss": {"one_to_one": "iou_aware"},
            "iou_aware": {"alpha": 0.25, "gamma": 2.0},
            "loss_weights": {"one_to_one": {"cls": 1.0, "bbox": 5.0, "giou": 2.0}},
            "iou_epsilon": 1.0e-6,  # detrex's IoU / GIoU, as released
        },
    }
    if cfg.model.denoising.enabled:  # released box_noise_scale
        overlay["model"] = {"denoising": {"box_noise": 1.0}}
    return overlay


OVERLAYS = (
    Overlay("align", overlay_align, "Align-DETR loss and matching", rank=8, aliases=("align_detr",)),
)

UNIT = MethodUnit("align", primary=primary, overlays=OVERLAYS)
