"""H-DETR hybrid matching: extra queries (`model.hybrid`, provider `modeling.hybrid_queries`)
matched one-to-one against the targets repeated k times (`supervision.hybrid`)."""

from __future__ import annotations

from msdetr.methods.contracts import HYBRID
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.hybrid_queries import HybridQueries
from msdetr.supervision.hybrid import HybridSupervision


def provider(cfg):
    if cfg.hybrid.num_queries <= 0:
        return None
    return HybridQueries(cfg.hybrid.num_queries, cfg.hidden_dim, cfg.two_stage, cfg.mixed_selection)


def strategy(tools: SupervisionTools):
    hybrid = tools.config.hybrid
    if not hybrid.enabled:
        return None
    return HybridSupervision(tools.hungarian, hybrid.k, hybrid.official_normalization)


UNIT = MethodUnit("hybrid", streams=(StreamSpec(HYBRID),), provider=provider, strategy=strategy)
