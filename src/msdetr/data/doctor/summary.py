"""Counts that tell whether a dataset looks as expected (classes, sizes)."""

from __future__ import annotations

import numpy as np

from msdetr.data.annotation_table import AnnotationTable, ImageTable
from msdetr.data.doctor.report import SplitSummary

SMALL_AREA = 32**2  # COCO's area ranges
LARGE_AREA = 96**2


def summarize(coco: dict, images: ImageTable, categories: dict[int, str]) -> SplitSummary:
    """Images, objects per class (non-crowd), crowd regions, COCO size histogram
    (by `area`, else box area) and the range of image sizes."""
    table = AnnotationTable.from_records(coco["annotations"])
    objects = table.category_id_ok & ~table.iscrowd
    ids, counts = np.unique(table.category_ids[objects], return_counts=True)
    per_id = dict(zip(ids.tolist(), counts.tolist()))
    per_class = {f"{name} (id {cat_id})": per_id.get(cat_id, 0)
                 for cat_id, name in sorted(categories.items())}
    unknown = sum(c for i, c in per_id.items() if i not in categories)
    if unknown:
        per_class["<unknown category ids>"] = unknown
    area = np.where(np.isfinite(table.area), table.area, table.boxes[:, 2] * table.boxes[:, 3])[objects]
    area = area[np.isfinite(area)]
    sizes = {
        "small": int((area < SMALL_AREA).sum()),
        "medium": int(((area >= SMALL_AREA) & (area < LARGE_AREA)).sum()),
        "large": int((area >= LARGE_AREA).sum()),
    }
    annotated = set(table.image_ids[objects].tolist())
    summary = SplitSummary(
        images=len(images),
        images_without_objects=int(sum(1 for i in images.ids.tolist() if i not in annotated)),
        objects=int(objects.sum()),
        crowd=int((table.iscrowd & table.category_id_ok).sum()),
        objects_per_class=per_class,
        box_sizes=sizes,
    )
    known = np.isfinite(images.widths) & np.isfinite(images.heights)
    if known.any():
        widths, heights = images.widths[known], images.heights[known]
        pixels = widths * heights
        small, large = int(np.argmin(pixels)), int(np.argmax(pixels))
        summary.min_size = (int(widths[small]), int(heights[small]))
        summary.max_size = (int(widths[large]), int(heights[large]))
        summary.median_short_side = float(np.median(np.minimum(widths, heights)))
    return summary
