"""DAB-Deformable-DETR: an overlay-only unit (anchor queries are the detector's own query kind)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay, refuse
from msdetr.config.schema import Config
from msdetr.methods.unit import MethodUnit


def overlay_dab(cfg: Config, where: str) -> dict[str, Any]:
    if cfg.model.mixed_selection:
        raise refuse(where, "dab", "(single-stage anchor queries) cannot apply to a base with mixed query "
                      "selection (model.mixed_selection, Deformable-DETR++ / pp); use a base without it")
    return {"model": {"two_stage": False, "with_box_refine": True, "anchor_queries": True}}


OVERLAYS = (
    Overlay("dab", overlay_dab, "DAB anchor queries", rank=1),
)

UNIT = MethodUnit("dab", overlays=OVERLAYS)
