"""Instance masks as COCO results: run-length encoding and per-detection records.

RLEs come from faster-coco-eval's mask code (the same as pycocotools'); `counts` is decoded to
a str so the records are json-ready (COCO's results format).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from faster_coco_eval.core import mask as coco_mask
from torch import Tensor

from msdetr.evaluation.postprocess import Detections


def encode_masks(masks: Tensor) -> list[dict]:
    """(K, H, W) bool masks -> K compressed RLEs {"size": [H, W], "counts": str}."""
    if masks.shape[0] == 0:
        return []
    array = np.asfortranarray(masks.detach().cpu().numpy().astype(np.uint8).transpose(1, 2, 0))
    rles = coco_mask.encode(array)
    for rle in rles:
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
    return list(rles)


def decode_rle(rle: dict) -> np.ndarray:
    """A COCO RLE (counts as str or bytes) -> (H, W) uint8 mask."""
    counts = rle["counts"]
    encoded = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(encoded)


def segm_records(image_ids: Sequence[int], detections: Sequence[Detections],
                 label_to_category_id: Sequence[int]) -> list[dict]:
    """COCO segm results {image_id, category_id, segmentation, score} of detections with masks
    (original-image pixels); labels mapped through `label_to_category_id` (< 0 dropped)."""
    lookup = list(label_to_category_id)
    records = []
    for image_id, det in zip(image_ids, detections):
        if det.masks is None or det.masks.shape[0] == 0:
            continue
        labels = det.labels.detach().cpu().tolist()
        scores = det.scores.detach().cpu().tolist()
        for label, score, rle in zip(labels, scores, encode_masks(det.masks)):
            category = lookup[label] if 0 <= label < len(lookup) else -1
            if category < 0:
                continue
            records.append({"image_id": int(image_id), "category_id": int(category), "segmentation": rle,
                            "score": float(score)})
    return records


def has_masks(detections: Sequence[Detections]) -> bool:
    return any(d.masks is not None for d in detections)



