"""COCO segmentations (polygons, uncompressed or compressed RLE) to binary masks.

Uses faster-coco-eval's RLE code, the same rasterization the COCO evaluator uses.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from faster_coco_eval.core import mask as coco_mask


def segmentation_problem(segmentation, height: int, width: int) -> str | None:
    """Why `segmentation` cannot be turned into a (height, width) mask, or None if it can."""
    if segmentation is None:
        return "no segmentation"
    if isinstance(segmentation, list):
        if not segmentation:
            return "segmentation is an empty list"
        for polygon in segmentation:
            if not isinstance(polygon, list) or not all(
                isinstance(v, Real) and not isinstance(v, bool) for v in polygon
            ):
                return "a segmentation polygon must be a list of numbers [x1, y1, x2, y2, ...]"
            if len(polygon) < 6 or len(polygon) % 2:
                return f"a segmentation polygon has {len(polygon)} numbers; it needs an even number >= 6"
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not isinstance(size, list) or len(size) != 2:
            return "RLE segmentation needs 'size': [height, width]"
        if list(size) != [height, width]:
            return f"RLE size {size} differs from the image size [{height}, {width}]"
        if not isinstance(counts, (list, str, bytes)):
            return "RLE segmentation needs 'counts' (a list or an encoded string)"
        if isinstance(counts, list) and sum(int(c) for c in counts) != height * width:
            return f"RLE counts sum to {sum(int(c) for c in counts)}, not height * width = {height * width}"
        return None
    return f"segmentation must be polygons (a list) or RLE (a dict), found {type(segmentation).__name__}"


def _to_rle(segmentation, height: int, width: int) -> dict:
    if isinstance(segmentation, list):
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return coco_mask.frPyObjects(segmentation, height, width)
    counts = segmentation["counts"]
    return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}


def segmentations_to_masks(segmentations: list, height: int, width: int) -> np.ndarray:
    """(n, height, width) uint8 masks (0/1) for n COCO segmentations.

    Each segmentation must pass `segmentation_problem` (checked when the dataset loads).
    """
    if not segmentations:
        return np.zeros((0, height, width), dtype=np.uint8)
    rles = [_to_rle(s, height, width) for s in segmentations]
    decoded = coco_mask.decode(rles)  # (height, width, n), Fortran order
    return np.ascontiguousarray(decoded.transpose(2, 0, 1))
