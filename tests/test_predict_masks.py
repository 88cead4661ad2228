"""Masks at inference: the API returns them, `msdetr predict` writes them as RLE and draws them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import msdetr
from msdetr.cli import main
from msdetr.config.model import MaskHeadConfig
from msdetr.evaluation.segm import decode_rle
from msdetr.inference.drawing import draw_detections, draw_masks
from support.checkpoints import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("predict_masks") / "mask.pt", class_names=["a", "b", "c"],
                             mask_head=MaskHeadConfig(enabled=True, mask_dim=32))


def test_api_returns_masks_at_the_original_size(checkpoint):
    model = msdetr.load(checkpoint)
    image = np.random.default_rng(0).integers(0, 256, size=(45, 70, 3), dtype=np.uint8)
    dets = model.predict(image, score=0.0)
    assert dets.masks is not None and dets.masks.dtype == torch.bool
    assert dets.masks.shape == (len(dets), 45, 70)
    assert dets.masks.any(), "a random model still predicts some foreground"


def test_predict_json_masks_decode_to_the_drawn_masks(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate([(40, 60), (52, 44)]):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(paths[-1])
    out = tmp_path / "out"
    assert main(["predict", "--weights", str(checkpoint), str(folder), "--out", str(out), "--score", "0.0",
                 "--device", "cpu", "--quiet"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    model = msdetr.load(checkpoint)
    batch = model.predict(paths, score=0.0)  # one padded batch, as the command ran them
    for image_id, path in enumerate(paths):
        mine = [r for r in records if r["image_id"] == image_id]
        rgb = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).contiguous()
        decoded = torch.from_numpy(np.stack([decode_rle(r["segmentation"]) for r in mine])).bool()
        assert decoded.shape[1:] == rgb.shape[1:]
        dets = batch[image_id]
        assert torch.equal(decoded, dets.masks)  # the json holds the API's masks
        # the saved drawing is exactly the detections drawn with the json's masks
        boxes = torch.tensor([r["bbox"] for r in mine])
        assert torch.equal(draw_detections(rgb, dets.boxes, dets.labels, dets.names, dets.scores, decoded),
                           torch.from_numpy(np.array(Image.open(out / f"{path.stem}.png"))).permute(2, 0, 1))
        assert boxes.shape == (len(mine), 4)


def test_drawn_masks_change_exactly_the_mask_pixels():
    grey = torch.full((3, 20, 30), 128, dtype=torch.uint8)
    masks = torch.zeros(2, 20, 30, dtype=torch.bool)
    masks[0, 2:9, 3:12] = True
    masks[1, 6:15, 10:25] = True
    drawn = draw_masks(grey, masks, torch.tensor([0, 1]))
    changed = (drawn != grey).any(0)
    assert torch.equal(changed, masks.any(0))
