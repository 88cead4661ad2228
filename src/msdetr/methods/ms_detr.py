"""MS-DETR: the `one_to_many` stream tapped inside the primary decoder (`model.mixed_supervision`),
supervised by the top-K assigner next to the primary one-to-one strategy (`supervision.strategy:
mixed`, `supervision.one_to_many`)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay, stream_weights
from msdetr.config.problem import Problem
from msdetr.config.schema import Config
from msdetr.methods.contracts import ONE_TO_MANY
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.supervision.mixed import MixedSupervision

MSDETR_ONE_TO_ONE_CLS = 1.0


def primary(tools: SupervisionTools, current):
    if tools.config.strategy != "mixed":
        return None
    o2m = tools.config.one_to_many
    return MixedSupervision(current, tools.top_k(o2m), merge_one_to_one=o2m.merge_one_to_one)


def overlay_ms_detr(cfg: Config, where: str) -> dict[str, Any]:
    m, s = cfg.model, cfg.supervision
    o2o = stream_weights(cfg, "one_to_one", boxes_only=False)
    weights: dict[str, Any] = {
        "one_to_one": {"cls": MSDETR_ONE_TO_ONE_CLS},
        "one_to_many": {**o2o, "cls": 2.0},
        "encoder": {"cls": 2.0, "bbox": 5.0, "giou": 2.0},
    }
    # Streams supervised like the one-to-one stream take its (MS-DETR) class weight.
    if m.hybrid.num_queries > 0:
        weights["hybrid"] = {"cls": MSDETR_ONE_TO_ONE_CLS}
    if m.group.num_groups > 1:
        weights["group"] = {"cls": MSDETR_ONE_TO_ONE_CLS}
    if m.denoising.enabled:
        weights["denoising"] = {"cls": MSDETR_ONE_TO_ONE_CLS}
    supervision: dict[str, Any] = {
        "strategy": "mixed",
        "one_to_many": {"k": 6, "threshold": 0.4, "mode": "official"},
        "loss_weights": weights,
    }
    if not m.dac.enabled:  # with DAC-DETR the encoder stays matched as DAC-DETR releases it
        supervision.update({"encoder_match_on_anchors": True, "encoder_class_cost": False})
    if s.classification_loss.one_to_one == "iou_aware":  # Align-DETR's loss on both streams
        supervision["classification_loss"] = {"one_to_many": "iou_aware"}
    model: dict[str, Any] = {"mixed_supervision": {"enabled": True, "tap": "c", "aux_ffn": True}}
    return {"model": model, "supervision": supervision}


def checks(cfg: Config) -> list[Problem]:
    """The one-to-many stream (model) and its supervision come together."""
    mixed_model, mixed_loss = cfg.model.mixed_supervision.enabled, cfg.supervision.strategy == "mixed"
    if mixed_loss and not mixed_model:
        return [Problem(
            ("supervision.strategy", "model.mixed_supervision.enabled"),
            "supervision.strategy is 'mixed' but model.mixed_supervision.enabled is false; enable it "
            "(the one-to-many stream) or use strategy 'one_to_one'")]
    if mixed_model and not mixed_loss:
        return [Problem(
            ("model.mixed_supervision.enabled", "supervision.strategy"),
            "model.mixed_supervision.enabled is true but supervision.strategy is 'one_to_one', so the "
            "one-to-many stream would never be supervised; set supervision.strategy: mixed or disable it")]
    return []


OVERLAYS = (
    Overlay("ms_detr", overlay_ms_detr, "MS-DETR mixed supervision", rank=9, aliases=("msdetr", "ms-detr")),
)

UNIT = MethodUnit("ms_detr", streams=(StreamSpec(ONE_TO_MANY),), primary=primary,
                  overlays=OVERLAYS, checks=checks)
