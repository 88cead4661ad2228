"""DAC-DETR: a decoder branch without self-attention (`model.dac`, `modeling.branches`),
supervised one-to-many by the top-K assigner (`supervision.dac`, `msdetr.supervision.dac`)."""

from __future__ import annotations

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


UNIT = MethodUnit("dac", streams=(StreamSpec(DAC),), branch=branch, strategy=strategy)
