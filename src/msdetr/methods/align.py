"""Align-DETR: mixed (many-to-one, then one-to-one) matching of the `one_to_one` stream with
prime-sample weighting (`supervision.many_to_one`, `msdetr.supervision.align`)."""

from __future__ import annotations

from msdetr.methods.unit import MethodUnit, SupervisionTools
from msdetr.supervision.align import AlignSupervision


def primary(tools: SupervisionTools, current):
    m2o = tools.config.many_to_one
    if not m2o.enabled:
        return None
    return AlignSupervision(tools.hungarian, k=m2o.k, final_k=m2o.final_k, tau=m2o.tau)


UNIT = MethodUnit("align", primary=primary)
