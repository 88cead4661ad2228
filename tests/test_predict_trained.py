"""A trained tiny checkpoint: `msdetr predict` puts boxes on the right objects."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.ops import box_iou

from msdetr.cli import main
from support.checkpoints import trained_squares_checkpoint


@pytest.mark.slow
def test_predicted_boxes_land_on_the_objects(tmp_path, capsys):
    checkpoint, data = trained_squares_checkpoint()
    out = tmp_path / "predictions"
    assert main(["predict", "--weights", str(checkpoint), str(data / "val"), "--out", str(out),
                 "--score", "0.0", "--device", "cpu", "--quiet"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    coco = json.loads((data / "annotations" / "instances_val.json").read_text())
    truth = {str(data / "val" / image["file_name"]): a
             for image in coco["images"] for a in coco["annotations"] if a["image_id"] == image["id"]}
    hits = []
    for file_name, annotation in truth.items():
        best = max((r for r in records if r["file_name"] == file_name), key=lambda r: r["score"])
        x, y, w, h = best["bbox"]
        gx, gy, gw, gh = annotation["bbox"]
        iou = box_iou(torch.tensor([[x, y, x + w, y + h]]), torch.tensor([[gx, gy, gx + gw, gy + gh]])).item()
        hits.append(iou >= 0.5 and best["category_id"] == annotation["category_id"]
                    and best["category_name"] == ("red", "blue")[annotation["category_id"] - 1])
    # one square per image: the best detection is that square, with its colour, in (nearly) every image
    assert sum(hits) >= 6, f"{sum(hits)} of {len(hits)} images: best detection on the square"
    assert len(list(out.glob("*.png"))) == len(truth)
