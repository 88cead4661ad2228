"""COCO records as numpy columns, so checks and conversions run on whole arrays.

Malformed fields do not raise here: they become sentinel values plus a flag, and the
caller (dataset or doctor) decides what to say about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

MISSING_ID = np.iinfo(np.int64).min


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_column(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(values (N,) int64, ok (N,) bool): the integer field `key` of every record;
    MISSING_ID where it is absent or not an integer."""
    raw = [r.get(key) for r in records]
    ok = np.fromiter((_is_int(v) for v in raw), dtype=bool, count=len(raw))
    values = np.fromiter((v if _is_int(v) else MISSING_ID for v in raw), dtype=np.int64, count=len(raw))
    return values, ok


def _is_box(value) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
    )


def bbox_column(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) float64 pixel (x, y, w, h), malformed (N,) bool): NaN rows where
    `bbox` is absent or not a list of 4 numbers."""
    raw = [r.get("bbox") for r in records]
    if not raw:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool)
    try:
        boxes = np.asarray(raw, dtype=np.float64)
        if boxes.shape == (len(raw), 4) and not any(isinstance(v, bool) for b in raw for v in b):
            return boxes, np.zeros(len(raw), dtype=bool)
    except (TypeError, ValueError):
        pass
    malformed = np.fromiter((not _is_box(b) for b in raw), dtype=bool, count=len(raw))
    boxes = np.array([b if _is_box(b) else (np.nan,) * 4 for b in raw], dtype=np.float64)
    return boxes, malformed


@dataclass
class AnnotationTable:
    """Columns of a COCO `annotations` list (N annotations).

    ids, image_ids, category_ids: (N,) int64, MISSING_ID where absent or not integers
    (flags `id_ok`, `image_id_ok`, `category_id_ok`).
    boxes: (N, 4) float64 pixel (x, y, w, h); NaN rows where `bbox_malformed`.
    iscrowd: (N,) bool. area: (N,) float64, NaN where absent.
    """

    ids: np.ndarray
    id_ok: np.ndarray
    image_ids: np.ndarray
    image_id_ok: np.ndarray
    category_ids: np.ndarray
    category_id_ok: np.ndarray
    boxes: np.ndarray
    bbox_malformed: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray

    @classmethod
    def from_records(cls, annotations: list[dict]) -> AnnotationTable:
        ids, id_ok = int_column(annotations, "id")
        image_ids, image_id_ok = int_column(annotations, "image_id")
        category_ids, category_id_ok = int_column(annotations, "category_id")
        boxes, malformed = bbox_column(annotations)
        iscrowd = np.fromiter((bool(a.get("iscrowd", 0)) for a in annotations), dtype=bool,
                              count=len(annotations))
        area = np.fromiter(
            (a["area"] if isinstance(a.get("area"), Real) else np.nan for a in annotations),
            dtype=np.float64,
            count=len(annotations),
        )
        return cls(ids, id_ok, image_ids, image_id_ok, category_ids, category_id_ok, boxes, malformed,
                   iscrowd, area)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ImageTable:
    """Columns of a COCO `images` list (M images): ids (M,) int64, widths / heights
    (M,) float64 (NaN where absent or not positive numbers), file_names list[str|None]."""

    ids: np.ndarray
    id_ok: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    file_names: list

    @classmethod
    def from_records(cls, images: list[dict]) -> ImageTable:
        ids, id_ok = int_column(images, "id")

        def size(key: str) -> np.ndarray:
            values = [r.get(key) for r in images]
            return np.fromiter(
                (v if isinstance(v, Real) and not isinstance(v, bool) and v > 0 else np.nan for v in values),
                dtype=np.float64,
                count=len(values),
            )

        names = [r.get("file_name") if isinstance(r.get("file_name"), str) else None for r in images]
        return cls(ids, id_ok, size("width"), size("height"), names)

    def __len__(self) -> int:
        return len(self.ids)


def lookup(keys: np.ndarray, table_ids: np.ndarray) -> np.ndarray:
    """Position of each key in `table_ids` (unique), -1 where absent. (N,) int64."""
    if table_ids.size == 0:
        return np.full(keys.shape, -1, dtype=np.int64)
    order = np.argsort(table_ids, kind="stable")
    sorted_ids = table_ids[order]
    position = np.clip(np.searchsorted(sorted_ids, keys), 0, sorted_ids.size - 1)
    return np.where(sorted_ids[position] == keys, order[position], -1).astype(np.int64)
