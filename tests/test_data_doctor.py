"""The data doctor finds each kind of problem, names its file / annotation, and summarizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from msdetr.data.doctor import check_dataset
from msdetr.data.image_io import EXIF_ORIENTATION_TAG
from msdetr.errors import MsdetrError
from support.data import annotation, make_dataset, write_image, write_json

CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def _images(n: int, width: int = 64, height: int = 48) -> list[dict]:
    return [{"id": i + 1, "file_name": f"{i + 1:03d}.png", "width": width, "height": height}
            for i in range(n)]


def _issues(report, kind: str) -> list:
    return [i for i in report.issues if i.kind == kind]


def _one(report, kind: str):
    found = _issues(report, kind)
    assert len(found) == 1, f"expected one {kind}, got {found} (all: {report.issues})"
    return found[0]


def test_clean_dataset_passes_with_summary(tmp_path):
    anns = [annotation(1, 1, 1, [0, 0, 10, 10]),              # small (100)
            annotation(2, 1, 2, [0, 0, 40, 40]),              # medium (1600)
            annotation(3, 2, 2, [0, 0, 64, 48], area=9300.0),  # large by its area field
            annotation(4, 2, 1, [1, 1, 30, 30], iscrowd=1)]
    make_dataset(tmp_path, _images(3), anns, CATS)
    report = check_dataset(tmp_path)
    assert report.ok and report.issues == []
    summary = report.splits[0].summary
    assert (summary.images, summary.images_without_objects, summary.objects, summary.crowd) == (3, 1, 3, 1)
    assert summary.objects_per_class == {"cat (id 1)": 1, "dog (id 2)": 2}
    assert summary.box_sizes == {"small": 1, "medium": 1, "large": 1}
    text = report.format()
    assert "OK: 0 error(s)" in text and "dog (id 2)" in text


def test_file_problems_are_named(tmp_path):
    anns = [annotation(1, i, 1, [1, 1, 5, 5]) for i in (1, 2, 3, 4)]
    make_dataset(tmp_path, _images(4), anns, CATS)
    (tmp_path / "train" / "001.png").unlink()
    (tmp_path / "train" / "002.png").write_bytes(b"garbage")
    full = tmp_path / "train" / "003.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(full)
    full.write_bytes(full.read_bytes()[:3000])
    write_image(tmp_path / "train" / "004.png", 60, 48)
    report = check_dataset(tmp_path)
    assert not report.ok
    assert _one(report, "missing_image").where == "001.png (image 1)"
    unreadable = sorted(i.where for i in _issues(report, "unreadable_image"))
    assert unreadable == ["002.png (image 2)", "003.png (image 3)"]
    mismatch = _one(report, "size_mismatch")
    assert mismatch.where == "004.png (image 4)"
    assert "60x48" in mismatch.message and "64x48" in mismatch.message
    quick = check_dataset(tmp_path, decode_images=False)
    assert [i.where for i in _issues(quick, "unreadable_image")] == ["002.png (image 2)"]


def test_exif_rotated_file_with_unrotated_json_size(tmp_path):
    make_dataset(tmp_path, _images(1, 64, 48), [], CATS, write_files=False)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    Image.new("RGB", (64, 48)).save(tmp_path / "train" / "001.png", exif=exif)
    issue = _one(check_dataset(tmp_path), "size_mismatch")
    assert "EXIF orientation 6" in issue.message


def test_box_problems_name_the_annotation(tmp_path):
    anns = [
        annotation(10, 1, 1, [5, 5, 0, 10]),               # zero width
        annotation(11, 1, 1, [5, 5, -3, 10]),              # negative width
        annotation(12, 1, 1, [5, 5, float("nan"), 10]),    # not finite
        annotation(13, 1, 1, [50, 40, 30, 20]),            # extends past the border
        annotation(14, 1, 1, [100, 100, 5, 5]),            # completely outside
        annotation(15, 1, 1, [10, 20, 40, 45]),            # looks like x0 y0 x1 y1
        annotation(16, 1, 1, [1, 1, 10, 10]),              # fine
        annotation(17, 1, 1, [63.5, 0, 1.4, 5]),           # within the 1 px tolerance
    ]
    make_dataset(tmp_path, _images(1), anns, CATS)
    report = check_dataset(tmp_path)
    not_positive = sorted(i.where for i in _issues(report, "box_not_positive"))
    assert not_positive == ["001.png: annotation 10", "001.png: annotation 11"]
    assert _one(report, "box_not_finite").where == "001.png: annotation 12"
    outside = {i.where: i.message for i in _issues(report, "box_outside")}
    assert set(outside) == {"001.png: annotation 13", "001.png: annotation 14", "001.png: annotation 15"}
    assert "completely outside" in outside["001.png: annotation 14"]
    assert "looks like (x0, y0, x1, y1)" in outside["001.png: annotation 15"]
    assert "looks like" not in outside["001.png: annotation 13"]


def test_normalized_boxes_are_spotted(tmp_path):
    anns = [annotation(1, 1, 1, [0.1, 0.2, 0.3, 0.4]), annotation(2, 1, 2, [0.5, 0.5, 0.2, 0.1])]
    make_dataset(tmp_path, _images(1), anns, CATS)
    assert "normalized" in _one(check_dataset(tmp_path), "boxes_normalized").message


def test_id_and_reference_problems(tmp_path):
    images = _images(3)
    images[2]["id"] = 2  # duplicate image id
    anns = [
        annotation(1, 1, 1, [1, 1, 5, 5]),
        annotation(1, 1, 2, [2, 2, 5, 5]),       # duplicate annotation id
        annotation(3, 99, 1, [1, 1, 5, 5]),      # unknown image
        annotation(4, 1, 7, [1, 1, 5, 5]),       # unknown category
        {"id": 5, "image_id": 1, "category_id": 1},  # no bbox
    ]
    categories = CATS + [{"id": 2, "name": "dog again"}, {"id": 3, "name": "bird"}]
    make_dataset(tmp_path, images, anns, categories)
    report = check_dataset(tmp_path)
    assert _one(report, "duplicate_image_id").where == "image 2"
    assert _one(report, "duplicate_annotation_id").where == "annotation 1"
    assert _one(report, "unknown_image").where == "image 99: annotation 3"
    unknown_category = _one(report, "unknown_category")
    assert unknown_category.where == "001.png: annotation 4" and "category id 7" in unknown_category.message
    assert _one(report, "bad_annotation_record").where == "001.png: annotation 5"
    assert _one(report, "duplicate_category_id").where == "category 2"
    empty = _one(report, "empty_category")
    assert empty.where == "category 3 'bird'" and empty.severity == "warning"


def test_categories_that_do_not_fit_num_classes(tmp_path):
    make_dataset(tmp_path, _images(1), [annotation(1, 1, 2, [1, 1, 5, 5])], [{"id": 1, "name": "a"},
                                                                              {"id": 2, "name": "b"}])
    assert check_dataset(tmp_path, num_classes=2).ok
    assert "num_classes=1" in _one(check_dataset(tmp_path, num_classes=1), "category_out_of_range").message
    raw = check_dataset(tmp_path, num_classes=2, raw_category_ids=True)
    assert _one(raw, "category_out_of_range").where == "category 2 'b'"
    assert check_dataset(tmp_path, num_classes=3, raw_category_ids=True).ok


def test_bad_segmentation_is_a_warning(tmp_path):
    anns = [annotation(1, 1, 1, [1, 1, 5, 5], segmentation=[[1, 1, 5, 1, 5]]),
            annotation(2, 1, 1, [1, 1, 5, 5], segmentation={"size": [10, 10], "counts": "abc"})]
    make_dataset(tmp_path, _images(1), anns, CATS)
    report = check_dataset(tmp_path)
    found = {i.where: i for i in _issues(report, "bad_segmentation")}
    assert set(found) == {"001.png: annotation 1", "001.png: annotation 2"}
    assert "differs from the image size" in found["001.png: annotation 2"].message
    assert report.ok  # warnings only


def test_unreadable_json_and_missing_image_folder(tmp_path):
    root = tmp_path / "data"
    write_json(root / "annotations" / "instances_val.json", {"images": _images(1), "categories": CATS})
    (root / "annotations" / "instances_train.json").write_text("{ not json")
    report = check_dataset(root)
    assert [s.source.name for s in report.splits] == ["train", "val"]
    assert "not valid json" in _one(report, "bad_json").message
    assert _one(report, "missing_image_dir").where == str(root / "val")
    assert _one(report, "no_annotations").severity == "warning"


def test_json_file_with_images_folder(tmp_path):
    path = make_dataset(tmp_path, _images(1), [annotation(1, 1, 1, [1, 1, 5, 5])], CATS)
    moved = tmp_path / "elsewhere.json"
    moved.write_text(path.read_text())
    report = check_dataset(moved, images=tmp_path / "train")
    assert report.ok and report.splits[0].source.name == "elsewhere"
    assert check_dataset(path).ok  # images found through COCO layout
    with pytest.raises(MsdetrError, match="cannot tell where its images are"):
        check_dataset(moved)


def test_report_limits_lines_per_kind_but_counts_all(tmp_path):
    anns = [annotation(i, 1, 1, [1, 1, 0, 5]) for i in range(1, 31)]
    make_dataset(tmp_path, _images(1), anns, CATS)
    report = check_dataset(tmp_path)
    assert report.kinds()["box_not_positive"] == 30
    text = report.format(max_per_kind=20)
    assert text.count("box_not_positive") == 21 and "10 more" in text
    assert report.format(max_per_kind=None).count("box_not_positive") == 30
    assert json.loads((tmp_path / "annotations" / "instances_train.json").read_text())  # untouched
