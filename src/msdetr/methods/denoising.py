"""DN-DETR / DINO denoising: noised ground truth as extra queries (`model.denoising`, provider
`modeling.denoising`), each reconstructing its object (`supervision.denoising_normalization`)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlays.support import Overlay, refuse, stream_weights
from msdetr.config.schema import Config
from msdetr.methods.contracts import DENOISING
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.denoising import DenoisingQueries
from msdetr.supervision.denoising import DenoisingSupervision

DINO_DN_PER_QUERY = 100 / 900


def provider(cfg):
    return DenoisingQueries(cfg.denoising, cfg.num_classes, cfg.hidden_dim) if cfg.denoising.enabled else None


def strategy(tools: SupervisionTools):
    # tasks only when the detector returns a `denoising` stream
    return DenoisingSupervision(tools.config.denoising_normalization)


def _check_denoising(cfg: Config, where: str, method: str) -> None:
    if not (cfg.model.two_stage or cfg.model.anchor_queries):
        raise refuse(where, method, "(denoising boxes) needs a two-stage base or dab anchor queries; "
                      "this base has single-stage point queries")


def _denoising_supervision(cfg: Config) -> dict[str, Any]:
    return {"denoising_normalization": "groups", "loss_weights": {"denoising": stream_weights(cfg, "one_to_one")}}


def overlay_dn(cfg: Config, where: str) -> dict[str, Any]:
    _check_denoising(cfg, where, "dn")
    return {
        "model": {"denoising": {"method": "dn", "num_groups": 5, "label_noise": 0.2, "box_noise": 0.4,
                                "label_indicator": bool(cfg.model.anchor_queries)}},
        "supervision": _denoising_supervision(cfg),
    }


def overlay_dino(cfg: Config, where: str) -> dict[str, Any]:
    _check_denoising(cfg, where, "dino")
    dn_number = max(1, round(DINO_DN_PER_QUERY * cfg.model.num_queries))
    return {
        "model": {"denoising": {"method": "cdn", "dn_number": dn_number, "label_noise": 0.5, "box_noise": 0.4}},
        "supervision": _denoising_supervision(cfg),
    }


OVERLAYS = (
    Overlay("dn", overlay_dn, "DN-DETR denoising", rank=3, aliases=("dn_detr",),
            excludes=(
                ("dino", "exclude each other: both add denoising queries; pick one"),
            )),
    Overlay("dino", overlay_dino, "DINO contrastive denoising", rank=4),
)

UNIT = MethodUnit("denoising", streams=(StreamSpec(DENOISING),), provider=provider, strategy=strategy,
                  overlays=OVERLAYS)
