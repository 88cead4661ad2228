"""Map COCO category ids to class indices and back.

Contiguous mode (default): ids of any value and order map to 0..K-1 in increasing id
order, e.g. {3, 17, 90} -> {0, 1, 2}. Raw mode: a category id is its own class index
(COCO: 91 classes, ids 1..90), as the official DETR checkpoints expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msdetr.errors import MsdetrError

UNMAPPED = -1


@dataclass(frozen=True)
class CategoryMap:
    """Both directions of the category id <-> class index mapping.

    label_to_category_id: list of length num_classes; entry i is the category id of
    class i, or -1 (`UNMAPPED`) for a class index no category uses.
    category_id_to_label: dict from category id to class index.
    class_names: list of length num_classes ("" for unused indices).
    """

    num_classes: int
    label_to_category_id: list[int]
    category_id_to_label: dict[int, int]
    class_names: list[str]
    raw_category_ids: bool

    @classmethod
    def from_categories(
        cls,
        categories: Sequence[dict],
        raw_category_ids: bool = False,
        num_classes: int | None = None,
        source: str = "annotations",
    ) -> CategoryMap:
        """Build from a COCO `categories` list ([{"id": int, "name": str}, ...]).

        Raises MsdetrError (naming `source`) on duplicate ids, or when `num_classes`
        cannot hold every category.
        """
        ids: list[int] = []
        names: dict[int, str] = {}
        for index, category in enumerate(categories):
            cat_id = category.get("id") if isinstance(category, dict) else None
            if isinstance(cat_id, bool) or not isinstance(cat_id, int):
                raise MsdetrError(f"{source}: categories[{index}]: 'id' must be an integer; fix the category")
            if cat_id in names:
                raise MsdetrError(f"{source}: category id {cat_id} appears twice; give each category one id")
            if raw_category_ids and cat_id < 0:
                raise MsdetrError(f"{source}: category id {cat_id} is negative; raw ids must be >= 0")
            ids.append(cat_id)
            names[cat_id] = str(category.get("name", cat_id))
        ids.sort()
        needed = (max(ids) + 1 if ids else 0) if raw_category_ids else len(ids)
        if num_classes is None:
            num_classes = needed
        elif num_classes < needed:
            how = f"the largest category id is {max(ids)}" if raw_category_ids else f"{needed} categories"
            raise MsdetrError(
                f"{source}: num_classes is {num_classes} but {how} need {needed} classes; "
                f"set num_classes to at least {needed} or leave it unset"
            )
        labels = ids if raw_category_ids else list(range(len(ids)))
        label_to_category_id = [UNMAPPED] * num_classes
        class_names = [""] * num_classes
        for label, cat_id in zip(labels, ids):
            label_to_category_id[label] = cat_id
            class_names[label] = names[cat_id]
        return cls(
            num_classes=num_classes,
            label_to_category_id=label_to_category_id,
            category_id_to_label=dict(zip(ids, labels)),
            class_names=class_names,
            raw_category_ids=raw_category_ids,
        )

    def labels_for(self, category_ids: np.ndarray) -> np.ndarray:
        """Class indices (int64) for an array of category ids; -1 where the id is unknown."""
        category_ids = np.asarray(category_ids, dtype=np.int64)
        known = np.array(sorted(self.category_id_to_label), dtype=np.int64)
        if known.size == 0:
            return np.full(category_ids.shape, UNMAPPED, dtype=np.int64)
        labels = np.array([self.category_id_to_label[int(i)] for i in known], dtype=np.int64)
        position = np.clip(np.searchsorted(known, category_ids), 0, known.size - 1)
        return np.where(known[position] == category_ids, labels[position], UNMAPPED)

    def category_ids_for(self, labels: np.ndarray) -> np.ndarray:
        """Category ids (int64) for an array of class indices; -1 for unused indices."""
        table = np.asarray(self.label_to_category_id, dtype=np.int64)
        return table[np.asarray(labels, dtype=np.int64)]
