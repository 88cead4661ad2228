"""The DAB / DN-DETR / DINO presets (alone and with MS-DETR) train a couple of steps with a shrunken
model on a tiny synthetic set, log their streams' terms, and predict without denoising queries."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from msdetr.cli import main
from msdetr.config.loader import load_config, save_config
from msdetr.engine.metrics_log import read_metrics
from msdetr.model_io import build_from_file
from test_train_support import tiny_run_config

PRESETS = [
    "dab_ddetr_r50_300",
    "msdetr_dab_ddetr_r50_300",
    "dn_dab_ddetr_r50_300",
    "msdetr_dn_dab_ddetr_r50_300",
    "dino_r50_900",
    "msdetr_dino_r50_900",
]


def shrunken(preset: str, tmp_path):
    """The preset's architecture options and supervision on the tiny test model, data and schedule."""
    cfg = load_config(preset)
    tiny = tiny_run_config(tmp_path, train_images=4, val_images=2, epochs=1,
                           mixed=cfg.model.mixed_supervision.enabled)
    m = cfg.model
    model = replace(tiny.model, two_stage=m.two_stage, with_box_refine=m.with_box_refine,
                    mixed_selection=m.mixed_selection, look_forward_twice=m.look_forward_twice,
                    anchor_queries=m.anchor_queries, mixed_supervision=m.mixed_supervision,
                    denoising=replace(m.denoising, dn_number=2, num_groups=2))
    return replace(cfg, model=model, data=tiny.data, train=replace(tiny.train, vis_images=0), eval=tiny.eval)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_and_predicts_without_denoising(preset, tmp_path):
    cfg = shrunken(preset, tmp_path)
    save_config(cfg, tmp_path / "run.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--output", str(run), "--quiet"]) == 0
    records = read_metrics(run, "train")
    assert [r["step"] for r in records] == [1, 2]
    epoch = read_metrics(run, "epoch")[-1]  # the epoch's mean of every loss term
    names = set(epoch)
    assert "one_to_one.layer1.cls" in names
    denoising = "dn_" in preset or "dino" in preset
    assert ({"denoising.layer0.cls", "denoising.layer1.giou"} <= names) == denoising
    assert ("one_to_many.layer1.bbox" in names) == preset.startswith("msdetr")
    assert all(torch.isfinite(torch.tensor(float(v))) for k, v in epoch.items() if "." in k)

    model, _ = build_from_file(run / "last.pt")
    model.eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(images, torch.zeros(1, 64, 64, dtype=torch.bool))
    assert set(out.streams) == {"one_to_one"} and out.query_meta == {}
    assert out.logits.shape == (1, cfg.model.num_queries, cfg.model.num_classes)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_recipe(preset):
    cfg = load_config(preset)
    m, s, t = cfg.model, cfg.supervision, cfg.train
    assert (t.epochs, t.schedule.drop_epochs, t.optimizer.lr, t.reference_batch_size) == (12, [11], 2e-4, 16)
    msdetr = preset.startswith("msdetr")
    assert m.mixed_supervision.enabled == msdetr and s.strategy == ("mixed" if msdetr else "one_to_one")
    assert s.loss_weights.one_to_one.cls == (1.0 if msdetr else 2.0)
    if "dab" in preset:
        assert m.anchor_queries and not m.two_stage and m.with_box_refine and m.num_queries == 300
    else:
        assert m.two_stage and m.mixed_selection and m.look_forward_twice and m.num_queries == 900
    if "dn_" in preset:
        assert (m.denoising.method, m.denoising.num_groups, m.denoising.label_noise, m.denoising.box_noise) == (
            "dn", 5, 0.2, 0.4) and m.denoising.label_indicator
    elif "dino" in preset:
        assert (m.denoising.method, m.denoising.dn_number, m.denoising.label_noise, m.denoising.box_noise) == (
            "cdn", 100, 0.5, 0.4) and not m.denoising.label_indicator
    else:
        assert not m.denoising.enabled
    if m.denoising.enabled:  # denoising terms weighted as the one-to-one ones, divided by objects x groups
        assert s.loss_weights.denoising == s.loss_weights.one_to_one
        assert s.denoising_normalization == "groups"
