"""H-DETR hybrid matching: extra queries (`model.hybrid`, provider `modeling.hybrid_queries`)
matched one-to-one against the targets repeated k times (`supervision.hybrid`)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay, stream_weights
from msdetr.config.problem import Problem, together
from msdetr.config.schema import Config
from msdetr.methods.contracts import HYBRID
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.hybrid_queries import HybridQueries
from msdetr.supervision.hybrid import HybridSupervision

HYBRID_QUERY_FACTOR = 5
HYBRID_K = 6


def provider(cfg):
    if cfg.hybrid.num_queries <= 0:
        return None
    return HybridQueries(cfg.hybrid.num_queries, cfg.hidden_dim, cfg.two_stage, cfg.mixed_selection)


def strategy(tools: SupervisionTools):
    hybrid = tools.config.hybrid
    if not hybrid.enabled:
        return None
    return HybridSupervision(tools.hungarian, hybrid.k, hybrid.official_normalization)


def overlay_hybrid(cfg: Config, where: str) -> dict[str, Any]:
    return {
        "model": {"hybrid": {"num_queries": HYBRID_QUERY_FACTOR * cfg.model.num_queries}},
        "supervision": {
            "hybrid": {"enabled": True, "k": HYBRID_K, "official_normalization": True},
            "loss_weights": {"hybrid": stream_weights(cfg, "one_to_one")},
            "encoder_match_on_anchors": False,
            "encoder_class_cost": True,
        },
    }


def checks(cfg: Config) -> list[Problem]:
    """The extra queries and their supervision come together."""
    return together("model.hybrid.num_queries > 0", cfg.model.hybrid.num_queries > 0, "supervision.hybrid.enabled",
                    cfg.supervision.hybrid.enabled)


OVERLAYS = (
    Overlay("hybrid", overlay_hybrid, "H-DETR hybrid matching", rank=5, aliases=("hdetr", "h_detr")),
)

UNIT = MethodUnit("hybrid", streams=(StreamSpec(HYBRID),), provider=provider, strategy=strategy,
                  overlays=OVERLAYS, checks=checks)
