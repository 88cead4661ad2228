"""Deformable-DETR++: an overlay-only unit (the queries and decoder options are the detector's own)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay, refuse
from msdetr.config.schema import Config
from msdetr.methods.unit import MethodUnit


def overlay_pp(cfg: Config, where: str) -> dict[str, Any]:
    m = cfg.model
    if not m.two_stage:
        raise refuse(where, "pp", "(mixed query selection) needs a two-stage base; this base is single-stage "
                      "(model.two_stage: false, e.g. from dab); drop one of the two")
    if not m.with_box_refine:
        raise refuse(where, "pp", "(look forward twice) needs model.with_box_refine: true in the base")
    return {"model": {"dropout": 0.0, "mixed_selection": True, "look_forward_twice": True}}


OVERLAYS = (
    Overlay("pp", overlay_pp, "Deformable-DETR++ (mixed query selection, look forward twice)", rank=0,
            excludes=(
                ("dab", "exclude each other: pp selects two-stage queries, dab uses single-stage anchor queries"),
            )),
)

UNIT = MethodUnit("pp", overlays=OVERLAYS)
