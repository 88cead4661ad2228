"""The instance-segmentation presets follow the box recipes with a mask head and mask loss weights.

Their mask streams and mask / dice terms are checked for every preset by `test_preset_wiring.py`;
MS-DETR + mask head trains and reports segm mAP in `test_preset_training.py` (slow tier)."""

from __future__ import annotations

from dataclasses import replace

from msdetr.config.loader import load_config


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
