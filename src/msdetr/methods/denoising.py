"""DN-DETR / DINO denoising: noised ground truth as extra queries (`model.denoising`, provider
`modeling.denoising`), each reconstructing its object (`supervision.denoising_normalization`)."""

from __future__ import annotations

import math
from typing import Any

from msdetr.config.overlay import Overlay, refuse, stream_weights
from msdetr.config.problem import Problem, is_int, out_of_range
from msdetr.config.schema import Config
from msdetr.errors import MsdetrError
from msdetr.methods.contracts import DENOISING
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.denoising import DenoisingQueries
from msdetr.supervision.denoising import DenoisingSupervision

DINO_DN_PER_QUERY = 100 / 900


def provider(cfg):
    """The denoising queries of a `ModelConfig` (None when off); a one-line error for a bad combination."""
    dn = cfg.denoising
    if dn.method not in ("none", "dn", "cdn"):
        raise MsdetrError(f"model.denoising.method: got {dn.method!r}; use one of 'none', 'dn', 'cdn'")
    if not dn.enabled:
        return None
    if not (cfg.two_stage or cfg.anchor_queries):
        raise MsdetrError("model.denoising: denoising queries are boxes; needs model.two_stage: true or "
                          "model.anchor_queries: true (plain single-stage queries are 2-d points)")
    if dn.label_indicator and not cfg.anchor_queries:
        raise MsdetrError("model.denoising.label_indicator: needs model.anchor_queries: true (DN-DETR's DAB queries)")
    if dn.method == "dn" and dn.num_groups < 1:
        raise MsdetrError(f"model.denoising.num_groups: got {dn.num_groups}; it must be >= 1")
    if dn.label_noise < 0 or dn.box_noise < 0:
        raise MsdetrError("model.denoising.label_noise and box_noise must be >= 0")
    return DenoisingQueries(dn, cfg.num_classes, cfg.hidden_dim)


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


def checks(cfg: Config) -> list[Problem]:
    """model.denoising: ranges that matter for its method; dn_number 0 turns "cdn" off, < 0 is an error."""
    m = cfg.model
    dn = m.denoising
    if dn.method == "none":
        return []
    problems = []
    if dn.method == "dn" and not is_int(dn.num_groups, 1):
        problems.append(out_of_range("model.denoising.num_groups", dn.num_groups,
                                     ">= 1 for method 'dn' (to turn denoising off: model.denoising.method: none)"))
    if dn.method == "cdn" and dn.dn_number < 0:
        problems.append(out_of_range("model.denoising.dn_number", dn.dn_number,
                                     ">= 0 (0 turns contrastive denoising off)"))
    if not 0 <= dn.label_noise <= 1:
        problems.append(out_of_range("model.denoising.label_noise", dn.label_noise,
                                     "in [0, 1] (a probability: DN-DETR 0.2, DINO 0.5)"))
    if not (math.isfinite(dn.box_noise) and dn.box_noise >= 0):
        problems.append(out_of_range("model.denoising.box_noise", dn.box_noise, ">= 0 (DN-DETR 0.4, DINO 1.0)"))
    if not dn.enabled:  # cdn with dn_number 0: off, the rest does not matter
        return problems
    if not (m.two_stage or m.anchor_queries):
        problems.append(Problem(("model.denoising.method", "model.two_stage", "model.anchor_queries"),
                                "model.denoising: denoising queries are boxes; it needs model.two_stage: true or "
                                "model.anchor_queries: true (plain single-stage queries are 2-d points)"))
    if dn.label_indicator and not m.anchor_queries:
        problems.append(Problem(("model.denoising.label_indicator", "model.anchor_queries"),
                                "model.denoising.label_indicator needs model.anchor_queries: true "
                                "(DN-DETR's DAB queries); set it to false"))
    return problems


OVERLAYS = (
    Overlay("dn", overlay_dn, "DN-DETR denoising", rank=3, aliases=("dn_detr",),
            excludes=(
                ("dino", "exclude each other: both add denoising queries; pick one"),
            )),
    Overlay("dino", overlay_dino, "DINO contrastive denoising", rank=4),
)

UNIT = MethodUnit("denoising", streams=(StreamSpec(DENOISING),), provider=provider, strategy=strategy,
                  overlays=OVERLAYS, checks=checks)
