"""Extra query groups (hybrid / group / denoising share this path): mask rules, streams, isolation."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.model import MixedSupervisionConfig
from msdetr.modeling.build import build_model
from msdetr.modeling.outputs import ONE_TO_MANY, ONE_TO_ONE
from msdetr.modeling.queries import QueryInit
from msdetr.modeling.query_groups import QueryGroup, assemble_queries
from support.fakes import LearnedGroup
from support.tiny import padded_batch, tiny_model_config


def _init(b: int, q: int, d: int = 4) -> QueryInit:
    return QueryInit(torch.randn(b, q, d), torch.randn(b, q, d), torch.rand(b, q, 4))


def test_mask_blocks_primary_from_groups_and_groups_from_each_other():
    primary = _init(2, 3)
    inner = torch.tensor([[False, True], [True, False]])
    groups = [
        QueryGroup("hybrid", torch.randn(2, 4, 4), torch.randn(2, 4, 4), torch.rand(2, 4, 4)),
        QueryGroup("denoising", torch.randn(2, 2, 4), torch.randn(2, 2, 4), torch.rand(2, 2, 4),
                   self_mask=inner, sees_primary=True),
    ]
    out = assemble_queries(primary, groups, ONE_TO_ONE)
    assert out.tgt.shape == (2, 9, 4) and out.reference_points.shape == (2, 9, 4)
    assert out.slices == {ONE_TO_ONE: slice(0, 3), "hybrid": slice(3, 7), "denoising": slice(7, 9)}
    m = out.attn_mask
    assert not m[:3, :3].any() and m[:3, 3:].all()  # primary sees only itself
    assert m[3:7, :3].all() and not m[3:7, 3:7].any() and m[3:7, 7:].all()  # hybrid: only itself
    assert not m[7:, :3].any() and m[7:, 3:7].all() and torch.equal(m[7:, 7:], inner)  # sees primary
    assert torch.equal(out.tgt[:, 3:7], groups[0].tgt)


def test_no_groups_is_the_plain_path_and_duplicate_names_fail():
    primary = _init(1, 5)
    out = assemble_queries(primary, [], ONE_TO_ONE)
    assert out.attn_mask is None and out.tgt is primary.tgt
    g = QueryGroup("group", torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.rand(1, 2, 4))
    with pytest.raises(ValueError, match="named 'group'"):
        assemble_queries(primary, [g, g], ONE_TO_ONE)
    bad = QueryGroup("group", torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match="reference points"):
        assemble_queries(primary, [bad], ONE_TO_ONE)


@pytest.mark.parametrize("mixed", [False, True])
def test_groups_leave_primary_predictions_unchanged_and_vanish_at_inference(mixed):
    torch.manual_seed(0)
    cfg = tiny_model_config(mixed_supervision=MixedSupervisionConfig(enabled=mixed))
    model = build_model(cfg).eval()
    _, images, mask = padded_batch([(64, 80), (72, 56)])
    with torch.no_grad():
        plain = model(images, mask, all_streams=True)
        model.query_groups.append(LearnedGroup("hybrid", 5, cfg.hidden_dim))
        model.query_groups.append(LearnedGroup("denoising", 4, cfg.hidden_dim, sees_primary=True))
        grouped = model(images, mask, all_streams=True, targets=[{}, {}])
        inference = model(images, mask, all_streams=False)
    for stream in [ONE_TO_ONE] + ([ONE_TO_MANY] if mixed else []):
        torch.testing.assert_close(grouped.streams[stream].logits, plain.streams[stream].logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(grouped.streams[stream].boxes, plain.streams[stream].boxes, atol=1e-6, rtol=0)
    assert grouped.streams["hybrid"].logits.shape == (2, 2, 5, 5)
    assert grouped.streams["denoising"].boxes.shape == (2, 2, 4, 4)
    assert grouped.query_meta == {"hybrid": {"batch": 2, "has_targets": True},
                                  "denoising": {"batch": 2, "has_targets": True}}
    assert set(inference.streams) == {ONE_TO_ONE} and inference.query_meta == {}
    torch.testing.assert_close(inference.logits, plain.logits, atol=1e-5, rtol=0)


def test_group_queries_receive_gradient_through_the_shared_decoder():
    torch.manual_seed(0)
    cfg = tiny_model_config()
    model = build_model(cfg).train()
    model.query_groups.append(LearnedGroup("group", 3, cfg.hidden_dim))
    _, images, mask = padded_batch([(64, 64)])
    out = model(images, mask)
    (out.streams["group"].logits.sum() + out.streams["group"].boxes.sum()).backward()
    provider = model.query_groups[0]
    assert provider.embed.weight.grad.abs().sum() > 0
    assert model.decoder.layers[0].cross_attn.value_proj.weight.grad.abs().sum() > 0
