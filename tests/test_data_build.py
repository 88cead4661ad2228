"""Dataset folders in COCO layout, and DataConfig -> datasets."""

from __future__ import annotations

import pytest

from msdetr.config.data import DataConfig, SplitConfig, SyntheticConfig, TransformConfig
from msdetr.data import build_datasets, find_split, find_splits, resolve_sources
from msdetr.errors import MsdetrError
from support.data import annotation, make_dataset

IMAGES = [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}]


def _coco_root(root, splits=("train2017", "val2017"), categories=None):
    categories = categories or [{"id": 5, "name": "x"}, {"id": 9, "name": "y"}]
    for split in splits:
        make_dataset(root, IMAGES, [annotation(1, 1, 9, [1, 1, 5, 5])], categories, split=split)
    return root


def test_splits_found_in_coco_layout(tmp_path):
    _coco_root(tmp_path)
    assert [s.name for s in find_splits(tmp_path)] == ["train2017", "val2017"]
    train = find_split(tmp_path, "train")  # by prefix
    assert train.name == "train2017" and train.images == tmp_path / "train2017"
    assert find_split(tmp_path, "val2017").annotations.name == "instances_val2017.json"
    with pytest.raises(MsdetrError, match="no split named 'test'"):
        find_split(tmp_path, "test")
    with pytest.raises(MsdetrError, match="no annotations/instances_<split>.json found"):
        find_splits(tmp_path / "train2017")
    [source] = resolve_sources(tmp_path / "annotations" / "instances_val2017.json")
    assert source.images == tmp_path / "val2017"


def test_build_from_root_shares_the_training_categories(tmp_path):
    _coco_root(tmp_path)
    config = DataConfig(root=str(tmp_path), transforms=TransformConfig().scaled_to(24))
    train, val = build_datasets(config)
    assert val.category_map is train.category_map
    assert train.num_classes == 2 and train.label_to_category_id == [5, 9]
    image, target = val[0]
    assert min(image.shape[-2:]) == 24 and target["labels"].tolist() == [1]


def test_build_from_explicit_files(tmp_path):
    _coco_root(tmp_path, splits=("a", "b"))
    config = DataConfig(
        train=SplitConfig(annotations=str(tmp_path / "annotations" / "instances_a.json"),
                          images=str(tmp_path / "a")),
        val=SplitConfig(annotations=str(tmp_path / "annotations" / "instances_b.json")),
        raw_category_ids=True,
    )
    train, val = build_datasets(config)
    assert train.num_classes == 10 and val.image_dir == tmp_path / "b"
    with pytest.raises(MsdetrError, match="data.val.images is set without data.val.annotations"):
        build_datasets(DataConfig(train=config.train, val=SplitConfig(images=str(tmp_path / "b"))))


def test_synthetic_data_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MSDETR_CACHE", str(tmp_path / "cache"))
    config = DataConfig(synthetic=SyntheticConfig(train=4, val=2, size=48, seed=2),
                        transforms=TransformConfig().scaled_to(48))
    train, val = build_datasets(config)
    assert len(train) == 4 and len(val) == 2 and train.class_names[0] == "circle"
    assert str(train.annotation_file).startswith(str(tmp_path / "cache"))
