"""Align-DETR / DAC-DETR parts one by one: many-to-one Hungarian, ranks, the IoU-aware loss, the DAC
branch of the detector, config validation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from msdetr.config.model import DacConfig, MixedSupervisionConfig
from msdetr.config.supervision import SupervisionConfig
from msdetr.errors import MsdetrError
from msdetr.losses.iou_aware import iou_aware_bce, rank_within_targets
from msdetr.methods.contracts import DAC
from msdetr.modeling.build import build_model
from msdetr.supervision.base import LayerPredictions
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.repeated_hungarian import RepeatedHungarianAssigner, capped_copies
from support.tiny import padded_batch, tiny_model_config


def _predictions(batch=2, queries=16, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([0.2 + 0.6 * torch.rand(batch, queries, 2, generator=g),
                       0.05 + 0.3 * torch.rand(batch, queries, 2, generator=g)], -1)
    return LayerPredictions(torch.randn(batch, queries, classes, generator=g), boxes)


TARGETS = [
    {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1], [0.7, 0.4, 0.2, 0.2]]),
     "labels": torch.tensor([1, 2, 2])},
    {"boxes": torch.tensor([[0.4, 0.6, 0.3, 0.2]]), "labels": torch.tensor([3])},
]


def test_many_to_one_gives_each_target_k_distinct_queries_and_k1_is_hungarian():
    predictions = _predictions()
    hungarian = HungarianAssigner()
    for image, (pred_idx, target_idx) in enumerate(RepeatedHungarianAssigner(hungarian, 2)(predictions, TARGETS)):
        count = len(TARGETS[image]["labels"])
        assert torch.equal(torch.bincount(target_idx, minlength=count), torch.full((count,), 2))
        assert len(set(pred_idx.tolist())) == len(pred_idx)
        assert torch.equal(target_idx, target_idx.sort().values)
    ones = RepeatedHungarianAssigner(hungarian, 1)(predictions, TARGETS)
    for (q1, t1), (q2, t2) in zip(ones, hungarian(predictions, TARGETS)):
        assert sorted(zip(q1.tolist(), t1.tolist())) == sorted(zip(q2.tolist(), t2.tolist()))


def test_many_to_one_caps_copies_at_half_the_queries():
    assert capped_copies(3, 6, 2) == 1 and capped_copies(2, 900, 100) == 2 and capped_copies(2, 10, 30) == 1
    pairs = RepeatedHungarianAssigner(HungarianAssigner(), 3)(_predictions(queries=6), TARGETS)
    assert [len(q) for q, _ in pairs] == [3, 3]  # image 0: 3 targets x 1 copy; image 1: 1 target x 3


def test_ranks_within_each_target_by_decreasing_quality_ties_in_pair_order():
    quality = torch.tensor([0.2, 0.5, 0.01, 0.3, 0.01, 0.9, 0.4])
    image = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    target = torch.tensor([0, 0, 1, 0, 1, 0, 0])
    key = image * 2 + target  # 2 targets per image
    assert rank_within_targets(quality, key, 4).tolist() == [2, 0, 0, 1, 1, 0, 1]
    assert rank_within_targets(torch.zeros(0), key[:0], 4).numel() == 0


def test_iou_aware_loss_is_the_dense_formula_and_stays_finite():
    g = torch.Generator().manual_seed(1)
    logits = (3 * torch.randn(2, 4, 3, generator=g)).requires_grad_(True)
    image, query, label = torch.tensor([0, 1, 1]), torch.tensor([2, 0, 3]), torch.tensor([1, 2, 0])
    t = torch.tensor([0.7, 0.2, 0.05])
    ours = iou_aware_bce(logits, image, query, label, t, gamma=2.0).sum()
    p = logits.sigmoid()
    pos = torch.zeros_like(p)
    pos[image, query, label] = t
    neg = p**2
    neg = neg.index_put((image, query, label), 1 - t)
    expected = (-pos * p.log() - neg * (1 - p).log()).sum()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=0)  # naive logs lose a few digits
    g_ours, = torch.autograd.grad(ours, logits)
    g_expected, = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(g_ours, g_expected, rtol=1e-4, atol=1e-6)
    extreme = torch.tensor([[[60.0, -60.0]]], requires_grad=True)
    value = iou_aware_bce(extreme, torch.tensor([0]), torch.tensor([0]), torch.tensor([1]),
                          torch.tensor([0.5]), 2.0).sum()
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(extreme.grad).all()
    assert F.softplus(torch.tensor(60.0)) == pytest.approx(60.0)


def _dac_model(first_layer_self_attention: bool, mixed: bool = False):
    torch.manual_seed(0)
    cfg = tiny_model_config(mixed_supervision=MixedSupervisionConfig(enabled=mixed),
                            dac=DacConfig(enabled=True, first_layer_self_attention=first_layer_self_attention))
    return build_model(cfg)


@pytest.mark.parametrize("mixed", [False, True])
def test_dac_branch_is_a_training_stream_without_parameters_of_its_own(mixed):
    model = _dac_model(True, mixed)
    plain = build_model(tiny_model_config(mixed_supervision=MixedSupervisionConfig(enabled=mixed)))
    assert model.state_dict().keys() == plain.state_dict().keys()
    _, batch, mask = padded_batch([(64, 64), (48, 64)])
    out = model.train()(batch, mask)
    assert out.streams[DAC].logits.shape == out.streams["one_to_one"].logits.shape
    assert out.streams[DAC].boxes.shape == out.streams["one_to_one"].boxes.shape
    assert DAC not in model.eval()(batch, mask).streams


@pytest.mark.parametrize("first_layer", [True, False])
def test_dac_branch_skips_self_attention_after_the_first_layer(first_layer):
    """Changing a layer's self-attention changes the one-to-one stream and, for the branch, only
    the first layer's (when it keeps it)."""
    model = _dac_model(first_layer).train()
    _, batch, mask = padded_batch([(64, 64)])
    with torch.no_grad():
        before = model(batch, mask)
        changed = copy.deepcopy(model)
        for layer in changed.decoder.layers:
            layer.self_attn.out_proj.weight.mul_(-3.0)
        after = changed(batch, mask)
        later_only = copy.deepcopy(model)
        for layer in list(later_only.decoder.layers)[1:]:
            layer.self_attn.out_proj.weight.mul_(-3.0)
        after_later = later_only(batch, mask)
    assert not torch.allclose(before.streams["one_to_one"].logits, after.streams["one_to_one"].logits)
    torch.testing.assert_close(before.streams[DAC].logits, after_later.streams[DAC].logits)
    same = torch.allclose(before.streams[DAC].logits, after.streams[DAC].logits)
    assert same != first_layer


def test_dac_branch_trains_the_shared_layers():
    model = _dac_model(True).train()
    _, batch, mask = padded_batch([(64, 64)])
    model(batch, mask).streams[DAC].logits.sum().backward()
    layer = model.decoder.layers[-1]
    assert layer.cross_attn.value_proj.weight.grad.abs().sum() > 0
    assert layer.self_attn.in_proj_weight.grad is None or layer.self_attn.in_proj_weight.grad.abs().sum() == 0


@pytest.mark.parametrize(("key", "value"), [
    ("classification_loss.dac", "bce"), ("many_to_one.k", 0), ("many_to_one.tau", 0.0),
    ("dac.normalizer_scale", 0.0), ("iou_aware.alpha", 1.5),
])
def test_bad_method_options_are_named(key, value):
    config = SupervisionConfig()
    section, name = key.split(".")
    setattr(getattr(config, section), name, value)
    with pytest.raises(MsdetrError, match=key.replace(".", r"\.")):
        config.validate()


def test_benchmark_rows_of_both_methods_build():
    """The train_cost.py rows for Align-DETR / DAC-DETR are valid configurations with their streams."""
    import importlib.util
    import sys
    from pathlib import Path

    from msdetr.config.loader import load_config
    from msdetr.losses import build_criterion

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_cost.py"
    spec = importlib.util.spec_from_file_location("train_cost_rows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    rows = {row.name: row for row in module.ROWS}
    for name in ("Align-DETR", "MS-DETR + Align-DETR", "DAC-DETR", "MS-DETR + DAC-DETR"):
        cfg = load_config("tiny", rows[name].overrides)
        criterion = build_criterion(cfg.supervision, num_classes=6)
        assert ("DAC-DETR" in name) == cfg.model.dac.enabled == cfg.supervision.dac.enabled
        assert ("Align" in name) == cfg.supervision.many_to_one.enabled
        assert ("MS-DETR" in name) == cfg.model.mixed_supervision.enabled
        assert "iou_aware" in criterion.classification_losses.values()
