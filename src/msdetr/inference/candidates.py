"""Candidate boxes per ground-truth object (MS-DETR paper, Fig. 1 and Fig. 7).

For each object, the final-layer query boxes (all queries, whatever their class
score) are ranked by IoU with the object's box. Mixed supervision trains the
candidates themselves, so its top candidates sit tighter around the objects; the
summary reports the mean IoU of each object's top-1, top-5 and top-20 candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou

SUMMARY_RANKS = (1, 5, 20)


@dataclass
class ObjectCandidates:
    """The top-k candidates of n objects of one image.

    ious:  (n, k) IoU of each object's k best query boxes, descending
    index: (n, k) their query indices
    """

    ious: Tensor
    index: Tensor


def top_candidates(query_boxes: Tensor, object_boxes: Tensor, k: int = 20) -> ObjectCandidates:
    """Rank the queries of one image by IoU with each object.

    query_boxes:  (Q, 4) normalized (cx, cy, w, h), final decoder layer
    object_boxes: (n, 4) normalized (cx, cy, w, h), same image
    k:            candidates kept per object (at most Q)
    IoU is invariant to scaling each axis, so normalized boxes give the pixel IoU.
    """
    queries = box_convert(query_boxes.float(), "cxcywh", "xyxy")
    objects = box_convert(object_boxes.float().to(queries.device), "cxcywh", "xyxy")
    iou = box_iou(objects, queries)  # (n, Q)
    ious, index = iou.topk(min(k, iou.shape[1]), dim=1)
    return ObjectCandidates(ious, index)


@dataclass
class CandidateSummary:
    """Mean over objects of the mean IoU of each object's top-r candidates, r in `ranks`."""

    ranks: tuple[int, ...] = SUMMARY_RANKS
    objects: int = 0
    _sums: dict[int, float] = field(default_factory=dict)

    def add(self, candidates: ObjectCandidates) -> None:
        ious = candidates.ious.double().cpu()
        if ious.shape[0] == 0:
            return
        self.objects += int(ious.shape[0])
        for r in self.ranks:
            self._sums[r] = self._sums.get(r, 0.0) + float(mean_topk_iou(ious, r).sum())

    def means(self) -> dict[str, float]:
        """{"top1": ..., "top5": ..., "top20": ...} (NaN without objects)."""
        return {f"top{r}": (self._sums.get(r, 0.0) / self.objects if self.objects else float("nan"))
                for r in self.ranks}


def mean_topk_iou(ious: Tensor, r: int) -> Tensor:
    """ious: (n, k) descending -> (n,) mean IoU of the top-r candidates of each object."""
    return ious[:, : min(r, ious.shape[1])].mean(dim=1) if ious.shape[0] else torch.zeros(0)
