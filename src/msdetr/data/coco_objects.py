"""Turn a COCO json's annotations into per-image training objects, once, at load time.

Crowd annotations are left out (they stay in the json, where the evaluator reads them).
Structural problems (missing ids, unknown categories, malformed boxes) stop with the
annotation id. Invalid boxes follow the `on_bad_box` policy: "clip" clips them to the
image and drops those with no area left, logging the counts; "error" stops at the first
one with its annotation id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from msdetr.data.annotation_table import AnnotationTable, ImageTable, lookup
from msdetr.data.box_checks import clip_xywh_to_xyxy, find_box_problems
from msdetr.data.categories import UNMAPPED, CategoryMap
from msdetr.data.masks import segmentation_problem
from msdetr.errors import MsdetrError

logger = logging.getLogger("msdetr.data")

CHECK_HINT = "run `msdetr data check` to list every problem"


@dataclass
class ImageObjects:
    """Training objects of all images, grouped by image (K objects, M images).

    offsets: (M + 1,) int64; objects of image i are rows offsets[i]:offsets[i + 1].
    boxes: (K, 4) float32 pixel (x0, y0, x1, y1) in the json's image size.
    labels: (K,) int64 class indices. area: (K,) float32 (json `area`, else box area).
    annotation_ids: (K,) int64. segmentations: list of K, or None when not loaded.
    """

    offsets: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    area: np.ndarray
    annotation_ids: np.ndarray
    segmentations: list | None


def check_images(images: ImageTable, source: str) -> None:
    """Raise MsdetrError on an image record without a usable id, file name or size."""
    bad = np.flatnonzero(~images.id_ok)
    if bad.size:
        raise MsdetrError(f"{source}: images[{bad[0]}]: 'id' missing or not an integer; {CHECK_HINT}")
    unique, counts = np.unique(images.ids, return_counts=True)
    if (counts > 1).any():
        raise MsdetrError(f"{source}: image id {unique[counts > 1][0]} is used by several images; "
                          f"give each image its own id ({CHECK_HINT})")
    for index in range(len(images)):
        if images.file_names[index] is None:
            raise MsdetrError(f"{source}: image {images.ids[index]}: 'file_name' missing; {CHECK_HINT}")
    bad = np.flatnonzero(~(np.isfinite(images.widths) & np.isfinite(images.heights)))
    if bad.size:
        raise MsdetrError(f"{source}: image {images.ids[bad[0]]} ({images.file_names[bad[0]]}): 'width' and "
                          f"'height' must be positive numbers; {CHECK_HINT}")


def _where(images: ImageTable, table: AnnotationTable, row: int, image_pos: np.ndarray) -> str:
    position = image_pos[row]
    name = images.file_names[position] if position >= 0 else f"image {table.image_ids[row]}"
    return f"{name}: annotation {table.ids[row]}"


def _check_structure(table: AnnotationTable, source: str) -> None:
    bad = np.flatnonzero(~table.id_ok)
    if bad.size:
        raise MsdetrError(f"{source}: annotations[{bad[0]}]: 'id' missing or not an integer; {CHECK_HINT}")
    unique, counts = np.unique(table.ids, return_counts=True)
    if (counts > 1).any():
        raise MsdetrError(f"{source}: annotation id {unique[counts > 1][0]} is used several times; "
                          f"give each annotation its own id ({CHECK_HINT})")
    for flag, field in ((table.image_id_ok, "image_id"), (table.category_id_ok, "category_id")):
        bad = np.flatnonzero(~flag)
        if bad.size:
            raise MsdetrError(f"{source}: annotation {table.ids[bad[0]]}: '{field}' missing or not an "
                              f"integer; {CHECK_HINT}")


def build_image_objects(
    coco: dict,
    images: ImageTable,
    category_map: CategoryMap,
    source: str,
    on_bad_box: str = "clip",
    masks: bool = False,
) -> ImageObjects:
    """Validate and convert `coco["annotations"]` (see module doc) for `images`."""
    if on_bad_box not in ("clip", "error"):
        raise MsdetrError(f"data.on_bad_box: must be 'clip' or 'error', got {on_bad_box!r}")
    table = AnnotationTable.from_records(coco["annotations"])
    _check_structure(table, source)
    image_pos = lookup(table.image_ids, images.ids)
    orphans = np.flatnonzero(image_pos < 0)
    if orphans.size:
        logger.warning("%s: %d annotation(s) point to image ids not in 'images' (first: annotation %d); "
                       "they are ignored (%s)", source, orphans.size, table.ids[orphans[0]], CHECK_HINT)
    labels = category_map.labels_for(table.category_ids)
    rows = np.flatnonzero((image_pos >= 0) & ~table.iscrowd)
    unknown = rows[labels[rows] == UNMAPPED]
    if unknown.size:
        row = unknown[0]
        known = sorted(category_map.category_id_to_label)
        raise MsdetrError(f"{source}: {_where(images, table, row, image_pos)}: category id "
                          f"{table.category_ids[row]} is not among the categories {known}; "
                          f"fix the annotation or add the category ({CHECK_HINT})")
    malformed = rows[table.bbox_malformed[rows]]
    if malformed.size:
        row = malformed[0]
        raise MsdetrError(f"{source}: {_where(images, table, row, image_pos)}: 'bbox' must be "
                          f"[x, y, width, height] in pixels; {CHECK_HINT}")
    widths, heights = images.widths[image_pos[rows]], images.heights[image_pos[rows]]
    problems = find_box_problems(table.boxes[rows], widths, heights)
    if on_bad_box == "error" and problems.invalid.any():
        row = rows[np.flatnonzero(problems.invalid)[0]]
        box = [round(float(v), 2) for v in table.boxes[row]]
        raise MsdetrError(f"{source}: {_where(images, table, row, image_pos)}: invalid box {box} "
                          f"(x, y, width, height) for a {int(images.widths[image_pos[row]])}x"
                          f"{int(images.heights[image_pos[row]])} image; fix it or set on_bad_box: clip "
                          f"({CHECK_HINT})")
    xyxy = clip_xywh_to_xyxy(table.boxes[rows], widths, heights)
    with np.errstate(invalid="ignore"):
        usable = ~(problems.non_finite | problems.non_positive) & (xyxy[:, 2] > xyxy[:, 0]) & (
            xyxy[:, 3] > xyxy[:, 1])
    clipped = int((problems.outside & usable).sum())
    dropped = int((~usable).sum())
    if clipped or dropped:
        logger.warning("%s: clipped %d box(es) to the image and dropped %d with no usable area "
                       "(on_bad_box: clip; %s)", source, clipped, dropped, CHECK_HINT)
    rows, xyxy = rows[usable], xyxy[usable]
    segmentations = None
    if masks:
        segmentations = [coco["annotations"][r].get("segmentation") for r in rows]
        for row, segmentation in zip(rows, segmentations):
            size = int(images.heights[image_pos[row]]), int(images.widths[image_pos[row]])
            reason = segmentation_problem(segmentation, *size)
            if reason:
                raise MsdetrError(f"{source}: {_where(images, table, row, image_pos)}: {reason}; masks "
                                  f"need a polygon or RLE segmentation for every object")
    order = np.argsort(image_pos[rows], kind="stable")
    rows, xyxy = rows[order], xyxy[order]
    if segmentations is not None:
        segmentations = [segmentations[i] for i in order]
    box_area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    area = np.where(np.isfinite(table.area[rows]), table.area[rows], box_area)
    counts = np.bincount(image_pos[rows], minlength=len(images))
    return ImageObjects(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=xyxy.astype(np.float32),
        labels=labels[rows].astype(np.int64),
        area=area.astype(np.float32),
        annotation_ids=table.ids[rows],
        segmentations=segmentations,
    )
