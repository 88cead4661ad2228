"""DAC-DETR: a decoder branch without self-attention (`model.dac`, `modeling.branches`),
supervised one-to-many by the top-K assigner (`supervision.dac`, `msdetr.supervision.dac`)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay
from msdetr.config.problem import Problem, together
from msdetr.config.schema import Config
from msdetr.methods.contracts import DAC
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.branches import SkipSelfAttention
from msdetr.supervision.dac import DacSupervision


def branch(cfg):
    if not cfg.dac.enabled:
        return None
    return SkipSelfAttention(DAC, cfg.dec_layers, keep_first=cfg.dac.first_layer_self_attention)


def strategy(tools: SupervisionTools):
    dac = tools.config.dac
    if not dac.enabled:
        return None
    return DacSupervision(tools.top_k(dac), match_on_primary_boxes=dac.match_on_primary_boxes,
                          tau=dac.tau if dac.tau > 0 else None, normalizer_scale=dac.normalizer_scale)


def overlay_dac(cfg: Config, where: str) -> dict[str, Any]:
    return {
        "model": {"dac": {"enabled": True, "first_layer_self_attention": True}},
        "supervision": {
            "dac": {"enabled": True, "k": 6, "threshold": 0.4, "positive_fraction": 0.25,
                    "match_on_primary_boxes": True, "tau": 1.5, "normalizer_scale": 3.0},
            "classification_loss": {"dac": "iou_aware"},
            "loss_weights": {"dac": {"cls": 1.0, "bbox": 5.0, "giou": 2.0}},
            # as released: encoder proposals matched on their refined boxes with the class cost
            "encoder_match_on_anchors": False,
            "encoder_class_cost": True,
        },
    }


def checks(cfg: Config) -> list[Problem]:
    """The branch and its supervision come together."""
    return together("model.dac.enabled", cfg.model.dac.enabled, "supervision.dac.enabled", cfg.supervision.dac.enabled,
                    "DAC-DETR's branch (model) and its supervision are enabled together (set both or neither)")


OVERLAYS = (
    Overlay("dac", overlay_dac, "DAC-DETR branch", rank=7, aliases=("dac_detr",)),
)

UNIT = MethodUnit("dac", streams=(StreamSpec(DAC),), branch=branch, strategy=strategy,
                  overlays=OVERLAYS, checks=checks)
