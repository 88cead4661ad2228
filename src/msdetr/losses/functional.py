"""Loss functions on matched pairs, in float32. Sums, to be divided by the number of targets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from msdetr.ops.boxes import aligned_generalized_box_iou, box_cxcywh_to_xyxy


def focal_classification_sum(logits: Tensor, onehot: Tensor, alpha: float, gamma: float) -> Tensor:
    """Sigmoid focal loss (RetinaNet) summed over all queries and classes.

    logits, onehot: (B, Q, C). Equals the official `loss_ce * num_boxes`
    (the official mean over queries times Q is this sum).
    """
    return sigmoid_focal_loss(logits.float(), onehot, alpha=alpha, gamma=gamma, reduction="sum")


def l1_box_sum(pred_boxes: Tensor, target_boxes: Tensor, weights: Tensor | None = None) -> Tensor:
    """L1 distance of (P, 4) matched cxcywh boxes, summed over pairs and coordinates
    (each pair's distance times its weight when (P,) `weights` are given)."""
    if weights is None:
        return F.l1_loss(pred_boxes.float(), target_boxes.float(), reduction="sum")
    per_pair = F.l1_loss(pred_boxes.float(), target_boxes.float(), reduction="none").sum(-1)
    return (per_pair * weights).sum()


def giou_box_sum(pred_boxes: Tensor, target_boxes: Tensor, weights: Tensor | None = None, eps: float = 0.0) -> Tensor:
    """1 - GIoU of (P, 4) matched cxcywh boxes, summed over pairs (times (P,) `weights` if given);
    `eps` is added to the union and the enclosing area (`aligned_generalized_box_iou`)."""
    giou = aligned_generalized_box_iou(
        box_cxcywh_to_xyxy(pred_boxes.float()), box_cxcywh_to_xyxy(target_boxes.float()), eps
    )
    return (1 - giou).sum() if weights is None else ((1 - giou) * weights).sum()
