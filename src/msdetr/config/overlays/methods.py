"""Training methods as config overlays: each turns a base config into the base plus one method.

An overlay reads the config it is applied to (the base with the overlays before it) and returns
a nested dict of the values to set (merged key by key, as a preset's `base:`). Values the
reference defines relative to the detector are scaled from the base; the others are the
reference's. An overlay that cannot apply to a base raises `MsdetrError` naming both.

Methods (spelling used in `BASE+METHOD+...`), reference presets in parentheses:

  pp       Deformable-DETR++: mixed query selection, look forward twice, dropout 0
           (ddetr_pp_r50_300). Needs a two-stage base with box refinement.
  dab      DAB-Deformable-DETR: single-stage learned 4-d anchor queries with box refinement
           (dab_ddetr_r50_300). Turns two-stage off; refuses a base with mixed query selection.
  mask     Mask-Deformable-DETR: mask head (mask_dim = hidden_dim), masks in the targets, point-sampled
           mask losses 5 / 5 (mask_ddetr_r50_300); points scale with the image area: 12544 at 1333
           pixels, at least 1024 (tiny_seg).
  dn       DN-DETR denoising, 5 groups, label noise 0.2, box noise 0.4 (dn_dab_ddetr_r50_300); the
           label indicator on anchor (dab) bases. Needs a two-stage or dab base.
  dino     DINO contrastive denoising (dino_r50_900): dn_number 100 per 900 primary queries (scaled,
           at least 1), label noise 0.5, box noise 0.4. Needs a two-stage or dab base.
  hybrid   H-DETR hybrid matching (hdetr_pp_r50_300): 5x the primary queries as extra one-to-many
           queries, targets repeated k = 6 times, branch weights = the one-to-one weights (lambda 1),
           encoder proposals matched as a decoder layer.
  group    Group DETR (group_ddetr_pp_r50_300): 6 groups of the primary size (the MS-DETR paper's
           Table 3 setting; Group DETR's own recipe: 11, `--set model.group.num_groups=11`), losses
           averaged over the groups, group weights = the one-to-one weights.
  dac      DAC-DETR's divide-and-conquer branch (dac_ddetr_pp_r50_300): top-K 6 / 0.4, positives at
           most 0.25 of the queries, IoU-aware BCE with prime-sample weights (tau 1.5), weights 1 / 5 / 2,
           encoder proposals matched on refined boxes with the class cost (as released). The release's
           evaluation (NMS 0.8, top 300) is the preset's, not the method's: variants compare alike.
  align    Align-DETR (align_dino_r50_900): IoU-aware BCE on the one-to-one stream, mixed matching
           k = 2 on earlier layers / 1 on the last, tau 1.5, one-to-one weights 1 / 5 / 2, detrex's
           IoU epsilon 1e-6, box noise 1.0 on a denoising base. The release's optimizer recipe (lr 1e-4,
           backbone 1e-5, no offset multiplier, stem frozen) is the preset's, not the method's.
  ms_detr  MS-DETR (msdetr_r50_300): the one-to-many stream tapped after cross-attention with the
           auxiliary FFN, top-K 6 / 0.4 (official sampler), one-to-one class weight 1, one-to-many
           2 / 5 / 2 (plus the one-to-one mask weights), encoder 2 / 5 / 2 matched on anchors. With other
           methods as in the combined presets: hybrid / group / denoising streams take the one-to-one class
           weight 1, DAC-DETR's encoder matching is kept, Align's IoU-aware loss covers the one-to-many stream.

Overlays are applied in the order of `METHOD_ORDER` whatever the order written, so
`tiny+ms_detr+hybrid` and `tiny+hybrid+ms_detr` are the same config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msdetr.config.schema import Config
from msdetr.errors import MsdetrError

Overlay = Callable[[Config, str], dict[str, Any]]

# H-DETR: 1500 extra queries next to 300 primary; DINO: dn_number 100 for 900 queries.
HYBRID_QUERY_FACTOR = 5
HYBRID_K = 6
GROUP_COUNT = 6
DINO_DN_PER_QUERY = 100 / 900
MASK_POINTS_REFERENCE = 12544  # Mask2Former, for COCO images up to 1333 pixels
MASK_POINTS_MIN = 1024  # tiny_seg: 80-128 pixel images
MASK_REFERENCE_SIZE = 1333
MSDETR_ONE_TO_ONE_CLS = 1.0


def _weights(cfg: Config, stream: str, boxes_only: bool = True) -> dict[str, float]:
    """A stream's loss weights as a dict (cls, bbox, giou; plus mask, dice unless boxes_only)."""
    w = getattr(cfg.supervision.loss_weights, stream)
    names = ("cls", "bbox", "giou") if boxes_only else ("cls", "bbox", "giou", "mask", "dice")
    return {n: float(getattr(w, n)) for n in names}


def _refuse(where: str, method: str, reason: str) -> MsdetrError:
    return MsdetrError(f"{where}: method '{method}' {reason}")


def pp(cfg: Config, where: str) -> dict[str, Any]:
    m = cfg.model
    if not m.two_stage:
        raise _refuse(where, "pp", "(mixed query selection) needs a two-stage base; this base is single-stage "
                      "(model.two_stage: false, e.g. from dab); drop one of the two")
    if not m.with_box_refine:
        raise _refuse(where, "pp", "(look forward twice) needs model.with_box_refine: true in the base")
    return {"model": {"dropout": 0.0, "mixed_selection": True, "look_forward_twice": True}}


def dab(cfg: Config, where: str) -> dict[str, Any]:
    if cfg.model.mixed_selection:
        raise _refuse(where, "dab", "(single-stage anchor queries) cannot apply to a base with mixed query "
                      "selection (model.mixed_selection, Deformable-DETR++ / pp); use a base without it")
    return {"model": {"two_stage": False, "with_box_refine": True, "anchor_queries": True}}


def mask(cfg: Config, where: str) -> dict[str, Any]:
    size = max(cfg.data.transforms.train_max_size, cfg.data.transforms.eval_max_size)
    scaled = round(MASK_POINTS_REFERENCE * (size / MASK_REFERENCE_SIZE) ** 2)
    points = int(min(MASK_POINTS_REFERENCE, max(MASK_POINTS_MIN, scaled)))
    o2o = {**_weights(cfg, "one_to_one"), "mask": 5.0, "dice": 5.0}
    return {
        "model": {"mask_head": {"enabled": True, "mask_dim": cfg.model.hidden_dim}},
        "data": {"masks": True},
        "supervision": {
            "masks": {"num_points": points, "oversample_ratio": 3.0, "importance_sample_ratio": 0.75,
                      "cost_mask": 5.0, "cost_dice": 5.0, "matcher_points": points},
            "loss_weights": {"one_to_one": o2o},
        },
    }


def _check_denoising(cfg: Config, where: str, method: str) -> None:
    if not (cfg.model.two_stage or cfg.model.anchor_queries):
        raise _refuse(where, method, "(denoising boxes) needs a two-stage base or dab anchor queries; "
                      "this base has single-stage point queries")


def _denoising_supervision(cfg: Config) -> dict[str, Any]:
    return {"denoising_normalization": "groups", "loss_weights": {"denoising": _weights(cfg, "one_to_one")}}


def dn(cfg: Config, where: str) -> dict[str, Any]:
    _check_denoising(cfg, where, "dn")
    return {
        "model": {"denoising": {"method": "dn", "num_groups": 5, "label_noise": 0.2, "box_noise": 0.4,
                                "label_indicator": bool(cfg.model.anchor_queries)}},
        "supervision": _denoising_supervision(cfg),
    }


def dino(cfg: Config, where: str) -> dict[str, Any]:
    _check_denoising(cfg, where, "dino")
    dn_number = max(1, round(DINO_DN_PER_QUERY * cfg.model.num_queries))
    return {
        "model": {"denoising": {"method": "cdn", "dn_number": dn_number, "label_noise": 0.5, "box_noise": 0.4}},
        "supervision": _denoising_supervision(cfg),
    }


def hybrid(cfg: Config, where: str) -> dict[str, Any]:
    return {
        "model": {"hybrid": {"num_queries": HYBRID_QUERY_FACTOR * cfg.model.num_queries}},
        "supervision": {
            "hybrid": {"enabled": True, "k": HYBRID_K, "official_normalization": True},
            "loss_weights": {"hybrid": _weights(cfg, "one_to_one")},
            "encoder_match_on_anchors": False,
            "encoder_class_cost": True,
        },
    }


def group(cfg: Config, where: str) -> dict[str, Any]:
    return {
        "model": {"group": {"num_groups": GROUP_COUNT}},
        "supervision": {
            "group": {"enabled": True, "normalize_over_groups": True},
            "loss_weights": {"group": _weights(cfg, "one_to_one")},
        },
    }


def dac(cfg: Config, where: str) -> dict[str, Any]:
    return {
        "model": {"dac": {"enabled": True, "first_layer_self_attention": True}},
        "supervision": {
            "dac": {"enabled": True, "k": 6, "threshold": 0.4, "positive_fraction": 0.25,
                    "match_on_primary_boxes": True, "tau": 1.5, "normalizer_scale": 3.0},
            "classification_loss": {"dac": "iou_aware"},
            "loss_weights": {"dac": {"cls": 1.0, "bbox": 5.0, "giou": 2.0}},
            # as released: encoder proposals matched on their refined boxes with the class cost
            "encoder_match_on_anchors": False,
            "encoder_class_cost": True,
        },
    }


def align(cfg: Config, where: str) -> dict[str, Any]:
    overlay: dict[str, Any] = {
        "supervision": {
            "many_to_one": {"enabled": True, "k": 2, "final_k": 1, "tau": 1.5},
            "classification_loss": {"one_to_one": "iou_aware"},
            "iou_aware": {"alpha": 0.25, "gamma": 2.0},
            "loss_weights": {"one_to_one": {"cls": 1.0, "bbox": 5.0, "giou": 2.0}},
            "iou_epsilon": 1.0e-6,  # detrex's IoU / GIoU, as released
        },
    }
    if cfg.model.denoising.enabled:  # released box_noise_scale
        overlay["model"] = {"denoising": {"box_noise": 1.0}}
    return overlay


def ms_detr(cfg: Config, where: str) -> dict[str, Any]:
    m, s = cfg.model, cfg.supervision
    o2o = _weights(cfg, "one_to_one", boxes_only=False)
    weights: dict[str, Any] = {
        "one_to_one": {"cls": MSDETR_ONE_TO_ONE_CLS},
        "one_to_many": {**o2o, "cls": 2.0},
        "encoder": {"cls": 2.0, "bbox": 5.0, "giou": 2.0},
    }
    # Streams supervised like the one-to-one stream take its (MS-DETR) class weight.
    if m.hybrid.num_queries > 0:
        weights["hybrid"] = {"cls": MSDETR_ONE_TO_ONE_CLS}
    if m.group.num_groups > 1:
        weights["group"] = {"cls": MSDETR_ONE_TO_ONE_CLS}
    if m.denoising.enabled:
        weights["denoising"] = {"cls": MSDETR_ONE_TO_ONE_CLS}
    supervision: dict[str, Any] = {
        "strategy": "mixed",
        "one_to_many": {"k": 6, "threshold": 0.4, "mode": "official"},
        "loss_weights": weights,
    }
    if not m.dac.enabled:  # with DAC-DETR the encoder stays matched as DAC-DETR releases it
        supervision.update({"encoder_match_on_anchors": True, "encoder_class_cost": False})
    if s.classification_loss.one_to_one == "iou_aware":  # Align-DETR's loss on both streams
        supervision["classification_loss"] = {"one_to_many": "iou_aware"}
    model: dict[str, Any] = {"mixed_supervision": {"enabled": True, "tap": "c", "aux_ffn": True}}
    return {"model": model, "supervision": supervision}


METHODS: dict[str, tuple[Overlay, str]] = {
    "pp": (pp, "Deformable-DETR++ (mixed query selection, look forward twice)"),
    "dab": (dab, "DAB anchor queries"),
    "mask": (mask, "mask head"),
    "dn": (dn, "DN-DETR denoising"),
    "dino": (dino, "DINO contrastive denoising"),
    "hybrid": (hybrid, "H-DETR hybrid matching"),
    "group": (group, "Group DETR"),
    "dac": (dac, "DAC-DETR branch"),
    "align": (align, "Align-DETR loss and matching"),
    "ms_detr": (ms_detr, "MS-DETR mixed supervision"),
}
METHOD_ORDER = tuple(METHODS)
# Pairs that cannot go together (the reason completes "methods 'a' and 'b' ...").
EXCLUSIVE = {
    ("pp", "dab"): "exclude each other: pp selects two-stage queries, dab uses single-stage anchor queries",
    ("dn", "dino"): "exclude each other: both add denoising queries; pick one",
}
ALIASES = {"msdetr": "ms_detr", "ms-detr": "ms_detr", "hdetr": "hybrid", "h_detr": "hybrid",
           "group_detr": "group", "dn_detr": "dn", "align_detr": "align", "dac_detr": "dac"}
