"""COCO-style detection results for arbitrary image files.

One record per detection, as in COCO's results format (`image_id`, `category_id`,
`bbox` as [x, y, width, height] in pixels, `score`; with a mask head also `segmentation`,
the mask as compressed RLE {"size": [H, W], "counts": str}), plus `file_name` and
`category_name` so the file is readable without an annotation file. `image_id` is
the image's position in the processed list (0, 1, ...).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from msdetr.evaluation.segm import encode_masks
from msdetr.inference.detector import ImageDetections


def detection_records(image_id: int, file_name: str, detections: ImageDetections) -> list[dict]:
    """The records of one image's detections (see module doc)."""
    records = []
    rles = encode_masks(detections.masks) if detections.masks is not None else None
    for i, (box, score, name, category_id) in enumerate(zip(detections.boxes.tolist(), detections.scores.tolist(),
                                                            detections.names, detections.category_ids)):
        x0, y0, x1, y1 = box
        records.append({
            "image_id": image_id,
            "file_name": file_name,
            "category_id": int(category_id),
            "category_name": name,
            "score": round(float(score), 5),
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        })
        if rles is not None:
            records[-1]["segmentation"] = rles[i]
    return records


def write_json(path: str | Path, payload) -> Path:
    """Write json atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
