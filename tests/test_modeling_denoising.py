"""Denoising queries (DN-DETR / DINO CDN) and anchor (DAB) queries: noise ranges, layout, isolation, checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from msdetr.config.model import DenoisingConfig, MixedSupervisionConfig
from msdetr.config.supervision import SupervisionConfig
from msdetr.errors import MsdetrError
from msdetr.losses.build import build_criterion
from msdetr.modeling.build import build_model
from msdetr.modeling.denoising import cdn_group_count, group_mask, noise_targets
from msdetr.modeling.outputs import ONE_TO_MANY, ONE_TO_ONE
from support.tiny import padded_batch, tiny_model_config


def _targets():
    return [
        {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.4, 0.1, 0.1], [0.6, 0.6, 0.3, 0.2]]),
         "labels": torch.tensor([1, 2, 0])},
        {"boxes": torch.tensor([[0.6, 0.5, 0.4, 0.3]]), "labels": torch.tensor([3])},
    ]


def _corners(boxes):
    return torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)


def test_contrastive_noise_positives_inside_negatives_outside_half_sizes():
    cfg = DenoisingConfig(method="cdn", dn_number=6, label_noise=0.0, box_noise=0.4)
    noised = noise_targets(_targets(), cfg, 5, torch.Generator().manual_seed(0))
    assert (noised.num_groups, noised.copies_per_group, noised.pad) == (12, 2, 3)  # DINO: 2 * 6 < 100 -> 12 groups
    truth = torch.cat([t["boxes"] for t in _targets()])[torch.cat([torch.arange(3), torch.arange(3, 4)])]
    original = truth.repeat(24, 1)
    shift = (_corners(noised.boxes) - _corners(original)).abs() / (original[:, 2:].repeat(1, 2) / 2) / 0.4
    # the boxes are far from the border (no clamping): positives move < 1, negatives in [1, 2) half sizes
    assert (shift[noised.positive] < 1 + 1e-5).all()
    assert (shift[~noised.positive] > 1 - 1e-5).all() and (shift[~noised.positive] < 2 + 1e-5).all()
    assert torch.equal(noised.labels, torch.cat([t["labels"] for t in _targets()]).repeat(24))
    # copy c of object j of image b at slot c * pad + j
    assert torch.equal(noised.query[:4], torch.tensor([0, 1, 2, 0])) and noised.query[4] == 3


def test_group_count_follows_dino_and_mask_separates_groups():
    assert cdn_group_count(100, 3) == 33 and cdn_group_count(100, 0) == 1 and cdn_group_count(100, 150) == 1
    assert cdn_group_count(10, 4) == 20  # DINO: 2 * dn_number < 100 -> that many groups
    noised = noise_targets(_targets(), DenoisingConfig(method="dn", num_groups=3), 5,
                           torch.Generator().manual_seed(0))
    mask = group_mask(noised)
    assert mask.shape == (9, 9)
    blocks = torch.block_diag(*[torch.ones(3, 3, dtype=torch.bool)] * 3)
    assert torch.equal(mask, ~blocks)


@pytest.mark.parametrize("variant", ["cdn_two_stage", "dn_anchor"])
@pytest.mark.parametrize("mixed", [False, True])
def test_denoising_leaves_primary_predictions_unchanged_and_vanishes_at_inference(variant, mixed):
    torch.manual_seed(0)
    ms = MixedSupervisionConfig(enabled=mixed)
    if variant == "cdn_two_stage":
        cfg = tiny_model_config(mixed_supervision=ms, mixed_selection=True, denoising=DenoisingConfig(method="cdn"))
    else:
        cfg = tiny_model_config(mixed_supervision=ms, two_stage=False, anchor_queries=True,
                                denoising=DenoisingConfig(method="dn", label_indicator=True))
    model = build_model(cfg).eval()
    _, images, mask = padded_batch([(64, 80), (72, 56)])
    providers = model.query_groups
    with torch.no_grad():
        grouped = model(images, mask, all_streams=True, targets=_targets())
        inference = model(images, mask)
        model.query_groups = nn.ModuleList()
        plain = model(images, mask, all_streams=True)
        model.query_groups = providers
    streams = [ONE_TO_ONE] + ([ONE_TO_MANY] if mixed else [])
    assert set(grouped.streams) == {*streams, "denoising"} and set(inference.streams) == {ONE_TO_ONE}
    assert inference.query_meta == {} and grouped.streams["denoising"].logits.shape[2] == 3 * (
        5 if variant == "dn_anchor" else 2 * cdn_group_count(100, 3))
    for stream in streams:  # the primary queries never see the denoising queries
        torch.testing.assert_close(grouped.streams[stream].logits, plain.streams[stream].logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(grouped.streams[stream].boxes, plain.streams[stream].boxes, atol=1e-6, rtol=0)
    torch.testing.assert_close(inference.logits, plain.logits, atol=1e-5, rtol=0)
    # training: the denoising tasks join the primary ones
    model.train()
    out = model(images, mask, targets=_targets())
    result = build_criterion(SupervisionConfig(strategy="mixed" if mixed else "one_to_one"), 5)(out, _targets())
    names = set(result.terms)
    assert {f"denoising.layer{i}.{t}" for i in range(2) for t in ("cls", "bbox", "giou")} <= names
    assert any(n.startswith("one_to_many.") for n in names) == mixed


def test_training_without_targets_is_a_clear_error():
    cfg = tiny_model_config(denoising=DenoisingConfig(method="cdn"))
    model = build_model(cfg).train()
    _, images, mask = padded_batch([(64, 64)])
    with pytest.raises(ValueError, match="targets"):
        model(images, mask)


def test_empty_batch_gives_an_empty_denoising_group():
    cfg = tiny_model_config(denoising=DenoisingConfig(method="cdn"))
    model = build_model(cfg).train()
    _, images, mask = padded_batch([(64, 64)])
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    out = model(images, mask, targets=empty)
    assert out.streams["denoising"].logits.shape[2] == 0
    build_criterion(SupervisionConfig(), 5)(out, empty).total.backward()
    assert model.query_groups[0].label_embed.weight.grad is not None  # no unused parameter (DDP)


@pytest.mark.parametrize("overrides,message", [
    (dict(two_stage=True, anchor_queries=True), "anchor_queries"),
    (dict(two_stage=False, denoising=DenoisingConfig(method="dn")), "denoising"),
    (dict(denoising=DenoisingConfig(method="cdn", label_indicator=True)), "label_indicator"),
    (dict(denoising=DenoisingConfig(method="dino")), "method"),
])
def test_bad_combinations_are_one_line_errors(overrides, message):
    with pytest.raises(MsdetrError, match=message):
        build_model(tiny_model_config(**overrides))
