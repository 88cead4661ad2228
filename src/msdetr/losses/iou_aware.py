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

summed (the criterion divides by the number of targets). The box losses of a pair
are scaled by the same w. This is the released Align-DETR loss (`IA_BCE_loss`, used
unchanged by the released DAC-DETR code); -log p and -log(1 - p) are computed as
softplus(-x) and softplus(x), the same values without overflow.

Shapes: P pairs, B images, Q queries, C classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from msdetr.ops.boxes import box_area, box_cxcywh_to_xyxy

QUALITY_FLOOR = 0.01


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> Tensor:
    """IoU of corresponding (P, 4) cxcywh boxes -> (P,): inter / (union + eps) (the released
    Align-DETR uses detrex's `box_iou`, eps 1e-6; `supervision.iou_epsilon`)."""
    a, b = box_cxcywh_to_xyxy(boxes1), box_cxcywh_to_xyxy(boxes2)
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (box_area(a) + box_area(b) - inter + eps)


@torch.no_grad()
def pair_quality(
    matched_logits: Tensor, matched_boxes: Tensor, target_boxes: Tensor, alpha: float, eps: float = 0.0
) -> Tensor:
    """(P,) float32 quality of each pair, no gradient.

    matched_logits: (P,) the logit of the target's class at the matched query;
    matched_boxes, target_boxes: (P, 4) cxcywh. eps: of the IoU (`aligned_box_iou`).
    """
    prob = matched_logits.float().sigmoid()
    iou = aligned_box_iou(matched_boxes.float(), target_boxes.float(), eps)
    return (prob.pow(alpha) * iou.pow(1 - alpha)).clamp(min=QUALITY_FLOOR)


@torch.no_grad()
def rank_within_targets(quality: Tensor, image: Tensor, target: Tensor) -> Tensor:
    """(P,) int64: each pair's place among the pairs of its (image, target), by decreasing
    quality (0 = best; equal qualities, e.g. at the 0.01 floor, keep the order in which the
    assigner listed the pairs, as the released code's sort does)."""
    num_pairs = quality.shape[0]
    if num_pairs == 0:
        return torch.zeros(0, dtype=torch.int64, device=quality.device)
    by_quality = torch.argsort(quality, descending=True, stable=True)
    _, key = torch.unique(torch.stack([image, target]), dim=1, return_inverse=True)
    key = key[by_quality]
    by_key = torch.argsort(key, stable=True)
    order = by_quality[by_key]  # pairs grouped by target, best first inside a group
    sorted_key = key[by_key]
    position = torch.arange(num_pairs, device=quality.device)
    first = torch.full((int(sorted_key.max()) + 1,), num_pairs, dtype=torch.int64, device=quality.device)
    first.scatter_reduce_(0, sorted_key, position, reduce="amin")
    rank = torch.empty_like(position)
    rank[order] = position - first[sorted_key]
    return rank


def prime_sample_weights(quality: Tensor, image: Tensor, target: Tensor, tau: float) -> Tensor:
    """(P,) float32 exp(-rank / tau), rank from `rank_within_targets`."""
    return torch.exp(-rank_within_targets(quality, image, target).float() / tau)


def iou_aware_classification_sum(
    logits: Tensor, image: Tensor, query: Tensor, label: Tensor, positive_target: Tensor, gamma: float
) -> Tensor:
    """The IoU-aware BCE of (B, Q, C) `logits`, summed (see the module docstring).

    image, query, label: (P,) the positive entries; positive_target: (P,) their target
    w * quality (no gradient). An entry named by several pairs takes its last pair's target.
    """
    logits = logits.float()
    prob = logits.sigmoid()
    neg_weight = prob.pow(gamma)
    pos_weight = torch.zeros_like(logits)
    positive = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    if image.numel():
        last = _last_per_entry(image, query, label, logits.shape)
        index = (image[last], query[last], label[last])
        target = positive_target[last].to(logits.dtype)
        pos_weight = pos_weight.index_put(index, target)
        positive = positive.index_put(index, torch.ones_like(target, dtype=torch.bool))
        neg_weight = torch.where(positive, (1 - pos_weight), neg_weight)
    return (neg_weight * F.softplus(logits) + pos_weight * F.softplus(-logits)).sum()


def _last_per_entry(image: Tensor, query: Tensor, label: Tensor, shape: torch.Size) -> Tensor:
    """(P,) bool, True on the last pair naming each (image, query, label) entry."""
    _, num_queries, num_classes = shape
    key = (image * num_queries + query) * num_classes + label
    position = torch.arange(key.shape[0], device=key.device)
    last = torch.full((shape[0] * num_queries * num_classes,), -1, dtype=torch.int64, device=key.device)
    last.scatter_reduce_(0, key, position, reduce="amax")
    return last[key] == position
