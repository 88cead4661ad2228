"""The instance-segmentation presets train (shrunken model, tiny synthetic set with polygon masks):
their metrics name the mask terms, and evaluation reports segm mAP next to bbox mAP."""

from __future__ import annotations

from dataclasses import replace

import pytest

from msdetr.config.loader import load_config
from msdetr.config.model import BackboneConfig
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.trainer import Trainer
from test_train_support import tiny_run_config


@pytest.mark.parametrize("preset", ["mask_ddetr_r50_300", "msdetr_mask_ddetr_r50_300"])
def test_mask_preset_trains_and_reports_segm(preset, tmp_path):
    cfg = load_config(preset)
    small = tiny_run_config(tmp_path, train_images=4, val_images=2, epochs=1,
                            mixed=cfg.model.mixed_supervision.enabled, max_steps=2, eval_every=1, vis_images=0)
    model = replace(small.model, mixed_supervision=cfg.model.mixed_supervision, mask_head=replace(
        cfg.model.mask_head, mask_dim=16), backbone=BackboneConfig(name="resnet18", freeze_at="layer1"))
    supervision = replace(cfg.supervision, masks=replace(cfg.supervision.masks, num_points=128, matcher_points=128))
    run = replace(small, model=model, supervision=supervision)
    assert cfg.data.masks and not small.data.masks  # the trainer turns masks on for a mask head

    result = Trainer(run, tmp_path / "run", verbose=False).fit()
    assert result.steps == 2
    terms = set(read_metrics(tmp_path / "run", "epoch")[-1])  # mean loss terms of the epoch
    for layer in (0, 1):
        assert {f"one_to_one.layer{layer}.mask", f"one_to_one.layer{layer}.dice"} <= terms
    one_to_many = {name for name in terms if name.startswith("one_to_many.") and name.endswith((".mask", ".dice"))}
    assert bool(one_to_many) == (preset == "msdetr_mask_ddetr_r50_300")
    assert "segm_mAP" in result.metrics and "bbox_mAP" in result.metrics


def test_mask_presets_follow_the_box_recipes():
    pairs = [("mask_ddetr_r50_300", "ddetr_r50_300"), ("msdetr_mask_ddetr_r50_300", "msdetr_r50_300")]
    for preset, box_preset in pairs:
        cfg, box = load_config(preset), load_config(box_preset)
        assert cfg.model.mask_head.enabled and not box.model.mask_head.enabled
        assert replace(cfg.model, mask_head=box.model.mask_head) == box.model
        assert cfg.train == box.train and cfg.train.epochs == 12
        weights = cfg.supervision.loss_weights.one_to_one
        assert weights.mask == 5.0 and weights.dice == 5.0
    tiny_seg = load_config("tiny_seg")
    assert tiny_seg.model.mask_head.enabled and tiny_seg.supervision.strategy == "mixed"
