"""`msdetr predict`: results json, drawings, unreadable files skipped and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import msdetr
from msdetr.cli import main
from support.checkpoints import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("predict") / "random.pt", class_names=["a", "b", "c"])


def _images(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_predict_writes_results_and_drawings(checkpoint, tmp_path, capsys):
    paths = _images(tmp_path / "in", [(40, 60), (64, 48), (50, 50)])
    out = tmp_path / "out"
    code = main(["predict", "--weights", str(checkpoint), str(tmp_path / "in"), "--out", str(out),
                 "--score", "0.0", "--batch-size", "2", "--device", "cpu", "--quiet"])
    assert code == 0
    assert "3 image(s), 108 detection(s)" in capsys.readouterr().out
    records = json.loads((out / "predictions.json").read_text())
    assert len(records) == 3 * 36
    assert {r["file_name"] for r in records} == {str(p) for p in paths}
    assert set(records[0]) == {"image_id", "file_name", "category_id", "category_name", "score", "bbox"}
    # the records are the API's detections: xyxy pixels -> COCO [x, y, w, h]
    model = msdetr.load(checkpoint)
    for image_id, path in enumerate(paths):
        dets = model.predict(path, score=0.0)
        mine = [r for r in records if r["image_id"] == image_id]
        assert [r["file_name"] for r in mine] == [str(path)] * len(dets)
        assert [r["category_name"] for r in mine] == dets.names
        assert [r["category_id"] for r in mine] == dets.category_ids
        xywh = torch.tensor([r["bbox"] for r in mine])
        expected = torch.cat([dets.boxes[:, :2], dets.boxes[:, 2:] - dets.boxes[:, :2]], 1)
        torch.testing.assert_close(xywh, expected, atol=0.011, rtol=0)
        torch.testing.assert_close(torch.tensor([r["score"] for r in mine]), dets.scores, atol=1e-5, rtol=0)
    # one drawing per image, the original's size, with boxes drawn on it
    for path in paths:
        drawn = np.asarray(Image.open(out / f"{path.stem}.png"))
        original = np.asarray(Image.open(path))
        assert drawn.shape == original.shape and (drawn != original).any()


def test_unreadable_files_are_reported_and_skipped(checkpoint, tmp_path, capsys):
    good = _images(tmp_path / "in", [(40, 40), (40, 40)])
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    code = main(["predict", "--weights", str(checkpoint), str(tmp_path / "in"), str(tmp_path / "missing.png"),
                 "--out", str(out), "--device", "cpu", "--quiet", "--no-draw"])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 image(s)" in captured.out and "2 input(s) failed" in captured.out
    err_lines = captured.err.strip().splitlines()
    assert any(str(broken) in line and "cannot decode" in line for line in err_lines)
    assert any(str(tmp_path / "missing.png") in line and "no such file" in line for line in err_lines)
    records = json.loads((out / "predictions.json").read_text())
    assert {r["file_name"] for r in records} <= {str(p) for p in good}
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]  # --no-draw


def test_duplicate_names_get_distinct_drawings(checkpoint, tmp_path):
    _images(tmp_path / "a", [(32, 32)])
    _images(tmp_path / "b", [(32, 32)])
    out = tmp_path / "out"
    assert main(["predict", "--weights", str(checkpoint), str(tmp_path / "a"), str(tmp_path / "b"),
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["img0-2.png", "img0.png"]


@pytest.mark.parametrize("args, message", [
    (["NOWHERE"], "no image files found"),
    (["IN", "--score", "1.5"], "--score must be in [0, 1]"),
    (["IN", "--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_bad_arguments_are_one_line_errors(checkpoint, tmp_path, capsys, args, message):
    _images(tmp_path / "in", [(32, 32)])
    args = [str(tmp_path / "in") if a == "IN" else str(tmp_path / "nowhere") if a == "NOWHERE" else a
            for a in args]
    code = main(["predict", "--weights", str(checkpoint), *args, "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("msdetr predict:")
    assert err.strip().splitlines()[-1].startswith("msdetr predict: error:")
