"""Checks of a COCO json's records (no image files read): ids, categories, boxes."""

from __future__ import annotations

import numpy as np

from msdetr.data.annotation_table import AnnotationTable, ImageTable, lookup
from msdetr.data.box_checks import find_box_problems
from msdetr.data.doctor.report import Issue, error, warning
from msdetr.data.masks import segmentation_problem

NOT_AN_INTEGER = "'{}' missing or not an integer"


def image_where(images: ImageTable, position: int) -> str:
    name = images.file_names[position] or "<no file_name>"
    if images.id_ok[position]:
        return f"{name} (image {images.ids[position]})"
    return f"images[{position}] {name}"


def _duplicates(values: np.ndarray) -> list[tuple[int, int]]:
    unique, counts = np.unique(values, return_counts=True)
    return [(int(v), int(c)) for v, c in zip(unique, counts) if c > 1]


def check_categories(
    categories: list[dict], num_classes: int | None, raw_category_ids: bool
) -> tuple[list[Issue], dict[int, str]]:
    """Issues with the `categories` list, and the usable categories (id -> name)."""
    issues: list[Issue] = []
    known: dict[int, str] = {}
    for index, category in enumerate(categories):
        cat_id = category.get("id")
        if isinstance(cat_id, bool) or not isinstance(cat_id, int):
            issues.append(error("bad_category_record", f"categories[{index}]", NOT_AN_INTEGER.format("id")))
        elif cat_id in known:
            issues.append(error("duplicate_category_id", f"category {cat_id}",
                                f"id used by several categories ('{known[cat_id]}', "
                                f"'{category.get('name')}'); give each category its own id"))
        else:
            known[cat_id] = str(category.get("name", cat_id))
    if not known:
        issues.append(error("no_categories", "categories", "no usable category; add the class list"))
    elif raw_category_ids:
        limit = num_classes if num_classes is not None else None
        for cat_id in sorted(known):
            if cat_id < 0 or (limit is not None and cat_id >= limit):
                issues.append(error("category_out_of_range", f"category {cat_id} '{known[cat_id]}'",
                                    f"raw category ids must be in [0, {limit}) for num_classes={limit}; "
                                    f"raise num_classes or use contiguous ids (no raw_category_ids)"))
    elif num_classes is not None and len(known) > num_classes:
        issues.append(error("category_out_of_range", "categories",
                            f"{len(known)} categories do not fit num_classes={num_classes}; set num_classes "
                            f">= {len(known)} or leave it unset"))
    return issues, known


def check_image_records(images: ImageTable) -> list[Issue]:
    """Ids, file names and sizes of the `images` list."""
    issues: list[Issue] = []
    for position in np.flatnonzero(~images.id_ok):
        issues.append(error("bad_image_record", image_where(images, position), NOT_AN_INTEGER.format("id")))
    for image_id, count in _duplicates(images.ids[images.id_ok]):
        issues.append(error("duplicate_image_id", f"image {image_id}",
                            f"id used by {count} images; give each image its own id"))
    for position in np.flatnonzero(~(np.isfinite(images.widths) & np.isfinite(images.heights))):
        issues.append(error("bad_image_record", image_where(images, position),
                            "'width' and 'height' must be positive numbers"))
    names = [n for n in images.file_names if n is not None]
    for position in [i for i, n in enumerate(images.file_names) if n is None]:
        issues.append(error("bad_image_record", image_where(images, position), "'file_name' missing"))
    seen: set[str] = set()
    for name in names:
        if name in seen:
            issues.append(warning("duplicate_file_name", name, "several image records use this file"))
        seen.add(name)
    return issues


def _box_text(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _outside_message(box: np.ndarray, width: float, height: float, disjoint: bool) -> str:
    x, y, w, h = box
    what = "lies completely outside" if disjoint else "extends past the border of"
    text = f"box {_box_text(box)} (x, y, width, height) {what} the {width:g}x{height:g} image"
    if x < w <= width and y < h <= height:
        text += "; it looks like (x0, y0, x1, y1): COCO wants (x, y, width, height)"
    return text + "; fix the box (training clips it, or stops with on_bad_box: error)"


def check_annotation_records(coco: dict, images: ImageTable, categories: dict[int, str]) -> list[Issue]:
    """Ids, image and category references, boxes and segmentations of `annotations`."""
    records = coco["annotations"]
    table = AnnotationTable.from_records(records)
    position = np.where(table.image_id_ok, lookup(table.image_ids, images.ids), -1)
    names = [images.file_names[p] if p >= 0 else None for p in position]

    def where(row: int) -> str:
        ann = f"annotation {table.ids[row]}" if table.id_ok[row] else f"annotations[{row}]"
        return f"{names[row] or 'image ' + str(records[row].get('image_id'))}: {ann}"

    issues: list[Issue] = []
    for row in np.flatnonzero(~table.id_ok):
        issues.append(error("bad_annotation_record", where(row), NOT_AN_INTEGER.format("id")))
    for ann_id, count in _duplicates(table.ids[table.id_ok]):
        issues.append(error("duplicate_annotation_id", f"annotation {ann_id}",
                            f"id used by {count} annotations; evaluation would lose all but one"))
    for row in np.flatnonzero(~table.image_id_ok):
        issues.append(error("bad_annotation_record", where(row), NOT_AN_INTEGER.format("image_id")))
    for row in np.flatnonzero(table.image_id_ok & (position < 0)):
        issues.append(error("unknown_image", where(row),
                            f"points to image id {table.image_ids[row]}, which is not in 'images'"))
    for row in np.flatnonzero(~table.category_id_ok):
        issues.append(error("bad_annotation_record", where(row), NOT_AN_INTEGER.format("category_id")))
    known = np.array(sorted(categories), dtype=np.int64)
    unknown = table.category_id_ok & ~np.isin(table.category_ids, known)
    for row in np.flatnonzero(unknown):
        issues.append(error("unknown_category", where(row),
                            f"category id {table.category_ids[row]} is not in 'categories'"))
    for row in np.flatnonzero(table.bbox_malformed):
        issues.append(error("bad_annotation_record", where(row), "'bbox' must be [x, y, width, height]"))
    found = position >= 0
    widths = np.where(found, images.widths[position], np.nan)
    heights = np.where(found, images.heights[position], np.nan)
    problems = find_box_problems(table.boxes, widths, heights)
    for row in np.flatnonzero(problems.non_finite & ~table.bbox_malformed):
        issues.append(error("box_not_finite", where(row), f"box {_box_text(table.boxes[row])} has a NaN or "
                            f"infinite coordinate; fix or delete the annotation"))
    for row in np.flatnonzero(problems.non_positive):
        issues.append(error("box_not_positive", where(row), f"box {_box_text(table.boxes[row])} has width "
                            f"{table.boxes[row, 2]:g} and height {table.boxes[row, 3]:g}; both must be > 0"))
    for row in np.flatnonzero(problems.outside):
        disjoint = bool(problems.no_overlap[row])
        message = _outside_message(table.boxes[row], widths[row], heights[row], disjoint)
        issues.append(error("box_outside", where(row), message))
    valid = ~(problems.non_finite | problems.non_positive) & ~table.iscrowd & found
    if valid.any() and np.nanmedian(np.minimum(widths, heights)) > 4 and (table.boxes[valid] <= 1.0).all():
        issues.append(error("boxes_normalized", "annotations",
                            f"all {int(valid.sum())} boxes have coordinates <= 1: they look normalized to "
                            f"[0, 1]; COCO 'bbox' is in pixels (x, y, width, height)"))
    for row, record in enumerate(records):
        if record.get("segmentation") not in (None, []) and found[row]:
            reason = segmentation_problem(record["segmentation"], int(heights[row]), int(widths[row])) \
                if np.isfinite(widths[row]) and np.isfinite(heights[row]) else None
            if reason:
                issues.append(warning("bad_segmentation", where(row), f"{reason} (matters only for masks)"))
    used = set(table.category_ids[table.category_id_ok & ~table.iscrowd].tolist())
    for cat_id in sorted(set(categories) - used):
        issues.append(warning("empty_category", f"category {cat_id} '{categories[cat_id]}'",
                              "no objects of this category; the model still gets a class for it"))
    return issues
