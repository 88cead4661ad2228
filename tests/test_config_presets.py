"""Every preset loads, and the paper presets carry the official recipe."""

from __future__ import annotations

import pytest

from msdetr.config.loader import list_presets, load_config

PAPER_PRESETS = [
    "ddetr_r50_300",
    "msdetr_r50_300",
    "ddetr_pp_r50_300",
    "msdetr_pp_r50_300",
    "ddetr_pp_r50_900",
    "msdetr_pp_r50_900",
]


def test_all_presets_listed_with_descriptions():
    presets = list_presets()
    assert set(PAPER_PRESETS + ["tiny"]) <= set(presets)
    assert all(description for description in presets.values())


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_presets_use_official_hyperparameters(name):
    cfg = load_config(name)
    t, m = cfg.train, cfg.model
    assert (t.optimizer.lr, t.optimizer.lr_backbone, t.optimizer.lr_linear_proj_mult) == (2e-4, 2e-5, 0.1)
    assert t.optimizer.weight_decay == 1e-4
    assert (t.batch_size, t.reference_batch_size, t.epochs) == (2, 16, 12)
    assert (t.schedule.name, t.schedule.drop_epochs, t.clip_max_norm) == ("step", [11], 0.1)
    assert m.dim_feedforward == 2048 and (m.enc_layers, m.dec_layers) == (6, 6)
    assert m.two_stage and m.with_box_refine and m.backbone.name == "resnet50"
    assert cfg.model.num_queries == (900 if name.endswith("900") else 300)
    assert cfg.eval.topk == (300 if name.endswith("900") else 100)
    plus_plus = "_pp_" in name
    assert (m.mixed_selection, m.look_forward_twice, m.dropout) == (
        plus_plus,
        plus_plus,
        0.0 if plus_plus else 0.1,
    )
    weights = cfg.supervision.loss_weights
    if name.startswith("msdetr"):
        assert m.mixed_supervision.enabled and m.mixed_supervision.aux_ffn
        assert cfg.supervision.strategy == "mixed"
        assert (weights.one_to_one.cls, weights.one_to_many.cls) == (1.0, 2.0)
    else:
        assert not m.mixed_supervision.enabled and cfg.supervision.strategy == "one_to_one"
        assert weights.one_to_one.cls == 2.0
    assert (weights.encoder.cls, weights.encoder.bbox, weights.encoder.giou) == (2.0, 5.0, 2.0)


def test_tiny_preset_is_cpu_sized():
    cfg = load_config("tiny")
    assert cfg.model.backbone.name == "resnet18" and cfg.model.backbone.weights is None
    assert cfg.model.mixed_supervision.enabled and cfg.supervision.strategy == "mixed"
    assert cfg.data.root is None and cfg.data.synthetic.size <= 192
    assert load_config(None) == cfg  # the default config of `msdetr train`
    assert cfg.train.time_limit_minutes is not None and cfg.train.time_limit_minutes <= 5  # the demo's budget
    assert cfg.data.synthetic.layout == "coloured"
