"""Category id <-> class index mapping, both ways, contiguous and raw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from msdetr.data import CocoDataset
from msdetr.data.categories import UNMAPPED, CategoryMap
from msdetr.errors import MsdetrError
from support.data import annotation, make_dataset

CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"}, {"id": 17, "name": "cat"}]


def test_contiguous_mapping_of_non_contiguous_ids_both_ways():
    cmap = CategoryMap.from_categories(CATEGORIES)
    assert cmap.num_classes == 3
    assert cmap.category_id_to_label == {3: 0, 17: 1, 90: 2}
    assert cmap.label_to_category_id == [3, 17, 90]
    assert cmap.class_names == ["car", "cat", "toothbrush"]
    ids = np.array([90, 3, 17, 17, 5])
    labels = cmap.labels_for(ids)
    assert labels.tolist() == [2, 0, 1, 1, UNMAPPED]
    assert cmap.category_ids_for(labels[:4]).tolist() == [90, 3, 17, 17]


def test_raw_mapping_keeps_ids_as_class_indices():
    cmap = CategoryMap.from_categories(CATEGORIES, raw_category_ids=True)
    assert cmap.num_classes == 91
    assert cmap.labels_for(np.array([3, 17, 90])).tolist() == [3, 17, 90]
    assert cmap.label_to_category_id[17] == 17 and cmap.label_to_category_id[90] == 90
    unused = [i for i in range(91) if i not in (3, 17, 90)]
    assert all(cmap.label_to_category_id[i] == UNMAPPED for i in unused)
    assert cmap.class_names[3] == "car" and cmap.class_names[4] == ""


def test_num_classes_larger_pads_and_smaller_fails():
    cmap = CategoryMap.from_categories(CATEGORIES, num_classes=5)
    assert cmap.label_to_category_id == [3, 17, 90, UNMAPPED, UNMAPPED]
    with pytest.raises(MsdetrError, match="num_classes is 2"):
        CategoryMap.from_categories(CATEGORIES, num_classes=2)
    with pytest.raises(MsdetrError, match="largest category id is 90"):
        CategoryMap.from_categories(CATEGORIES, raw_category_ids=True, num_classes=90)


def test_duplicate_category_id_fails():
    with pytest.raises(MsdetrError, match="category id 3 appears twice"):
        CategoryMap.from_categories(CATEGORIES + [{"id": 3, "name": "again"}])


@pytest.mark.parametrize("raw", [False, True])
def test_dataset_labels_map_back_to_the_annotated_category_ids(tmp_path, raw):
    images = [{"id": 7, "file_name": "a.png", "width": 50, "height": 40}]
    anns = [annotation(1, 7, 17, [1, 1, 10, 10]), annotation(2, 7, 90, [5, 5, 20, 20]),
            annotation(3, 7, 3, [2, 3, 4, 5])]
    path = make_dataset(tmp_path, images, anns, CATEGORIES)
    dataset = CocoDataset(path, tmp_path / "train", raw_category_ids=raw)
    _, target = dataset[0]
    back = [dataset.label_to_category_id[int(label)] for label in target["labels"]]
    assert back == [a["category_id"] for a in json.loads(path.read_text())["annotations"]]
    assert dataset.num_classes == (91 if raw else 3)
    assert int(target["labels"].max()) < dataset.num_classes
