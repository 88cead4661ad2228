"""The DAB / DN-DETR / DINO presets (alone and with MS-DETR) carry their reference recipes.

Their wiring (streams, loss terms, prediction without denoising queries) is checked for every
preset by `test_preset_wiring.py`; MS-DETR + DINO trains through `msdetr train` in
`test_preset_training.py` (slow tier)."""

from __future__ import annotations

import pytest

from msdetr.config.loader import load_config

PRESETS = [
    "dab_ddetr_r50_300",
    "msdetr_dab_ddetr_r50_300",
    "dn_dab_ddetr_r50_300",
    "msdetr_dn_dab_ddetr_r50_300",
    "dino_r50_900",
    "msdetr_dino_r50_900",
]


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
