"""A method is one registered unit: a toy method (an extra learned query group, its own stream
and loss weight, one-to-one supervised) defined here alone trains and shows its loss terms."""

from __future__ import annotations

import pytest
import torch
from tests.tiny_models import padded_batch, tiny_model_config
from torch import nn

from msdetr.config.supervision import SupervisionConfig
from msdetr.losses.build import build_criterion
from msdetr.methods.contracts import QueryContext, QueryGroup
from msdetr.methods.registry import register, registered, unregister
from msdetr.methods.unit import MethodUnit, StreamSpec
from msdetr.modeling.branches import DecoderBranch
from msdetr.modeling.build import build_model
from msdetr.supervision.one_to_one import OneToOneSupervision

TOY = "toy"


class ToyQueries(nn.Module):
    """Four learned (position, content) query pairs; references from the primary's layer."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.query_embed = nn.Embedding(4, 2 * hidden_dim)

    def forward(self, context: QueryContext) -> QueryGroup:
        b = context.memory.shape[0]
        query_pos, tgt = self.query_embed.weight.split(self.hidden_dim, dim=1)
        query_pos, tgt = query_pos[None].expand(b, -1, -1), tgt[None].expand(b, -1, -1)
        return QueryGroup(TOY, tgt, query_pos, context.source.reference_points(query_pos).sigmoid())


TOY_UNIT = MethodUnit(
    TOY,
    streams=(StreamSpec(TOY, loss_weights={"cls": 3.0}),),
    provider=lambda cfg: ToyQueries(cfg.hidden_dim),
    strategy=lambda tools: OneToOneSupervision(tools.hungarian, TOY),
)


def test_a_method_registered_from_one_module_trains_and_reports_its_terms():
    register(TOY_UNIT)
    try:
        torch.manual_seed(0)
        model = build_model(tiny_model_config(two_stage=False, num_classes=3)).train()
        criterion = build_criterion(SupervisionConfig(), num_classes=3)
        assert "query_groups.0.query_embed.weight" in model.state_dict()
        assert criterion.weights[TOY].cls == 3.0
        _, images, mask = padded_batch([(64, 64), (48, 64)])
        targets = [{"boxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]]), "labels": torch.tensor([1])},
                   {"boxes": torch.tensor([[0.3, 0.4, 0.2, 0.2], [0.7, 0.6, 0.3, 0.3]]),
                    "labels": torch.tensor([0, 2])}]
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        before = model.query_groups[0].query_embed.weight.detach().clone()
        for _ in range(2):
            result = criterion(model(images, mask), targets)
            toy_terms = {k: v for k, v in result.terms.items() if k.startswith("toy.")}
            assert {"toy.layer0.cls", "toy.layer1.bbox"} <= set(toy_terms)
            assert all(torch.isfinite(v) for v in toy_terms.values())
            optimizer.zero_grad()
            result.total.backward()
            optimizer.step()
        assert not torch.equal(before, model.query_groups[0].query_embed.weight)
        assert TOY not in model.eval()(images, mask).streams
    finally:
        unregister(TOY)
    assert TOY not in [unit.name for unit in registered()]


def test_per_stream_sections_accept_every_declared_stream():
    from msdetr.config.loader import load_config
    from msdetr.errors import MsdetrError

    cfg = load_config("tiny+hybrid", ["supervision.classification_loss.hybrid=iou_aware"])
    assert cfg.supervision.classification_loss.hybrid == "iou_aware"
    assert build_criterion(cfg.supervision, num_classes=3).classification_losses["hybrid"] == "iou_aware"
    with pytest.raises(MsdetrError, match="unknown key 'supervision.loss_weights.toy'"):
        load_config("tiny", ["supervision.loss_weights.toy.cls=4"])
    register(TOY_UNIT)
    try:  # a registered unit's stream is a key like any other
        cfg = load_config("tiny", ["supervision.loss_weights.toy.cls=4"])
        assert cfg.supervision.loss_weights.toy.cls == 4.0
        assert cfg.supervision.loss_weights.as_dict()["toy"].bbox == 5.0
    finally:
        unregister(TOY)


class RouteFfnBranch(DecoderBranch):
    """A Mr. DETR-like branch: the primary queries rerun with a route-specific FFN in every layer
    and learned instruction tokens prepended to the self-attention keys/values."""

    def __init__(self, hidden_dim: int, num_layers: int):
        super().__init__("routed")
        self.ffns = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
        self.tokens = nn.Parameter(torch.randn(2, hidden_dim))
        self.norm = nn.LayerNorm(hidden_dim)

    def _instructed_self_attention(self, layer, tgt, query_pos, attn_mask):
        tokens = self.tokens[None].expand(tgt.shape[0], -1, -1)
        keys = torch.cat([tokens, tgt + query_pos], 1)
        values = torch.cat([tokens, tgt], 1)
        out = layer.self_attn(tgt + query_pos, keys, values, need_weights=False)[0]
        return self.norm(tgt + out)

    def substitutes(self, num_layers):
        return [{"self": self._instructed_self_attention,
                 "ffn": lambda layer, tgt, query_pos, attn_mask, ffn=ffn: tgt + ffn(tgt)} for ffn in self.ffns]


def test_a_branch_reruns_the_decoder_with_its_own_blocks():
    unit = MethodUnit("routed", streams=(StreamSpec("routed"),),
                      branch=lambda cfg: RouteFfnBranch(cfg.hidden_dim, cfg.dec_layers))
    register(unit)
    try:
        torch.manual_seed(0)
        model = build_model(tiny_model_config()).train()
        assert {"branches.0.tokens", "branches.0.ffns.0.weight"} <= set(model.state_dict())
        _, images, mask = padded_batch([(64, 64)])
        out = model(images, mask)
        routed, primary = out.streams["routed"], out.streams["one_to_one"]
        assert routed.logits.shape == primary.logits.shape
        assert not torch.allclose(routed.logits, primary.logits)
        routed.logits.sum().backward()
        assert model.branches[0].tokens.grad.abs().sum() > 0
        assert model.branches[0].ffns[-1].weight.grad.abs().sum() > 0
        assert "routed" not in model.eval()(images, mask).streams
    finally:
        unregister("routed")
