"""The `mr_detr` method overlay (`BASE+mr_detr`, `msdetr compare`; the unit's `overlays`, applied
before `ms_detr`, which then keeps Mr. DETR's encoder weights and matching).

Released values (docs/mr_detr_reference.md, section 6), chosen by the base:
- Deformable base: top-K score 0.3 p + 0.7 IoU, route losses / N, both encoder heads matched on the
  anchors without class cost, encoder weights x3 (the base's encoder weights times 3, both heads);
- denoising base (the release's DINO variant): 0.2 p + 0.8 IoU, route losses / 3N, encoder heads
  matched on the refined proposals with the class cost, encoder weights x1; the denoising queries
  also run on both routes (streams `mr_instructive_dn` / `mr_sep_dn`, the denoising weights);
- IoU-aware base (Align: `classification_loss.one_to_one: iou_aware`): the routes and both encoder
  heads take the IoU-aware loss too (encoder class weight = the one-to-one one), prime-sample weights
  tau 1.5 on the routes.
Route weights = the base's one-to-one weights. k 6, threshold 0.4, 10 instruction tokens, the
release's score fusion at inference, detrex's IoU epsilon 1e-6 and reference clamp 1e-3.
The positive cap stays the release's 225 an image whatever Q: the release hard-codes it for its
300- and 900-query configs alike (it is not a fraction of the queries), so it is not scaled.
Needs a two-stage base; turns mixed query selection on (the instructive route's content queries are
the learned ones of Deformable-DETR++, on which every release is built).
"""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay
from msdetr.errors import MsdetrError

RELEASED_MAX_POSITIVES = 225
ENCODER_FACTOR_DEFORMABLE = 3.0


def mr_detr_overlay(cfg, where: str) -> dict[str, Any]:  # cfg: msdetr.config.schema.Config
    m, s = cfg.model, cfg.supervision
    if not m.two_stage:
        raise MsdetrError(f"{where}: method 'mr_detr' (a second encoder head's proposals) needs a two-stage base; "
                          "this base is single-stage (model.two_stage: false, e.g. from dab); drop one of the two")
    denoising = m.denoising.enabled
    iou_aware = s.classification_loss.one_to_one == "iou_aware"
    o2o = {n: float(getattr(s.loss_weights.one_to_one, n)) for n in ("cls", "bbox", "giou")}
    factor = 1.0 if denoising else ENCODER_FACTOR_DEFORMABLE
    encoder = {n: float(getattr(s.loss_weights.encoder, n)) * factor for n in ("cls", "bbox", "giou")}
    if iou_aware:  # the Align release weighs every classification term like the one-to-one one (1)
        encoder["cls"] = o2o["cls"] * factor
    supervision: dict[str, Any] = {
        "mr_detr": {"enabled": True, "k": 6, "threshold": 0.4,
                    "class_weight": 0.2 if denoising else 0.3, "iou_weight": 0.8 if denoising else 0.7,
                    "mode": "official", "positive_fraction": 1.0, "max_positives": RELEASED_MAX_POSITIVES,
                    "normalizer_scale": 3.0 if denoising else 1.0,
                    "tau": 1.5 if iou_aware else 0.0, "rank_weights_l1": False},
        "loss_weights": {"mr_instructive": o2o, "mr_sep": o2o, "encoder": encoder, "mr_encoder": encoder},
        "encoder_match_on_anchors": not denoising,
        "encoder_class_cost": denoising,
        "iou_epsilon": 1.0e-6,
    }
    if denoising:  # the release's per-route denoising losses (`_dn_o2m`, `_dn_sep`): the denoising weights
        dn = {n: float(getattr(s.loss_weights.denoising, n)) for n in ("cls", "bbox", "giou")}
        supervision["loss_weights"].update({"mr_instructive_dn": dn, "mr_sep_dn": dn})
    if iou_aware:
        supervision["classification_loss"] = {"encoder": "iou_aware", "mr_instructive": "iou_aware",
                                               "mr_sep": "iou_aware", "mr_encoder": "iou_aware"}
    model = {"mixed_selection": True,
             "mr_detr": {"enabled": True, "instructive_route": True, "sep_route": True, "num_instructions": 10,
                         "encoder_size_bias": -2.0, "reference_eps": 1.0e-3, "score_fusion": True}}
    return {"model": model, "supervision": supervision}


OVERLAYS = (
    # applied before ms_detr, which then keeps Mr. DETR's encoder weights (both heads) and matching
    Overlay("mr_detr", mr_detr_overlay, "Mr. DETR multi-route training", rank=8.5, aliases=("mrdetr", "mr-detr"),
            pins=("supervision.loss_weights.encoder", "supervision.encoder_match_on_anchors",
                  "supervision.encoder_class_cost")),
)
