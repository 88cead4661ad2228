"""`msdetr candidates`: pictures per object, side by side for two checkpoints, and the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import msdetr
from msdetr.cli import main
from msdetr.data.synthetic import ensure_synthetic_dataset
from msdetr.inference.candidates import top_candidates
from support.checkpoints import random_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("candidates")
    data = ensure_synthetic_dataset(root / "synthetic", train=0, val=3, size=64, seed=5)
    first = random_checkpoint(root / "ms.pt", seed=0, num_queries=24)
    second = random_checkpoint(root / "baseline.pt", seed=1, num_queries=24, mixed=False)
    return data, first, second


def _annotations(data, images):
    coco = json.loads((data / "annotations" / "instances_val.json").read_text())
    ids = [record["id"] for record in coco["images"][:images]]
    return [a for a in coco["annotations"] if a["image_id"] in ids], coco


@pytest.mark.slow
def test_two_checkpoints_side_by_side(setup, tmp_path, capsys):
    data, first, second = setup
    out = tmp_path / "out"
    code = main(["candidates", "--weights", str(first), "--compare", str(second), "--labels", "ms", "base",
                 "--data", str(data), "--images", "2", "--top", "5", "--out", str(out), "--device", "cpu",
                 "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    objects, coco = _annotations(data, 2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and set(summary["checkpoints"]) == {"ms", "base"}
    for label in ("ms", "base"):
        entry = summary["checkpoints"][label]
        assert entry["objects"] == len(objects)
        assert 0.0 <= entry["top20"] <= entry["top5"] <= entry["top1"] <= 1.0
        assert f"{label} " in printed and f"{entry['top1']:.3f}" in printed
    # one picture per object, two panels of the enlarged image next to each other
    pictures = sorted(out.glob("*.png"))
    assert len(pictures) == len(objects)
    record = coco["images"][0]
    picture = np.asarray(Image.open(out / f"{record['id']}_0.png"))
    scale = 384 / min(record["height"], record["width"])
    assert picture.shape[1] == 2 * round(record["width"] * scale) + 4


def test_summary_numbers_are_the_ranked_ious(setup, tmp_path, capsys):
    """The summary equals the top-1/5/20 IoUs of each object computed from the API's raw
    predictions, whatever number of candidates is drawn (--top)."""
    data, first, _ = setup
    out = tmp_path / "out"
    assert main(["candidates", "--weights", str(first), "--data", str(data), "--images", "3", "--top", "3",
                 "--out", str(out), "--device", "cpu", "--quiet", "--no-draw"]) == 0
    objects, coco = _annotations(data, 3)
    model = msdetr.load(first)
    ious = []
    for record in coco["images"][:3]:
        rgb = torch.from_numpy(np.array(Image.open(data / "val" / record["file_name"]).convert("RGB")))
        _, boxes, _ = model.final_predictions([rgb.permute(2, 0, 1)])
        h, w = record["height"], record["width"]
        gt = torch.tensor([[(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
                           for x, y, bw, bh in (a["bbox"] for a in objects if a["image_id"] == record["id"])])
        ious.append(top_candidates(boxes[0], gt, k=20).ious)
    ious = torch.cat(ious)
    summary = json.loads((out / "summary.json").read_text())["checkpoints"][str(first)]
    assert summary["objects"] == len(ious) == len(objects)
    for r in (1, 5, 20):
        assert summary[f"top{r}"] == pytest.approx(ious[:, :r].mean(1).mean().item(), abs=1e-6)
    assert list(out.iterdir()) == [out / "summary.json"]  # --no-draw


def test_label_count_must_match(setup, tmp_path, capsys):
    data, first, second = setup
    assert main(["candidates", "--weights", str(first), "--compare", str(second), "--labels", "only-one",
                 "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "--labels" in capsys.readouterr().err
