"""Logging values computed next to the losses, without gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def class_error(matched_logits: Tensor, matched_labels: Tensor) -> Tensor:
    """100 - top-1 accuracy (%) of the (P, C) matched logits; 100 when there is no pair."""
    if matched_labels.numel() == 0:
        return torch.full((), 100.0, device=matched_logits.device)
    correct = (matched_logits.argmax(dim=-1) == matched_labels).float().mean()
    return 100.0 - 100.0 * correct


@torch.no_grad()
def cardinality_error(logits: Tensor, target_counts: Tensor) -> Tensor:
    """Mean absolute difference between the targets per image and the queries whose top
    class is not the last class: the official definition, kept for comparable logs (with a
    sigmoid classifier the last class is an ordinary class, so this is only a rough signal).

    logits: (B, Q, C); target_counts: (B,).
    """
    predicted = (logits.argmax(dim=-1) != logits.shape[-1] - 1).sum(dim=1)
    return F.l1_loss(predicted.float(), target_counts.float())
