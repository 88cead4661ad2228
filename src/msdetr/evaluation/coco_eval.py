"""COCO box (and mask) metrics: the 12 standard numbers and per-class AP, with faster-coco-eval.

Detections with masks (mask head) are also evaluated as `segm`: the 12 numbers again, named
`segm_mAP`, ... (per-class AP stays the box AP). When the ground truth has no segmentation for
some object (a box-only dataset), the segm numbers are left out and `CocoMetrics.notes` says why:
a mask model still gets its box metrics on box-only data.

Why faster-coco-eval rather than pycocotools: it is a maintained C++ implementation of the
same protocol that gives pycocotools' numbers (a test checks that on the same detections)
several times faster on large validation sets, and it ships wheels for every platform we
support. pycocotools is only a test dependency, as the reference.

Detections are added per image in pixels of the original image file, so the numbers do not
depend on batch size, padding or the evaluation resize. Distributed: every rank adds its
images, `compute()` gathers them on rank 0 (an image seen twice counts once).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from faster_coco_eval import COCO, COCOeval_faster

from msdetr import collectives
from msdetr.evaluation.postprocess import Detections
from msdetr.evaluation.segm import has_masks, segm_records

STAT_NAMES = (
    "bbox_mAP",
    "bbox_mAP_50",
    "bbox_mAP_75",
    "bbox_mAP_s",
    "bbox_mAP_m",
    "bbox_mAP_l",
    "bbox_AR_1",
    "bbox_AR_10",
    "bbox_AR_100",
    "bbox_AR_s",
    "bbox_AR_m",
    "bbox_AR_l",
)
SEGM_STAT_NAMES = tuple("segm_" + name[len("bbox_"):] for name in STAT_NAMES)


@dataclass
class CocoMetrics:
    """stats: the 12 COCO numbers by `STAT_NAMES` (-1 where undefined, e.g. no small objects);
    per_class: AP@[.5:.95] by category name (-1 for categories without ground truth);
    num_images / num_detections: what was evaluated; notes: one-line remarks on what was left
    out (e.g. segm numbers on a ground truth without segmentations)."""

    stats: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, float] = field(default_factory=dict)
    num_images: int = 0
    num_detections: int = 0
    notes: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        """Flat dict for metrics.jsonl: the 12 stats, then `AP/<class>` entries."""
        record: dict[str, Any] = dict(self.stats)
        record.update({f"AP/{name}": ap for name, ap in self.per_class.items()})
        record["num_images"] = self.num_images
        return record

    def table(self) -> str:
        """Human-readable summary: the 12 numbers, then per-class AP."""
        lines = [f"{name:>13s}: {value:.4f}" for name, value in self.stats.items()]
        if self.per_class:
            lines.append("per-class AP@[.5:.95]:")
            lines += [f"  {name:>20s}: {value:.4f}" for name, value in self.per_class.items()]
        return "\n".join(lines)


def detections_to_coco(
    image_ids: Sequence[int], detections: Sequence[Detections], label_to_category_id: Sequence[int]
) -> np.ndarray:
    """(N, 7) float64 rows [image_id, x, y, w, h, score, category_id] for COCO's loadRes.

    detections: per image, boxes (K, 4) xyxy in original-image pixels; labels are class
    indices mapped through `label_to_category_id` (entries < 0 are dropped).
    """
    lookup = torch.as_tensor(list(label_to_category_id), dtype=torch.int64)
    rows = []
    for image_id, det in zip(image_ids, detections):
        if det.boxes.numel() == 0:
            continue
        boxes = det.boxes.detach().double().cpu()
        labels = det.labels.detach().cpu().long()
        category = lookup[labels.clamp(0, len(lookup) - 1)]
        valid = (labels < len(lookup)) & (category >= 0)
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        row = torch.cat(
            [
                torch.full((len(boxes), 1), float(image_id), dtype=torch.float64),
                xywh,
                det.scores.detach().double().cpu()[:, None],
                category.double()[:, None],
            ],
            1,
        )
        rows.append(row[valid])
    if not rows:
        return np.zeros((0, 7), dtype=np.float64)
    return torch.cat(rows).numpy()


class CocoEvaluator:
    """Accumulates detections and computes `CocoMetrics` against a COCO ground-truth json.

    ground_truth: path of the instances json, or the json as a dict.
    label_to_category_id: category id of each class index (-1 for unused indices).
    """

    def __init__(self, ground_truth: str | Path | dict, label_to_category_id: Sequence[int]):
        source = copy.deepcopy(ground_truth) if isinstance(ground_truth, dict) else str(ground_truth)
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco_gt = COCO(source)
        self.label_to_category_id = list(label_to_category_id)
        self._rows: list[np.ndarray] = []
        self._image_ids: set[int] = set()
        self._segm: list[dict] = []  # COCO segm results, when the detections carry masks
        self._with_masks = False

    def add(self, image_ids: Sequence[int], detections: Sequence[Detections]) -> None:
        """Detections of a batch: per image its id and `Detections` in original pixels."""
        self._image_ids.update(int(i) for i in image_ids)
        self._rows.append(detections_to_coco(image_ids, detections, self.label_to_category_id))
        if has_masks(detections):
            self._with_masks = True
            self._segm.extend(segm_records(image_ids, detections, self.label_to_category_id))

    def compute(self) -> CocoMetrics | None:
        """Gather from all ranks and evaluate; the metrics on rank 0, None on other ranks."""
        local = (np.concatenate(self._rows) if self._rows else np.zeros((0, 7)), sorted(self._image_ids),
                 self._segm if self._with_masks else None)
        gathered = collectives.gather_to_main(local)
        if gathered is None:
            return None
        rows_by_image: dict[int, np.ndarray] = {}
        segm_by_image: dict[int, list[dict]] = {}
        with_masks = False
        for rows, ids, segm in gathered:
            fresh = [image_id for image_id in ids if image_id not in rows_by_image]
            for image_id in fresh:  # an image evaluated on two ranks counts once
                rows_by_image[image_id] = rows[rows[:, 0] == image_id]
            if segm is not None:
                with_masks = True
                wanted = set(fresh)
                for record in segm:
                    if record["image_id"] in wanted:
                        segm_by_image.setdefault(record["image_id"], []).append(record)
        image_ids = sorted(rows_by_image)
        rows = np.concatenate([rows_by_image[i] for i in image_ids]) if image_ids else np.zeros((0, 7))
        segm = [r for i in image_ids for r in segm_by_image.get(i, [])] if with_masks else None
        return self._evaluate(rows, image_ids, segm)

    def _evaluate(self, rows: np.ndarray, image_ids: list[int], segm: list[dict] | None = None) -> CocoMetrics:
        cats = self.coco_gt.loadCats(self.coco_gt.getCatIds())
        metrics = CocoMetrics(num_images=len(image_ids), num_detections=len(rows))
        if segm is not None:
            problem = self._segm_ground_truth_problem(image_ids)
            if problem is not None:
                metrics.notes.append(f"segm metrics left out (box metrics only): {problem}")
                segm = None
        if len(rows) == 0 or not image_ids:
            metrics.stats = {name: 0.0 for name in STAT_NAMES}
            if segm is not None:
                metrics.stats.update({name: 0.0 for name in SEGM_STAT_NAMES})
            metrics.per_class = {c["name"]: 0.0 for c in cats}
            return metrics
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self.coco_gt.loadRes(rows)
            evaluator = COCOeval_faster(self.coco_gt, coco_dt, iouType="bbox")
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        metrics.stats = {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats[:12])}
        metrics.per_class = per_class_ap(evaluator.eval["precision"], evaluator.params.catIds, cats)
        if segm is not None:
            metrics.stats.update(zip(SEGM_STAT_NAMES, self._segm_stats(segm, image_ids)))
        return metrics

    def _segm_ground_truth_problem(self, image_ids: list[int]) -> str | None:
        """Why the ground truth of `image_ids` cannot score masks, or None when it can."""
        annotations = self.coco_gt.loadAnns(self.coco_gt.getAnnIds(imgIds=image_ids))
        missing = sum(1 for a in annotations if not a.get("segmentation"))
        if not missing:
            return None
        if missing == len(annotations):
            return "the ground truth has no segmentation (a box-only dataset)"
        return (f"{missing} of {len(annotations)} ground-truth objects have no segmentation; "
                f"give every object a polygon or RLE to get segm metrics")

    def _segm_stats(self, segm: list[dict], image_ids: list[int]) -> list[float]:
        """The 12 COCO numbers of the mask results (0 without any)."""
        if not segm:
            return [0.0] * len(SEGM_STAT_NAMES)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self.coco_gt.loadRes(copy.deepcopy(segm))
            evaluator = COCOeval_faster(self.coco_gt, coco_dt, iouType="segm")
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return [float(v) for v in evaluator.stats[:12]]


def per_class_ap(precision: np.ndarray, cat_ids: Sequence[int], cats: list[dict]) -> dict[str, float]:
    """AP@[.5:.95] per category from COCOeval's precision array (T, R, K, A, M): area "all",
    the largest maxDets; -1 where the category has no ground truth."""
    names = {c["id"]: c.get("name", str(c["id"])) for c in cats}
    out = {}
    for k, cat_id in enumerate(cat_ids):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        out[names.get(cat_id, str(cat_id))] = float(values.mean()) if values.size else -1.0
    return out
