"""`msdetr eval`: a progress bar over the images, and a mask model evaluated on a dataset without
segmentations gets its box metrics and a one-line note instead of failing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from msdetr.cli import main
from msdetr.engine.trainer import Trainer
from test_train_reporting import mask_run_config


@pytest.fixture(scope="module")
def mask_checkpoint(tmp_path_factory):
    """A mask model trained one step (its saved config asks for masks: data.masks true)."""
    tmp = tmp_path_factory.mktemp("mask_eval")
    cfg = mask_run_config(tmp, train_images=2, val_images=2, epochs=1, mixed=False, max_steps=1)
    cfg = replace(cfg, data=replace(cfg.data, masks=True))
    Trainer(cfg, tmp / "run", verbose=False).fit()
    return tmp


def box_only_copy(tmp, name: str, keep: int = 0) -> str:
    """The synthetic val annotations with the segmentation of all but `keep` objects removed."""
    data = json.loads((tmp / "synthetic" / "annotations" / "instances_val.json").read_text())
    for annotation in data["annotations"][keep:]:
        del annotation["segmentation"]
    path = tmp / name
    path.write_text(json.dumps(data))
    return str(path)


def run_eval(tmp, annotations: str, capsys, *extra: str):
    out = tmp / "metrics.json"
    code = main(["eval", "--weights", str(tmp / "run" / "best.pt"), "--data", annotations,
                 "--images", str(tmp / "synthetic" / "val"), "--device", "cpu", "--num-workers", "0",
                 "--output", str(out), *extra])
    assert code == 0
    captured = capsys.readouterr()
    return captured.out, captured.err, json.loads(out.read_text())


def test_mask_checkpoint_on_box_only_data_gives_box_metrics(mask_checkpoint, capsys):
    tmp = mask_checkpoint
    stdout, stderr, record = run_eval(tmp, box_only_copy(tmp, "boxes.json"), capsys)
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert notes == ["note: segm metrics left out (box metrics only): the ground truth has no segmentation "
                     "(a box-only dataset)"]
    assert "bbox_mAP" in record and not any(k.startswith("segm_") for k in record)
    assert "bbox_mAP" in stdout and "segm_mAP" not in stdout
    assert "eval" in stderr and "2/2" in stderr  # the progress bar over the 2 validation images


@pytest.mark.slow
def test_partly_segmented_ground_truth_says_how_many_objects_lack_one(mask_checkpoint, capsys):
    tmp = mask_checkpoint
    data = json.loads((tmp / "synthetic" / "annotations" / "instances_val.json").read_text())
    total = len(data["annotations"])
    stdout, stderr, record = run_eval(tmp, box_only_copy(tmp, "partial.json", keep=1), capsys, "--no-progress")
    assert f"{total - 1} of {total} ground-truth objects have no segmentation" in stdout
    assert not any(k.startswith("segm_") for k in record) and "bbox_mAP" in record
    assert "img" not in stderr  # --no-progress


def test_mask_checkpoint_on_segmented_data_reports_segm(mask_checkpoint, capsys):
    tmp = mask_checkpoint
    annotations = str(tmp / "synthetic" / "annotations" / "instances_val.json")
    stdout, _, record = run_eval(tmp, annotations, capsys, "--no-progress")
    assert "segm_mAP" in record and "bbox_mAP" in record and "note:" not in stdout
