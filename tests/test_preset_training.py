"""Two representative presets train end to end with `Trainer` (slow tier): MS-DETR + DINO through
`msdetr train` (denoising and one-to-many terms logged, the checkpoint predicts without denoising
queries), and MS-DETR + mask head (mask terms, segm mAP next to bbox mAP). Every other preset's
wiring (build, streams, loss terms, one backward) is checked in-process by `test_preset_wiring.py`."""

from __future__ import annotations

import math

import pytest
import torch

from msdetr.cli import main
from msdetr.config.loader import load_config, save_config
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.trainer import Trainer
from msdetr.model_io import build_from_file
from support.tiny import shrunken_preset

pytestmark = pytest.mark.slow


def test_msdetr_dino_trains_through_the_cli_and_predicts_without_denoising(tmp_path):
    cfg = shrunken_preset(load_config("msdetr_dino_r50_900"))
    save_config(cfg, tmp_path / "run.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--output", str(run), "--quiet"]) == 0
    assert [r["step"] for r in read_metrics(run, "train")] == [1, 2]
    epoch = read_metrics(run, "epoch")[-1]  # the epoch's mean of every loss term
    assert {"one_to_one.layer1.cls", "one_to_many.layer1.bbox", "denoising.layer0.cls",
            "denoising.layer1.giou", "encoder.cls"} <= set(epoch)
    assert all(math.isfinite(float(v)) for k, v in epoch.items() if "." in k)

    model, _ = build_from_file(run / "last.pt")
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.bool))
    assert set(out.streams) == {"one_to_one"} and out.query_meta == {}
    assert out.logits.shape == (1, cfg.model.num_queries, cfg.model.num_classes)


def test_msdetr_mask_preset_trains_and_reports_segm(tmp_path):
    preset = load_config("msdetr_mask_ddetr_r50_300")
    cfg = shrunken_preset(preset, max_steps=2, eval_every=1)
    assert preset.data.masks and not cfg.data.masks  # the trainer turns masks on for a mask head

    result = Trainer(cfg, tmp_path / "run", verbose=False).fit()
    assert result.steps == 2 and result.skipped_steps == 0
    terms = set(read_metrics(tmp_path / "run", "epoch")[-1])  # mean loss terms of the epoch
    for stream in ("one_to_one", "one_to_many"):
        for layer in (0, 1):
            assert {f"{stream}.layer{layer}.mask", f"{stream}.layer{layer}.dice"} <= terms
    assert "segm_mAP" in result.metrics and "bbox_mAP" in result.metrics
