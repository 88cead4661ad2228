"""Align-DETR's IoU-aware classification loss and prime-sample weighting (float32 sums).

For a matched pair (query q, target t of class c) with predicted probability
p = sigmoid(logit[q, c]) and IoU u between the predicted and the target box, the
quality is

    quality = max(p^alpha * u^(1 - alpha), 0.01)          (no gradient; alpha 0.25)

Prime-sample weighting: the pairs of one target are ranked by decreasing quality
(rank 0 = the best, the "prime" sample) and weighted w = exp(-rank / tau). The
IoU-aware BCE over all (query, class) entries of a (B, Q, C) logit tensor is

    positive entry (q, c):  -(w * quality) log p - (1 - w * quality) log(1 - p)
    every other entry:      -p^gamma log(1 - p)                  (gamma 2; p^gamma keeps its gradient)

summed per task (the criterion divides by the task's normalizer). The box losses of a pair
are scaled by the same w. This is the released Align-DETR loss (`IA_BCE_loss`, used
unchanged by the released DAC-DETR code); -log p and -log(1 - p) are computed as
softplus(-x) and softplus(x), the same values without overflow.

Shapes: P pairs, R rows (tasks x images), Q queries, C classes. The criterion's batched path
(`losses.batched`) calls these for every task group with an IoU-aware stream or pair weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

QUALITY_FLOOR = 0.01


def pair_quality(matched_logits: Tensor, iou: Tensor, alpha: float) -> Tensor:
    """(P,) float32 quality of each pair, no gradient.

    matched_logits: (P,) the logit of the target's class at the matched query; iou: (P,) the IoU
    of the matched and the target box (`ops.boxes.aligned_box_iou_giou`, with the epsilon).
    """
    with torch.no_grad():
        prob = matched_logits.detach().float().sigmoid()
        return (prob.pow(alpha) * iou.detach().float().pow(1 - alpha)).clamp(min=QUALITY_FLOOR)


def rank_within_targets(quality: Tensor, key: Tensor, num_keys: int) -> Tensor:
    """(P,) int64: each pair's place among the pairs of its target by decreasing quality (0 = best;
    equal qualities, e.g. at the 0.01 floor, keep the order in which the assigner listed the pairs,
    as the released code's sort does). No gradient, no device-to-host transfer.

    quality: (P,) float32; key: (P,) int64 in [0, num_keys), the same for the pairs of one target
    (the criterion: row * targets in the batch + target).
    """
    with torch.no_grad():
        num_pairs = quality.shape[0]
        by_quality = torch.argsort(quality, descending=True, stable=True)
        key = key[by_quality]
        by_key = torch.argsort(key, stable=True)
        order = by_quality[by_key]  # pairs grouped by target, best first inside a group
        sorted_key = key[by_key]
        position = torch.arange(num_pairs, device=quality.device)
        first = torch.full((num_keys,), num_pairs, dtype=torch.int64, device=quality.device)
        first.scatter_reduce_(0, sorted_key, position, reduce="amin")
        rank = torch.empty_like(position)
        rank[order] = position - first[sorted_key]
        return rank


def prime_sample_weights(quality: Tensor, key: Tensor, num_keys: int, tau: float) -> Tensor:
    """(P,) float32 exp(-rank / tau), rank from `rank_within_targets` (same arguments)."""
    with torch.no_grad():
        return torch.exp(-rank_within_targets(quality, key, num_keys).float() / tau)


def iou_aware_bce(
    logits: Tensor, row: Tensor, query: Tensor, label: Tensor, positive_target: Tensor, gamma: float
) -> Tensor:
    """The (R, Q, C) elementwise IoU-aware BCE of (R, Q, C) float32 `logits` (see the module
    docstring).

    row, query, label: (P,) the positive entries; positive_target: (P,) their target
    w * quality (no gradient). An entry named by several pairs takes its last pair's target.
    """
    prob = logits.sigmoid()
    neg_weight = prob.pow(gamma)
    pos_weight = torch.zeros_like(logits)
    positive = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    last = _last_per_entry(row, query, label, logits.shape)
    index = (row[last], query[last], label[last])
    target = positive_target[last].to(logits.dtype)
    pos_weight = pos_weight.index_put(index, target)
    positive = positive.index_put(index, torch.ones_like(target, dtype=torch.bool))
    neg_weight = torch.where(positive, (1 - pos_weight), neg_weight)
    return neg_weight * F.softplus(logits) + pos_weight * F.softplus(-logits)


def _last_per_entry(row: Tensor, query: Tensor, label: Tensor, shape: torch.Size) -> Tensor:
    """(P,) bool, True on the last pair naming each (row, query, label) entry."""
    _, num_queries, num_classes = shape
    key = (row * num_queries + query) * num_classes + label
    position = torch.arange(key.shape[0], device=key.device)
    last = torch.full((shape[0] * num_queries * num_classes,), -1, dtype=torch.int64, device=key.device)
    last.scatter_reduce_(0, key, position, reduce="amax")
    return last[key] == position
