"""Every transform keeps image, boxes and masks consistent with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from msdetr.config.data import IMAGENET_MEAN, IMAGENET_STD, TransformConfig
from msdetr.data import CocoDataset, build_eval_transforms, build_train_transforms
from msdetr.data.transforms import (
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResize,
    RandomSizeCrop,
    crop,
    shorter_side_size,
)
from support.data import annotation, make_dataset, write_json

WIDTH, HEIGHT = 120, 90
# one object per class, so a label tells which colour the object has
OBJECTS = [
    ([8, 8, 50, 8, 50, 40, 8, 40], (255, 0, 0)),
    ([70, 12, 112, 12, 91, 70], (0, 255, 0)),
    ([12, 52, 44, 52, 44, 84, 12, 84], (0, 0, 255)),
    ([58, 76, 116, 76, 116, 86, 58, 86], (255, 255, 0)),
]
NORMALIZE = Normalize(IMAGENET_MEAN, IMAGENET_STD)


@pytest.fixture(scope="module")
def shapes_json(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(canvas)
    anns = []
    for index, (polygon, color) in enumerate(OBJECTS):
        draw.polygon(polygon, fill=color)
        xs, ys = polygon[0::2], polygon[1::2]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        anns.append(annotation(index + 1, 1, index + 1, bbox, segmentation=[polygon]))
    path = make_dataset(root, [{"id": 1, "file_name": "shapes.png", "width": WIDTH, "height": HEIGHT}], anns,
                        [{"id": i + 1, "name": f"c{i}"} for i in range(len(OBJECTS))], write_files=False)
    canvas.save(root / "train" / "shapes.png")
    return path


def _sample(shapes_json, transform, seed=0):
    dataset = CocoDataset(shapes_json, shapes_json.parent.parent / "train", transform, masks=True)
    return dataset[(0, seed)]


def _assert_consistent(image: torch.Tensor, target: dict, tolerance: float = 2.0, tight: bool = True) -> None:
    """Boxes surround their masks (tightly unless a crop cut the shape: a clipped box
    may be looser than the visible part); the image shows each object's colour in its mask."""
    height, width = image.shape[-2:]
    assert target["size"].tolist() == [height, width]
    n = len(target["labels"])
    assert target["boxes"].shape == (n, 4) and target["masks"].shape == (n, height, width)
    assert target["area"].shape == (n,) and target["iscrowd"].shape == (n,)
    scale = torch.tensor([width, height, width, height])
    cx, cy, w, h = (target["boxes"] * scale).unbind(-1)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    pixels = image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    for box, mask, label in zip(boxes, target["masks"], target["labels"]):
        assert (box[2:] > box[:2]).all()
        if not mask.any():
            continue
        ys, xs = torch.nonzero(mask, as_tuple=True)
        mask_box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        assert (mask_box[:2] >= box[:2] - tolerance).all() and (mask_box[2:] <= box[2:] + tolerance).all(), \
            f"mask {mask_box.tolist()} outside box {box.tolist()}"
        assert not tight or (mask_box - box).abs().max() <= tolerance, \
            f"box {box.tolist()} not tight on {mask_box.tolist()}"
        inner = mask.clone()
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        if inner.sum() >= 4:
            mean = pixels[:, inner].mean(dim=1) * 255
            expected = torch.tensor(OBJECTS[int(label)][1], dtype=torch.float32)
            torch.testing.assert_close(mean, expected, atol=12, rtol=0)


def test_untransformed_sample_is_consistent(shapes_json):
    image, target = _sample(shapes_json, NORMALIZE)
    assert len(target["labels"]) == len(OBJECTS)
    _assert_consistent(image, target, tolerance=1.0)


def test_flip_mirrors_boxes_masks_and_image(shapes_json):
    plain_image, plain = _sample(shapes_json, NORMALIZE)
    image, target = _sample(shapes_json, Compose([RandomHorizontalFlip(p=1.0), NORMALIZE]))
    assert torch.equal(image, plain_image.flip(-1))
    assert torch.equal(target["masks"], plain["masks"].flip(-1))
    expected = plain["boxes"].clone()
    expected[:, 0] = 1 - expected[:, 0]
    torch.testing.assert_close(target["boxes"], expected)
    _assert_consistent(image, target, tolerance=1.0)


@pytest.mark.parametrize("size, max_size", [(45, None), (200, None), (200, 160)])
def test_resize_keeps_consistency(shapes_json, size, max_size):
    image, target = _sample(shapes_json, Compose([RandomResize([size], max_size), NORMALIZE]))
    expected = shorter_side_size(HEIGHT, WIDTH, size, max_size)
    assert tuple(image.shape[-2:]) == expected
    _assert_consistent(image, target)
    area_scale = expected[0] * expected[1] / (HEIGHT * WIDTH)
    plain = _sample(shapes_json, NORMALIZE)[1]
    torch.testing.assert_close(target["area"], plain["area"] * area_scale)


def test_crop_clips_boxes_and_drops_objects_left_outside(shapes_json):
    def fixed_crop(image, target, generator=None):
        return crop(image, target, top=20, left=30, height=50, width=60)  # rows 20..70, cols 30..90

    image, target = _sample(shapes_json, Compose([fixed_crop, NORMALIZE]))
    assert tuple(image.shape[-2:]) == (50, 60)
    # object 2 (x 12..44, y 52..84) partly inside; object 3 (y 76..86) is below the window
    assert target["labels"].tolist() == [0, 1, 2]
    _assert_consistent(image, target, tolerance=1.0, tight=False)
    boxes_px = target["boxes"] * torch.tensor([60, 50, 60, 50])
    torch.testing.assert_close(boxes_px[2], torch.tensor([7.0, 41.0, 14.0, 18.0]))  # x 30..44, y 52..70


@pytest.mark.parametrize("seed", range(6))
def test_random_size_crop_keeps_consistency(shapes_json, seed):
    image, target = _sample(shapes_json, Compose([RandomSizeCrop(30, 80), NORMALIZE]), seed=seed)
    assert 30 <= image.shape[-2] <= 80 and 30 <= image.shape[-1] <= 80
    _assert_consistent(image, target, tolerance=1.0, tight=False)


@pytest.mark.parametrize("seed", range(8))
def test_training_recipe_keeps_consistency_and_scales(shapes_json, seed):
    config = TransformConfig().scaled_to(100)
    image, target = _sample(shapes_json, build_train_transforms(config), seed=seed)
    height, width = image.shape[-2:]
    assert min(height, width) in config.train_min_sizes or max(height, width) <= config.train_max_size
    assert max(height, width) <= config.train_max_size
    _assert_consistent(image, target, tight=False)


def test_evaluation_recipe(shapes_json):
    image, target = _sample(shapes_json, build_eval_transforms(TransformConfig(eval_min_size=60)))
    assert tuple(image.shape[-2:]) == (60, 80)
    assert len(target["labels"]) == len(OBJECTS)
    _assert_consistent(image, target)


def test_same_seed_same_augmentation_other_seed_other(shapes_json):
    transform = build_train_transforms(TransformConfig().scaled_to(100))
    first, again = _sample(shapes_json, transform, seed=5), _sample(shapes_json, transform, seed=5)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1]["boxes"], again[1]["boxes"])
    shapes = {tuple(_sample(shapes_json, transform, seed=s)[0].shape) for s in range(10)}
    assert len(shapes) > 1


def test_shorter_side_rule_matches_deformable_detr():
    assert shorter_side_size(480, 640, 800, 1333) == (800, 1066)
    assert shorter_side_size(640, 480, 800, 1333) == (1066, 800)
    assert shorter_side_size(100, 1000, 800, 1333) == (133, 1330)  # longer side capped
    assert shorter_side_size(800, 900, 800, 1333) == (800, 900)  # already there
    assert shorter_side_size(50, 60, 800, None) == (800, 960)


def test_invalid_scales_are_reported():
    from msdetr.errors import MsdetrError

    with pytest.raises(MsdetrError, match="crop_min_size 90 > crop_max_size 80"):
        build_train_transforms(TransformConfig(crop_min_size=90, crop_max_size=80))
    with pytest.raises(MsdetrError, match="train_min_sizes"):
        build_train_transforms(TransformConfig(train_min_sizes=[]))


def test_scaled_recipe_keeps_proportions():
    config = TransformConfig().scaled_to(400)
    assert config.eval_min_size == 400 and config.eval_max_size == 666
    assert config.train_min_sizes[0] == 240 and config.train_min_sizes[-1] == 400
    assert (config.crop_min_size, config.crop_max_size) == (192, 300)


def test_empty_target_passes_every_transform(tmp_path):
    path = make_dataset(tmp_path, [{"id": 1, "file_name": "e.png", "width": 40, "height": 30}], [],
                        [{"id": 1, "name": "x"}])
    transform = build_train_transforms(TransformConfig().scaled_to(32))
    for seed in range(4):
        image, target = CocoDataset(path, tmp_path / "train", transform, masks=True)[(0, seed)]
        assert target["boxes"].shape == (0, 4) and target["masks"].shape[0] == 0
        assert target["masks"].shape[1:] == image.shape[-2:]
    write_json(path, {"images": [], "annotations": [], "categories": [{"id": 1}]})
    assert np.isclose(len(CocoDataset(path, tmp_path / "train")), 0)
