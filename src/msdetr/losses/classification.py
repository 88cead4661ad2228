"""Classification terms of the criterion: a small registry of interchangeable losses.

A classification term turns the (R, Q, C) float32 logits of R = T * B rows (T tasks of a group,
B images each) and the group's matched pairs into an (R, Q, C) elementwise loss; the criterion
sums it per task and divides by the task's normalizer. Every term sees the same `ClassTargets`:

    row, query, label: (P,) int64, the positive entries (a pair p supervises query `query[p]` of
        row `row[p]` with class `label[p]`);
    quality: (P,) float32 without gradient, the matched pair's quality p^alpha * IoU^(1 - alpha)
        (`losses.iou_aware.pair_quality`), or None when no term of the group needs it;
    weight: (P,) float32 without gradient, the pair's prime-sample weight, or None (every pair 1).

Registered terms (`CLASSIFICATION_TERMS`, chosen per stream by `supervision.classification_loss`):

* ``focal``: sigmoid focal loss (RetinaNet) on one-hot targets; a query given to several targets
  takes the class of its last pair (`supervision.pairs.last_occurrence`); pair weights do not
  apply (they scale the box terms only).
* ``iou_aware``: Align-DETR's IoU-aware BCE (`losses.iou_aware`): the positive target of an entry
  is weight * quality (its last pair's, if several pairs name the same entry).

A new term (e.g. varifocal) is a class with `needs_quality` and `__call__(logits, targets)`, added
with `register_classification_term`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.losses.iou_aware import iou_aware_bce
from msdetr.supervision.pairs import last_occurrence


@dataclass(frozen=True)
class ClassTargets:
    """The positives of R rows of (Q, C) logits; see the module docstring (all (P,))."""

    row: Tensor
    query: Tensor
    label: Tensor
    quality: Tensor | None = None
    weight: Tensor | None = None


class ClassificationTerm(Protocol):
    """(R, Q, C) float32 logits and the pairs' `ClassTargets` -> (R, Q, C) elementwise loss."""

    needs_quality: bool

    def __call__(self, logits: Tensor, targets: ClassTargets) -> Tensor: ...


def onehot_focal_loss(logits: Tensor, onehot: Tensor, alpha: float, gamma: float) -> Tensor:
    """Elementwise sigmoid focal loss for 0/1 targets (any shape, float32): torchvision's
    `sigmoid_focal_loss(reduction="none")` value for value (with a 0/1 target its
    `p * t + (1 - p) * (1 - t)` is exactly p or 1 - p, and its alpha_t exactly alpha or
    1 - alpha), in fewer operations. alpha < 0: no class balancing."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    positive = onehot > 0
    p_t = torch.where(positive, p, 1 - p)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = torch.where(positive, alpha, 1 - alpha) * loss
    return loss


@dataclass(frozen=True)
class FocalTerm:
    """Sigmoid focal loss on one-hot targets (the last pair of a query decides its class)."""

    alpha: float = 0.25
    gamma: float = 2.0
    needs_quality = False

    def __call__(self, logits: Tensor, targets: ClassTargets) -> Tensor:
        num_rows, num_queries, _ = logits.shape
        winner = last_occurrence(targets.row, targets.query, num_rows, num_queries)
        onehot = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
        onehot[targets.row[winner], targets.query[winner], targets.label[winner]] = 1.0
        return onehot_focal_loss(logits, onehot, self.alpha, self.gamma)


@dataclass(frozen=True)
class IouAwareTerm:
    """Align-DETR's IoU-aware BCE; positive targets weight * quality (`losses.iou_aware`)."""

    gamma: float = 2.0
    needs_quality = True

    def __call__(self, logits: Tensor, targets: ClassTargets) -> Tensor:
        if targets.quality is None:
            raise ValueError("the IoU-aware classification term needs the pairs' quality")
        positive_target = targets.quality if targets.weight is None else targets.quality * targets.weight
        return iou_aware_bce(logits, targets.row, targets.query, targets.label, positive_target, self.gamma)


@dataclass(frozen=True)
class ClassificationSettings:
    """What a term factory may read: the focal alpha / gamma, and the IoU-aware gamma."""

    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    iou_aware_gamma: float = 2.0


CLASSIFICATION_TERMS: dict[str, Callable[[ClassificationSettings], ClassificationTerm]] = {
    "focal": lambda s: FocalTerm(s.focal_alpha, s.focal_gamma),
    "iou_aware": lambda s: IouAwareTerm(s.iou_aware_gamma),
}


def register_classification_term(name: str, factory: Callable[[ClassificationSettings], ClassificationTerm]) -> None:
    """Make `name` a classification term (a stream's `classification_loss` may then name it)."""
    CLASSIFICATION_TERMS[name] = factory


def classification_term(name: str, settings: ClassificationSettings) -> ClassificationTerm:
    """The registered term `name`, built with `settings`."""
    factory = CLASSIFICATION_TERMS.get(name)
    if factory is None:
        raise MsdetrError(
            f"supervision config: classification_loss: unknown loss {name!r}; use one of "
            f"{sorted(CLASSIFICATION_TERMS)}"
        )
    return factory(settings)
