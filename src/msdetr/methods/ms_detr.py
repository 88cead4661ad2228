"""MS-DETR: the `one_to_many` stream tapped inside the primary decoder (`model.mixed_supervision`),
supervised by the top-K assigner next to the primary one-to-one strategy (`supervision.strategy:
mixed`, `supervision.one_to_many`)."""

from __future__ import annotations

from msdetr.methods.contracts import ONE_TO_MANY
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.supervision.mixed import MixedSupervision


def primary(tools: SupervisionTools, current):
    if tools.config.strategy != "mixed":
        return None
    o2m = tools.config.one_to_many
    return MixedSupervision(current, tools.top_k(o2m), merge_one_to_one=o2m.merge_one_to_one)


UNIT = MethodUnit("ms_detr", streams=(StreamSpec(ONE_TO_MANY),), primary=primary)
