"""The H-DETR / Group DETR presets (alone and with MS-DETR): `msdetr train --help` lists them and they
carry the reference recipes. Their `hybrid` / `group` (and `one_to_many`) streams and loss terms are
checked for every preset by `test_preset_wiring.py`."""

from __future__ import annotations

import pytest

from msdetr.cli import main


def test_train_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for preset in ("hdetr_pp_r50_300", "msdetr_hdetr_pp_r50_300", "group_ddetr_pp_r50_300",
                   "msdetr_group_ddetr_pp_r50_300"):
        assert f"  {preset} " in text


@pytest.mark.parametrize("preset", ["hdetr_pp_r50_300", "msdetr_hdetr_pp_r50_300", "group_ddetr_pp_r50_300",
                                    "msdetr_group_ddetr_pp_r50_300"])
def test_presets_carry_the_reference_recipes(preset):
    from msdetr.config.loader import load_config

    cfg = load_config(preset)
    m, s, t = cfg.model, cfg.supervision, cfg.train
    # Deformable-DETR++ as H-DETR's pp script: two-stage, box refine, mixed selection, look forward twice
    assert (m.num_queries, m.dim_feedforward, m.dropout) == (300, 2048, 0.0)
    assert m.two_stage and m.with_box_refine and m.mixed_selection and m.look_forward_twice
    assert (t.optimizer.lr, t.optimizer.lr_backbone, t.reference_batch_size, t.epochs) == (2e-4, 2e-5, 16, 12)
    assert (t.schedule.drop_epochs, t.clip_max_norm) == ([11], 0.1)
    msdetr = preset.startswith("msdetr_")
    assert m.mixed_supervision.enabled == msdetr and s.strategy == ("mixed" if msdetr else "one_to_one")
    one_to_one = s.loss_weights.one_to_one
    assert one_to_one.cls == (1.0 if msdetr else 2.0)
    if "hdetr" in preset:
        assert (m.hybrid.num_queries, s.hybrid.k, s.hybrid.official_normalization) == (1500, 6, True)
        assert s.loss_weights.hybrid == one_to_one  # lambda 1
        assert (s.encoder_class_cost, s.encoder_match_on_anchors) == (not msdetr, msdetr)
        assert m.group.num_groups == 1
    else:
        assert (m.group.num_groups, s.group.normalize_over_groups) == (6, True)
        assert s.loss_weights.group == one_to_one
        assert m.hybrid.num_queries == 0
