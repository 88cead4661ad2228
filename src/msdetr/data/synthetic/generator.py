"""Write the synthetic shapes dataset in COCO layout.

`<root>/annotations/instances_{train,val}.json` and PNG images in `<root>/{train,val}/`.
Each image's content depends only on (seed, split, index), so a dataset is the same
for a seed on every machine. Images have their longer side equal to `size`; half are
square, the others have the shorter side in [0.75, 1) x size. Boxes and polygon
masks describe each whole shape, also where a later shape covers part of it.
"""

from __future__ import annotations

import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from msdetr.data.synthetic.backgrounds import random_background
from msdetr.data.synthetic.scene import LAYOUTS, sample_scene
from msdetr.data.synthetic.shapes import SHAPE_NAMES

SPLITS = ("train", "val")
GENERATOR_VERSION = 1
# Category ids start at 1 as in COCO.
CATEGORIES = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_NAMES)]


def _image_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """(height, width)."""
    if rng.uniform() < 0.5:
        return size, size
    short = int(rng.integers(int(0.75 * size), size))
    return (short, size) if rng.uniform() < 0.5 else (size, short)


def _polygon_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def render_image(seed: int, split: str, index: int, size: int, layout: str = "standard",
                 ) -> tuple[np.ndarray, list[dict]]:
    """One image: ((H, W, 3) uint8 pixels, annotations without ids) for image `index`;
    `layout` names a `scene.LAYOUTS` entry."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    height, width = _image_size(rng, size)
    params = LAYOUTS[layout]
    background = random_background(rng, height, width, plain=params.plain_background, grey=params.class_colours)
    objects = sample_scene(rng, background, layout)
    canvas = Image.fromarray(background)
    draw = ImageDraw.Draw(canvas)
    annotations = []
    for obj in objects:
        polygon = np.round(obj.polygon, 2)
        draw.polygon([tuple(p) for p in polygon], fill=obj.color)
        x0, y0 = polygon.min(axis=0)
        x1, y1 = polygon.max(axis=0)
        annotations.append({
            "category_id": CATEGORIES[obj.category]["id"],
            "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
            "area": round(_polygon_area(polygon), 2),
            "segmentation": [polygon.reshape(-1).tolist()],
            "iscrowd": 0,
        })
    pixels = np.asarray(canvas)
    if rng.uniform() < params.noisy_fraction:
        noise = rng.standard_normal(pixels.shape, dtype=np.float32) * rng.uniform(3, 10)
        pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    return pixels, annotations


def _render_to_file(job: tuple[int, str, int, int, str, Path]) -> tuple[int, int, list[dict]]:
    seed, split, index, size, layout, path = job
    pixels, annotations = render_image(seed, split, index, size, layout)
    # fast settings: zlib level 1 with run-length strategy (25% faster, similar size)
    Image.fromarray(pixels).save(path, compress_level=1, compress_type=zlib.Z_RLE)
    return int(pixels.shape[0]), int(pixels.shape[1]), annotations


def write_split(root: Path, split: str, count: int, size: int, seed: int, workers: int | None = None,
                layout: str = "standard") -> dict:
    """Render `count` images into `root/<split>/`; return the COCO dict (also written).

    Images are rendered by `workers` threads (default: one per CPU); the result does
    not depend on the number of threads."""
    image_dir = root / split
    image_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{index:06d}.png" for index in range(count)]
    jobs = [(seed, split, index, size, layout, image_dir / name) for index, name in enumerate(names)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        rendered = list(pool.map(_render_to_file, jobs))
    images, annotations = [], []
    for index, (height, width, objects) in enumerate(rendered):
        image_id = index + 1
        images.append({"id": image_id, "file_name": names[index], "height": height, "width": width})
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **obj})
    coco = {
        "info": {"description": f"msdetr synthetic shapes ({split}, seed {seed}, size {size}, {layout} layout)",
                 "version": str(GENERATOR_VERSION)},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    with open(root / "annotations" / f"instances_{split}.json", "w", encoding="utf-8") as f:
        json.dump(coco, f, separators=(",", ":"))
    return coco


def write_synthetic_dataset(root: str | Path, train: int = 1000, val: int = 200, size: int = 256,
                            seed: int = 0, layout: str = "standard") -> Path:
    """Write both splits into `root` (created; existing files of the same names are
    overwritten). Use `msdetr.data.synthetic.create_synthetic_dataset` for a safe,
    atomic write with a completion marker."""
    root = Path(root)
    for split, count in zip(SPLITS, (train, val)):
        write_split(root, split, count, size, seed, layout=layout)
    return root
