"""COCO metrics: our evaluator against pycocotools on the same detections."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from msdetr.evaluation.coco_eval import STAT_NAMES, CocoEvaluator, detections_to_coco
from msdetr.evaluation.postprocess import Detections

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

CATEGORY_IDS = [3, 7, 11]  # deliberately not contiguous


def random_ground_truth(seed: int, num_images: int = 12) -> dict:
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        h, w = int(rng.integers(200, 500)), int(rng.integers(200, 500))
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.png"})
        for _ in range(int(rng.integers(0, 6))):
            bw, bh = rng.uniform(5, w / 2), rng.uniform(5, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": int(rng.uniform() < 0.05),
                    "category_id": int(rng.choice(CATEGORY_IDS)),
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}


def noisy_detections(gt: dict, seed: int) -> tuple[list[int], list[Detections]]:
    """Per image: jittered copies of the ground truth (some with a wrong class) plus random boxes."""
    rng = np.random.default_rng(seed)
    label_of = {c: i for i, c in enumerate(CATEGORY_IDS)}
    ids, dets = [], []
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        boxes, scores, labels = [], [], []
        for a in anns:
            x, y, w, h = a["bbox"]
            jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
            boxes.append([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]])
            scores.append(rng.uniform(0.3, 1.0))
            labels.append(label_of[a["category_id"]] if rng.uniform() < 0.8 else int(rng.integers(0, 3)))
        for _ in range(int(rng.integers(0, 8))):
            x0, y0 = rng.uniform(0, image["width"] - 20), rng.uniform(0, image["height"] - 20)
            boxes.append([x0, y0, x0 + rng.uniform(5, 100), y0 + rng.uniform(5, 100)])
            scores.append(rng.uniform(0, 0.6))
            labels.append(int(rng.integers(0, 3)))
        ids.append(image["id"])
        dets.append(
            Detections(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                torch.tensor(scores, dtype=torch.float32),
                torch.tensor(labels),
            )
        )
    return ids, dets


def pycocotools_reference(gt: dict, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(rows)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval["precision"]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pycocotools(seed):
    gt = random_ground_truth(seed)
    ids, dets = noisy_detections(gt, seed + 100)
    evaluator = CocoEvaluator(gt, CATEGORY_IDS)
    for start in range(0, len(ids), 5):  # batches of any size
        evaluator.add(ids[start : start + 5], dets[start : start + 5])
    metrics = evaluator.compute()
    reference, precision = pycocotools_reference(gt, detections_to_coco(ids, dets, CATEGORY_IDS))
    ours = np.array([metrics.stats[name] for name in STAT_NAMES])
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert 0.05 < metrics.stats["bbox_mAP"] < 0.95  # a non-trivial case
    for k, cat in enumerate(CATEGORY_IDS):
        values = precision[:, :, k, 0, -1]
        assert metrics.per_class[f"class{cat}"] == pytest.approx(values[values > -1].mean(), abs=1e-6)


def test_perfect_detections_score_one_and_labels_map_to_category_ids():
    gt = random_ground_truth(3)
    label_of = {c: i for i, c in enumerate(CATEGORY_IDS)}
    evaluator = CocoEvaluator(gt, CATEGORY_IDS)
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]).reshape(-1, 4)
        labels = torch.tensor([label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        evaluator.add([image["id"]], [Detections(boxes, torch.ones(len(anns)), labels)])
    metrics = evaluator.compute()
    assert metrics.stats["bbox_mAP"] == pytest.approx(1.0)
    assert metrics.num_images == len(gt["images"])


def test_no_detections_give_zeros():
    gt = random_ground_truth(4)
    evaluator = CocoEvaluator(gt, CATEGORY_IDS)
    empty = Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    evaluator.add([1, 2], [empty, empty])
    metrics = evaluator.compute()
    assert metrics.stats["bbox_mAP"] == 0.0 and metrics.num_images == 2
