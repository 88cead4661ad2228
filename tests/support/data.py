"""Helpers for the data tests: write tiny COCO datasets (no tests in this module)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int, color=(40, 80, 120)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path)
    return path


def write_json(path: Path, coco: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))
    return path


def rectangle_polygon(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def make_dataset(
    root: Path,
    images: list[dict],
    annotations: list[dict],
    categories: list[dict],
    split: str = "train",
    write_files: bool = True,
) -> Path:
    """COCO layout under `root`: annotations/instances_<split>.json and <split>/ images.

    images: COCO image records; a plain-colour image of the record's size is written for
    each (unless write_files is False). Returns the json path."""
    if write_files:
        for record in images:
            write_image(root / split / record["file_name"], int(record["width"]), int(record["height"]))
    else:
        (root / split).mkdir(parents=True, exist_ok=True)
    coco = {"images": images, "annotations": annotations, "categories": categories}
    return write_json(root / "annotations" / f"instances_{split}.json", coco)


def annotation(ann_id: int, image_id: int, category_id: int, bbox, **extra) -> dict:
    record = {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": list(bbox),
              "iscrowd": 0, "area": float(bbox[2] * bbox[3]) if _finite(bbox) else 0.0}
    record.update(extra)
    return record


def _finite(bbox) -> bool:
    return all(isinstance(v, (int, float)) and np.isfinite(v) for v in bbox)


def colored_shapes_dataset(root: Path, split: str = "train") -> tuple[Path, dict[int, tuple[int, int, int]]]:
    """Two images with non-overlapping solid rectangles and triangles on black, with
    polygon segmentations. Returns (json path, annotation id -> RGB colour)."""
    from PIL import ImageDraw

    shapes = {
        1: [  # image 1, 120 x 90 (width x height)
            (1, 1, [10, 10, 50, 10, 50, 40, 10, 40], (255, 0, 0)),
            (2, 2, [70, 20, 110, 20, 90, 80], (0, 255, 0)),
            (3, 1, [15, 55, 40, 55, 40, 85, 15, 85], (0, 0, 255)),
        ],
        2: [  # image 2, 64 x 100
            (4, 2, [5, 5, 60, 5, 30, 50], (255, 255, 0)),
            (5, 1, [10, 60, 50, 60, 50, 95, 10, 95], (255, 0, 255)),
        ],
    }
    sizes = {1: (120, 90), 2: (64, 100)}
    images, annotations, colors = [], [], {}
    for image_id, objects in shapes.items():
        width, height = sizes[image_id]
        canvas = Image.new("RGB", (width, height), (0, 0, 0))
        draw = ImageDraw.Draw(canvas)
        for ann_id, category, polygon, color in objects:
            draw.polygon(polygon, fill=color)
            xs, ys = polygon[0::2], polygon[1::2]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            annotations.append(annotation(ann_id, image_id, category, bbox, segmentation=[polygon]))
            colors[ann_id] = color
        name = f"{image_id:03d}.png"
        (root / split).mkdir(parents=True, exist_ok=True)
        canvas.save(root / split / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    categories = [{"id": 1, "name": "box"}, {"id": 2, "name": "triangle"}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    return write_json(root / "annotations" / f"instances_{split}.json", coco), colors
