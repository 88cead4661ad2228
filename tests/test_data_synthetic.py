"""The synthetic dataset: deterministic, valid (the doctor finds no error), varied, cached."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from msdetr.data import CocoDataset
from msdetr.data.doctor import check_dataset
from msdetr.data.synthetic import CATEGORIES, create_synthetic_dataset, ensure_synthetic_dataset, render_image
from msdetr.data.synthetic.cache import MARKER
from msdetr.errors import MsdetrError


def _digest(root) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_images_and_annotations():
    first = render_image(seed=3, split="train", index=5, size=96)
    again = render_image(seed=3, split="train", index=5, size=96)
    other = render_image(seed=4, split="train", index=5, size=96)
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    assert not (first[0].shape == other[0].shape and np.array_equal(first[0], other[0]))


def test_scenes_are_varied_and_boxes_fit_their_shapes():
    counts, categories, areas, colors = [], set(), [], set()
    for index in range(80):
        pixels, anns = render_image(seed=0, split="train", index=index, size=128)
        height, width = pixels.shape[:2]
        assert max(height, width) == 128 and min(height, width) >= 96
        counts.append(len(anns))
        for ann in anns:
            x, y, w, h = ann["bbox"]
            polygon = np.array(ann["segmentation"][0]).reshape(-1, 2)
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
            np.testing.assert_allclose([polygon[:, 0].min(), polygon[:, 1].min()], [x, y], atol=0.02)
            np.testing.assert_allclose([polygon[:, 0].max(), polygon[:, 1].max()], [x + w, y + h], atol=0.02)
            categories.add(ann["category_id"])
            areas.append(ann["area"])
            colors.add(tuple(pixels[int(y + h / 2), int(x + w / 2)]))
    assert 0 in counts and max(counts) >= 10
    assert categories == {c["id"] for c in CATEGORIES}
    areas = np.array(areas) * (256 / 128) ** 2  # COCO ranges at the default 256 px
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas < 96**2)).any() and (areas >= 96**2).any()
    assert len(colors) > 50


def test_written_dataset_is_deterministic_valid_and_loads(tmp_path):
    first = create_synthetic_dataset(tmp_path / "a", train=12, val=4, size=64, seed=1)
    second = create_synthetic_dataset(tmp_path / "b", train=12, val=4, size=64, seed=1)
    assert _digest(first) == _digest(second)
    report = check_dataset(first)
    assert report.ok, report.format()
    assert [s.source.name for s in report.splits] == ["train", "val"]
    assert not [i for i in report.issues if i.severity == "error"]
    dataset = CocoDataset(first / "annotations" / "instances_train.json", first / "train", masks=True)
    assert len(dataset) == 12 and dataset.num_classes == len(CATEGORIES)
    coco = json.loads((first / "annotations" / "instances_train.json").read_text())
    non_empty = next(i for i, img in enumerate(coco["images"])
                     if any(a["image_id"] == img["id"] for a in coco["annotations"]))
    _, target = dataset[non_empty]
    assert len(target["labels"]) > 0 and target["masks"].flatten(1).any(dim=1).all()


def test_ensure_generates_once_and_regenerates_incomplete(tmp_path):
    root = tmp_path / "synth"
    ensure_synthetic_dataset(root, train=3, val=2, size=48, seed=0)
    marker_time = (root / MARKER).stat().st_mtime_ns
    ensure_synthetic_dataset(root, train=3, val=2, size=48, seed=0)
    assert (root / MARKER).stat().st_mtime_ns == marker_time  # reused, not rewritten
    (root / MARKER).unlink()  # as if a write had been interrupted
    (root / "train" / "000000.png").unlink()
    ensure_synthetic_dataset(root, train=3, val=2, size=48, seed=0)
    assert (root / MARKER).exists() and (root / "train" / "000000.png").exists()
    ensure_synthetic_dataset(root, train=4, val=2, size=48, seed=0)  # other parameters: regenerated
    assert len(list((root / "train").glob("*.png"))) == 4
    assert not list(tmp_path.glob(".synth.partial-*"))


def test_never_overwrites_a_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(MsdetrError, match="not a synthetic dataset made by msdetr"):
        create_synthetic_dataset(root, train=1, val=1, size=48)
    assert (root / "notes.txt").read_text() == "keep me"


def test_simple_layout_has_few_large_shapes_and_its_own_cache(tmp_path, monkeypatch):
    counts, radii = [], []
    for index in range(60):
        pixels, anns = render_image(seed=0, split="train", index=index, size=128, layout="simple")
        short = min(pixels.shape[:2])
        counts.append(len(anns))
        radii += [max(a["bbox"][2], a["bbox"][3]) / 2 / short for a in anns]
    assert min(counts) >= 1 and max(counts) <= 4
    # Radius 10-40% of the shorter side; the box half-side of a rotated shape is at most the radius.
    assert min(radii) > 0.05 and max(radii) <= 0.4 + 1e-6
    standard = render_image(seed=0, split="train", index=3, size=128)
    assert not np.array_equal(standard[0], render_image(seed=0, split="train", index=3, size=128, layout="simple")[0])
    monkeypatch.setenv("MSDETR_CACHE", str(tmp_path))
    simple_root = ensure_synthetic_dataset(train=2, val=1, size=48, layout="simple")
    standard_root = ensure_synthetic_dataset(train=2, val=1, size=48)
    assert simple_root != standard_root and simple_root.name.endswith("-simple")
    description = json.loads((simple_root / "annotations" / "instances_val.json").read_text())["info"]["description"]
    assert "simple layout" in description
    with pytest.raises(MsdetrError, match="unknown layout"):
        create_synthetic_dataset(tmp_path / "bad", train=1, val=1, size=48, layout="crowded")


def test_coloured_layout_gives_each_class_its_own_hue_on_grey():
    """`coloured`: a shape's pixels have its class's hue (60 degrees apart, +-8 jitter), the
    background is grey; the shapes' number and sizes are those of `simple`."""
    import colorsys

    from msdetr.data.synthetic.scene import sample_scene

    rng = np.random.default_rng(0)
    background = np.full((128, 128, 3), 120, dtype=np.uint8)
    seen = set()
    for _ in range(40):
        objects = sample_scene(rng, background, "coloured")
        assert 1 <= len(objects) <= 4
        for obj in objects:
            hue = colorsys.rgb_to_hsv(*(c / 255 for c in obj.color))[0] * 360
            expected = obj.category * 60.0
            assert min(abs(hue - expected), 360 - abs(hue - expected)) <= 9.0, (obj.category, hue)
            seen.add(obj.category)
    assert seen == set(range(len(CATEGORIES)))
    pixels, anns = render_image(seed=0, split="val", index=1, size=96, layout="coloured")
    covered = np.zeros(pixels.shape[:2], dtype=bool)
    for ann in anns:
        x0, y0, w, h = ann["bbox"]
        covered[int(y0) : int(y0 + h) + 2, int(x0) : int(x0 + w) + 2] = True
    background = pixels[~covered].astype(int)
    assert background.size and (background.max(axis=1) - background.min(axis=1)).max() <= 1  # grey
