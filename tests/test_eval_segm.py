"""Mask (segm) metrics: our evaluator against pycocotools on the same masks; RLE round trip."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
import torch

from msdetr.data.masks import segmentations_to_masks
from msdetr.evaluation.coco_eval import SEGM_STAT_NAMES, STAT_NAMES, CocoEvaluator
from msdetr.evaluation.postprocess import Detections
from msdetr.evaluation.segm import decode_rle, encode_masks, segm_records

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

CATEGORY_IDS = [2, 5]


def polygon_ground_truth(seed: int, num_images: int = 6) -> dict:
    """Images with triangles and quadrilaterals as polygon segmentations."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        h, w = int(rng.integers(60, 120)), int(rng.integers(60, 120))
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.png"})
        for _ in range(int(rng.integers(1, 5))):
            cx, cy, r = rng.uniform(15, w - 15), rng.uniform(15, h - 15), rng.uniform(5, 14)
            corners = int(rng.integers(3, 5))
            start = rng.uniform(0, 2 * np.pi)
            angles = start + np.arange(corners) * 2 * np.pi / corners + rng.uniform(-0.3, 0.3, corners)
            polygon = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).reshape(-1).tolist()
            xs, ys = polygon[0::2], polygon[1::2]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "segmentation": [polygon],
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                "area": float(r * r * 2), "iscrowd": 0, "category_id": int(rng.choice(CATEGORY_IDS)),
            })
    return {"images": images, "annotations": annotations,
            "categories": [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]}


def masked_detections(gt: dict, seed: int) -> tuple[list[int], list[Detections]]:
    """Per image: each ground-truth mask shifted by a few pixels (sometimes the wrong class), plus
    random rectangles with low scores."""
    rng = np.random.default_rng(seed)
    label_of = {c: i for i, c in enumerate(CATEGORY_IDS)}
    ids, dets = [], []
    for image in gt["images"]:
        h, w = image["height"], image["width"]
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        masks = segmentations_to_masks([a["segmentation"] for a in anns], h, w).astype(bool)
        masks = [np.roll(m, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1)) for m in masks]
        labels = [label_of[a["category_id"]] if rng.uniform() < 0.8 else int(rng.integers(0, 2)) for a in anns]
        for _ in range(int(rng.integers(0, 4))):
            m = np.zeros((h, w), bool)
            y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
            m[y : y + int(rng.integers(3, 10)), x : x + int(rng.integers(3, 10))] = True
            masks.append(m)
            labels.append(int(rng.integers(0, 2)))
        scores = rng.uniform(0.1, 1.0, len(masks))
        mask_tensor = torch.from_numpy(np.stack(masks))
        boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0]] * len(masks))
        ids.append(image["id"])
        dets.append(Detections(boxes, torch.tensor(scores, dtype=torch.float32), torch.tensor(labels), mask_tensor))
    return ids, dets


def pycocotools_segm_stats(gt: dict, records: list[dict]) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(records))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_segm_map_equals_pycocotools():
    gt = polygon_ground_truth(0)
    ids, dets = masked_detections(gt, 1)
    evaluator = CocoEvaluator(gt, [2, 5])
    evaluator.add(ids, dets)
    metrics = evaluator.compute()
    ours = np.array([metrics.stats[name] for name in SEGM_STAT_NAMES])
    reference = pycocotools_segm_stats(gt, segm_records(ids, dets, [2, 5]))
    assert ours[0] > 0.05 and ours[0] < 0.99  # a non-trivial case
    np.testing.assert_allclose(ours, reference, atol=1e-9)
    assert all(name in metrics.stats for name in STAT_NAMES)  # box metrics still there


def test_box_only_detections_report_no_segm():
    gt = polygon_ground_truth(2, num_images=2)
    ids, dets = masked_detections(gt, 3)
    evaluator = CocoEvaluator(gt, [2, 5])
    evaluator.add(ids, [Detections(d.boxes, d.scores, d.labels) for d in dets])
    assert not any(name in evaluator.compute().stats for name in SEGM_STAT_NAMES)


def test_rle_round_trip():
    masks = torch.rand(3, 17, 23) > 0.5
    rles = encode_masks(masks)
    assert all(isinstance(r["counts"], str) and r["size"] == [17, 23] for r in rles)
    assert np.array_equal(np.stack([decode_rle(r) for r in rles]).astype(bool), masks.numpy())
