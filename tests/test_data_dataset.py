"""CocoDataset: box conversion, crowd handling, masks, bad boxes and bad images."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from faster_coco_eval.core import mask as coco_mask

from msdetr.config.data import IMAGENET_MEAN, IMAGENET_STD
from msdetr.data import CocoDataset
from msdetr.errors import MsdetrError
from support.data import annotation, colored_shapes_dataset, make_dataset, rectangle_polygon, write_json

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def _single_image(tmp_path, anns, width=100, height=200, categories=CATS):
    images = [{"id": 1, "file_name": "img.png", "width": width, "height": height}]
    return make_dataset(tmp_path, images, anns, categories)


def test_pixel_xywh_becomes_normalized_cxcywh(tmp_path):
    path = _single_image(tmp_path, [annotation(1, 1, 2, [10, 20, 30, 40])])
    dataset = CocoDataset(path, tmp_path / "train")
    image, target = dataset[0]
    assert image.shape == (3, 200, 100) and image.dtype == torch.float32
    expected = torch.tensor([[(10 + 15) / 100, (20 + 20) / 200, 30 / 100, 40 / 200]])
    torch.testing.assert_close(target["boxes"], expected)
    assert target["labels"].tolist() == [1]
    assert target["orig_size"].tolist() == [200, 100] and target["size"].tolist() == [200, 100]
    assert target["image_id"] == 1


def test_image_is_normalized_with_imagenet_statistics(tmp_path):
    path = _single_image(tmp_path, [])  # plain colour (40, 80, 120)
    image, _ = CocoDataset(path, tmp_path / "train")[0]
    expected = (torch.tensor([40, 80, 120]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(image[:, 5, 5], expected.float())


def test_crowd_left_out_of_targets_but_kept_in_the_json(tmp_path):
    anns = [annotation(1, 1, 1, [10, 10, 20, 20]),
            annotation(2, 1, 2, [0, 0, 60, 60], iscrowd=1),
            annotation(3, 1, 2, [50, 50, 10, 10])]
    path = _single_image(tmp_path, anns)
    dataset = CocoDataset(path, tmp_path / "train")
    _, target = dataset[0]
    assert target["labels"].tolist() == [0, 1]
    assert target["iscrowd"].tolist() == [0, 0]
    on_disk = json.loads(dataset.annotation_file.read_text())["annotations"]
    assert [a["iscrowd"] for a in on_disk] == [0, 1, 0]


def test_image_without_objects_has_empty_target(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 30, "height": 20},
              {"id": 2, "file_name": "b.png", "width": 30, "height": 20}]
    anns = [annotation(1, 1, 1, [1, 1, 5, 5], segmentation=[rectangle_polygon(1, 1, 5, 5)])]
    path = make_dataset(tmp_path, images, anns, CATS)
    _, target = CocoDataset(path, tmp_path / "train", masks=True)[1]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["masks"].shape == (0, 20, 30)


def test_masks_from_polygons_and_rle_match_the_annotation(tmp_path):
    height, width = 40, 50
    polygon = rectangle_polygon(5, 5, 20, 10)
    reference = np.zeros((height, width), dtype=np.uint8)
    reference[20:30, 30:45] = 1
    compressed = coco_mask.encode(np.asfortranarray(reference))
    counts_list = [int(c) for c in _uncompressed_counts(reference)]
    anns = [
        annotation(1, 1, 1, [5, 5, 20, 10], segmentation=[polygon]),
        annotation(2, 1, 2, [30, 20, 15, 10], segmentation={"size": [height, width],
                                                              "counts": compressed["counts"].decode()}),
        annotation(3, 1, 2, [30, 20, 15, 10], segmentation={"size": [height, width], "counts": counts_list}),
    ]
    path = _single_image(tmp_path, anns, width=width, height=height)
    _, target = CocoDataset(path, tmp_path / "train", masks=True)[0]
    masks = target["masks"]
    assert masks.dtype == torch.bool and masks.shape == (3, height, width)
    polygon_mask = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([polygon], height, width)))
    assert torch.equal(masks[0], torch.from_numpy(polygon_mask.astype(bool)))
    assert torch.equal(masks[1], torch.from_numpy(reference.astype(bool)))
    assert torch.equal(masks[2], masks[1])


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths starting with zeros (COCO's uncompressed RLE)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0] + runs


def test_missing_segmentation_with_masks_is_an_error(tmp_path):
    path = _single_image(tmp_path, [annotation(4, 1, 1, [1, 1, 5, 5])])
    with pytest.raises(MsdetrError, match="annotation 4: no segmentation; masks need"):
        CocoDataset(path, tmp_path / "train", masks=True)


def test_bad_boxes_are_clipped_and_counted(tmp_path, caplog):
    anns = [annotation(1, 1, 1, [90, 190, 30, 30]),   # sticks out: clipped to [90, 190, 100, 200]
            annotation(2, 1, 1, [10, 10, 0, 5]),      # zero width: dropped
            annotation(3, 1, 1, [150, 10, 10, 10]),   # completely outside: dropped
            annotation(4, 1, 2, [10, 10, 5, 5])]      # fine
    path = _single_image(tmp_path, anns)
    with caplog.at_level(logging.WARNING, logger="msdetr.data"):
        dataset = CocoDataset(path, tmp_path / "train", on_bad_box="clip")
    assert "clipped 1 box(es)" in caplog.text and "dropped 2" in caplog.text
    _, target = dataset[0]
    assert target["labels"].tolist() == [0, 1]
    torch.testing.assert_close(target["boxes"][0], torch.tensor([0.95, 0.975, 0.1, 0.05]))


@pytest.mark.parametrize("bbox", [[90, 190, 30, 30], [10, 10, 0, 5], [10, 10, float("nan"), 5]])
def test_bad_box_with_error_policy_names_the_annotation(tmp_path, bbox):
    path = _single_image(tmp_path, [annotation(1, 1, 1, [1, 1, 2, 2]), annotation(42, 1, 1, bbox)])
    with pytest.raises(MsdetrError, match=r"img.png: annotation 42: invalid box"):
        CocoDataset(path, tmp_path / "train", on_bad_box="error")


def test_unknown_category_is_an_error_naming_the_annotation(tmp_path):
    path = _single_image(tmp_path, [annotation(9, 1, 5, [1, 1, 2, 2])])
    with pytest.raises(MsdetrError, match="annotation 9: category id 5 is not among"):
        CocoDataset(path, tmp_path / "train")


def test_validation_split_uses_the_training_mapping(tmp_path):
    categories = [{"id": 10, "name": "x"}, {"id": 30, "name": "y"}]
    train = make_dataset(tmp_path, [{"id": 1, "file_name": "a.png", "width": 9, "height": 9}],
                         [annotation(1, 1, 30, [1, 1, 2, 2])], categories)
    val = make_dataset(tmp_path, [{"id": 1, "file_name": "b.png", "width": 9, "height": 9}],
                       [annotation(1, 1, 30, [1, 1, 2, 2])], [{"id": 30, "name": "y"}], split="val")
    train_set = CocoDataset(train, tmp_path / "train")
    val_set = CocoDataset(val, tmp_path / "val", category_map=train_set.category_map)
    assert val_set[0][1]["labels"].tolist() == [1]  # 30 is class 1 in training, not 0
    write_json(val, {"images": [], "annotations": [], "categories": [{"id": 99, "name": "z"}]})
    with pytest.raises(MsdetrError, match=r"category ids \[99\] are not among the training categories"):
        CocoDataset(val, tmp_path / "val", category_map=train_set.category_map)


def _two_images_first_corrupt(tmp_path):
    images = [{"id": 1, "file_name": "bad.png", "width": 20, "height": 10},
              {"id": 2, "file_name": "good.png", "width": 20, "height": 10}]
    path = make_dataset(tmp_path, images, [annotation(1, 2, 1, [1, 1, 5, 5])], CATS)
    (tmp_path / "train" / "bad.png").write_bytes(b"not an image at all")
    return path


def test_corrupt_image_stops_with_the_file_name(tmp_path):
    dataset = CocoDataset(_two_images_first_corrupt(tmp_path), tmp_path / "train")
    with pytest.raises(MsdetrError, match=r"bad.png: cannot decode image.*on_bad_image: skip"):
        dataset[0]


def test_corrupt_image_is_skipped_and_counted_when_asked(tmp_path, caplog):
    dataset = CocoDataset(_two_images_first_corrupt(tmp_path), tmp_path / "train", on_bad_image="skip")
    with caplog.at_level(logging.WARNING, logger="msdetr.data"):
        _, target = dataset[0]
    assert target["image_id"] == 2
    assert dataset.num_skipped_images == 1
    assert "bad.png" in caplog.text and "1 image(s) skipped so far" in caplog.text


def test_image_size_differing_from_the_json_is_a_bad_image(tmp_path):
    path = _single_image(tmp_path, [annotation(1, 1, 1, [1, 1, 5, 5])])
    coco = json.loads(path.read_text())
    coco["images"][0]["width"], coco["images"][0]["height"] = 200, 100
    write_json(path, coco)
    with pytest.raises(MsdetrError, match="the image is 100x200 .* says 200x100 .*swapped"):
        CocoDataset(path, tmp_path / "train")[0]


def test_structural_errors_point_to_the_record(tmp_path):
    path = _single_image(tmp_path, [annotation(1, 1, 1, [1, 1, 5, 5]), annotation(1, 1, 1, [2, 2, 5, 5])])
    with pytest.raises(MsdetrError, match="annotation id 1 is used several times"):
        CocoDataset(path, tmp_path / "train")
    write_json(path, {"images": [{"id": 1, "file_name": "img.png", "width": 100, "height": 200}],
                      "annotations": [{"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 2]}],
                      "categories": CATS})
    with pytest.raises(MsdetrError, match=r"annotation 3: 'bbox' must be \[x, y, width, height\]"):
        CocoDataset(path, tmp_path / "train")


def test_masks_follow_the_shapes_in_the_image(tmp_path):
    path, colors = colored_shapes_dataset(tmp_path)
    dataset = CocoDataset(path, tmp_path / "train", masks=True)
    image, target = dataset[1]
    pixels = image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    for mask, color in zip(target["masks"], [colors[4], colors[5]]):
        mean = pixels[:, mask].mean(dim=1) * 255
        torch.testing.assert_close(mean, torch.tensor(color, dtype=torch.float32), atol=8, rtol=0)
