"""The `model.mr_detr` and `supervision.mr_detr` config sections and their checks.

Released values (docs/mr_detr_reference.md, section 6): 10 instruction tokens; top-K k 6,
threshold 0.4, score 0.3 p + 0.7 IoU (Deformable) or 0.2 p + 0.8 IoU (DINO, Align); positives
capped at 225 an image whatever Q; route losses divided by N (Deformable) or 3N (DINO, Align).
"""

from __future__ import annotations

from dataclasses import dataclass

from msdetr.config.supervision import TopKOptions


@dataclass
class MrDetrModelConfig:
    """Mr. DETR's extra decoder routes (training only; `msdetr.methods.mr_detr`).

    enabled: add the instructive route (stream `mr_instructive`, second encoder head `mr_encoder`)
        and the sep route (stream `mr_sep`).
    instructive_route / sep_route: each route can be turned off alone (ablations; released: both).
    num_instructions: instruction tokens prepended in the instructive route's self-attention (10).
    encoder_size_bias: initial size bias of the second encoder box head (the release copies the
        layer-0 box head before resetting its size bias: -2.0).
    reference_eps: clamp of the inverse sigmoid of the routes' reference boxes (detrex: 1e-3; it
        matters for references at invalid proposals, which sit at 1.0).
    score_fusion: at inference, fuse each layer's class scores with the previous layer's (the
        released `p_l = sqrt((s_l^2.001 + p_{l-1}^1.853) / 2)`); changes the primary's final scores.
    """

    enabled: bool = False
    instructive_route: bool = True
    sep_route: bool = True
    num_instructions: int = 10
    encoder_size_bias: float = -2.0
    reference_eps: float = 1e-3
    score_fusion: bool = False


@dataclass
class MrDetrSupervisionConfig(TopKOptions):
    """Supervision of Mr. DETR's routes (`msdetr.methods.mr_detr.supervision`); needs `model.mr_detr`.

    enabled: top-K one-to-many on every layer of `mr_instructive` and `mr_sep`, each on its own
        predictions, and the encoder-proposal loss of the second encoder head (`mr_encoder`).
    k, threshold, class_weight, iou_weight, mode: of the top-K assigner (`TopKOptions`).
    positive_fraction: positives kept per image at most, as a fraction of the queries (1: no cap of
        this kind); max_positives: ... and as a count (random subset above the smaller of the two);
        released: 225 for every Q (its assigner hard-codes 900 queries x 0.25).
    normalizer_scale: route losses divided by this times N (released: 1 Deformable, 3 DINO / Align).
    tau: prime-sample weights exp(-rank / tau) on the routes' pairs (released Align: 1.5; 0: off); as
        released they scale the class target and the GIoU term, not the L1 term (`rank_weights_l1`).
    rank_weights_l1: the prime-sample weights also scale the routes' L1 term (msdetr's Align-DETR /
        DAC-DETR rule; released Mr. DETR: false).
    """

    enabled: bool = False
    positive_fraction: float = 1.0
    max_positives: int = 225
    normalizer_scale: float = 1.0
    tau: float = 0.0
    rank_weights_l1: bool = False


def model_problems(cfg: MrDetrModelConfig, two_stage: bool, mixed_selection: bool) -> list[tuple[str, object, str]]:
    """Invalid `model.mr_detr` values as (key under `model.`, value, what it must be)."""
    if not cfg.enabled:
        return []
    problems = []
    n = cfg.num_instructions
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        problems.append(("mr_detr.num_instructions", n, "an integer >= 0"))
    if not 0.0 < cfg.reference_eps < 0.5:
        problems.append(("mr_detr.reference_eps", cfg.reference_eps, "in (0, 0.5)"))
    if not (cfg.instructive_route or cfg.sep_route):
        problems.append(("mr_detr.sep_route", cfg.sep_route, "true when mr_detr.instructive_route is false"))
    if cfg.instructive_route and not (two_stage and mixed_selection):
        problems.append(("mr_detr.instructive_route", True,
                         "used with model.two_stage and model.mixed_selection (its queries are proposals of a "
                         "second encoder head with the learned content queries)"))
    return problems


def supervision_problems(cfg: MrDetrSupervisionConfig) -> list[tuple[str, object, str]]:
    """Invalid `supervision.mr_detr` values as (key under `supervision.`, value, what it must be)."""
    problems = cfg.problems("mr_detr")
    value = cfg.max_positives
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(("mr_detr.max_positives", value, "an integer >= 1"))
    if cfg.tau < 0:
        problems.append(("mr_detr.tau", cfg.tau, ">= 0"))
    if cfg.normalizer_scale <= 0:
        problems.append(("mr_detr.normalizer_scale", cfg.normalizer_scale, "> 0"))
    return problems
