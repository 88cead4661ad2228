"""H-DETR hybrid matching and Group DETR: query providers, assignments and loss normalizers."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.loader import load_config
from msdetr.config.model import GroupQueriesConfig, HybridQueriesConfig, MixedSupervisionConfig
from msdetr.config.supervision import SupervisionConfig
from msdetr.errors import MsdetrError
from msdetr.losses import build_criterion
from msdetr.methods.contracts import GroupMeta
from msdetr.modeling.build import build_model
from msdetr.modeling.outputs import DetectorOutput, EncoderPredictions, StreamPredictions
from msdetr.supervision.base import LayerPredictions
from msdetr.supervision.compose import ComposedSupervision
from msdetr.supervision.group import GroupSupervision
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.hybrid import HybridSupervision, repeat_targets
from msdetr.supervision.one_to_one import OneToOneSupervision
from support.tiny import padded_batch, tiny_model_config

C, L, B = 5, 2, 2
TARGETS = [
    {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1], [0.7, 0.6, 0.3, 0.2]]),
     "labels": torch.tensor([1, 2, 4])},
    {"boxes": torch.tensor([[0.4, 0.5, 0.2, 0.3]]), "labels": torch.tensor([0])},
]


def _stream(queries: int, seed: int) -> StreamPredictions:
    g = torch.Generator().manual_seed(seed)
    return StreamPredictions(torch.randn(L, B, queries, C, generator=g), torch.rand(L, B, queries, 4, generator=g))


def _output(**streams) -> DetectorOutput:
    meta = {}
    if "group" in streams:
        groups, size = streams.pop("group_shape")
        meta["group"] = {"num_groups": groups, "group_size": size}
    g = torch.Generator().manual_seed(9)
    encoder = EncoderPredictions(torch.randn(B, 30, C, generator=g), torch.rand(B, 30, 4, generator=g),
                                 torch.rand(B, 30, 4, generator=g))
    return DetectorOutput(streams=streams, encoder=encoder, query_meta=meta)


def test_hybrid_gives_each_target_k_distinct_queries_on_every_layer():
    k = 3
    out = _output(one_to_one=_stream(6, 0), hybrid=_stream(20, 1))
    tasks = HybridSupervision(HungarianAssigner(), k).plan(out, TARGETS)
    assert [t.name for t in tasks] == ["hybrid.layer0", "hybrid.layer1"]
    assert tasks[-1].log_class_error and not tasks[0].log_class_error
    for task in tasks:
        assert task.normalizer_scale == k
        for (pred, tgt), target in zip(task.assignment, TARGETS):
            n = len(target["labels"])
            assert len(pred) == k * n and len(set(pred.tolist())) == k * n  # k * n distinct queries
            assert torch.equal(torch.bincount(tgt % n, minlength=n), torch.full((n,), k))
        repeated = task.targets
        assert torch.equal(repeated[0]["labels"], torch.tensor([1, 2, 4] * k))
    assert torch.equal(repeat_targets(TARGETS, 2)[1]["boxes"], TARGETS[1]["boxes"].repeat(2, 1))


def test_hybrid_official_normalization_divides_by_k():
    out = _output(one_to_one=_stream(6, 0), hybrid=_stream(20, 1))
    results = []
    for official in (True, False):
        config = SupervisionConfig()
        config.hybrid.enabled, config.hybrid.k, config.hybrid.official_normalization = True, 4, official
        results.append(build_criterion(config, C)(out, TARGETS).terms)
    official, plain = results
    for name, value in plain.items():
        factor = 4.0 if name.startswith("hybrid.") else 1.0
        torch.testing.assert_close(official[name] * factor, value, rtol=1e-6, atol=0)


def test_group_assignment_is_hungarian_of_each_group_alone():
    groups, size = 3, 6
    stream = _stream(groups * size, 2)
    out = _output(one_to_one=_stream(size, 0), group=stream, group_shape=(groups, size))
    hungarian = HungarianAssigner()
    tasks = ComposedSupervision([OneToOneSupervision(hungarian), GroupSupervision(hungarian)]).plan(out, TARGETS)
    group_tasks = [t for t in tasks if t.stream == "group"]
    assert [t.name for t in tasks] == ["one_to_one.layer0", "one_to_one.layer1", "group.layer0", "group.layer1"]
    for layer, task in enumerate(group_tasks):
        for g in range(groups):
            part = slice(g * size, (g + 1) * size)
            alone = hungarian(LayerPredictions(stream.logits[layer][:, part], stream.boxes[layer][:, part]), TARGETS)
            for (pred, tgt), (pred_alone, tgt_alone), target in zip(task.assignment, alone, TARGETS):
                n = len(target["labels"])
                assert torch.equal(pred[g * n : (g + 1) * n], pred_alone + g * size)
                assert torch.equal(tgt[g * n : (g + 1) * n], tgt_alone)


@pytest.mark.parametrize("mixed", [False, True])
def test_group_normalization_averages_the_one_to_one_losses_over_groups(mixed):
    groups, size = 3, 6
    streams = {"one_to_one": _stream(size, 0), "group": _stream(groups * size, 2), "group_shape": (groups, size)}
    if mixed:
        streams["one_to_many"] = _stream(size, 3)
    results = []
    for normalize in (True, False):
        config = SupervisionConfig(strategy="mixed" if mixed else "one_to_one")
        config.group.enabled, config.group.normalize_over_groups = True, normalize
        torch.manual_seed(0)  # the top-K sampler draws the same numbers in both runs
        results.append(build_criterion(config, C)(_output(**dict(streams)), TARGETS).terms)
    averaged, plain = results
    for name, value in plain.items():
        factor = groups + 1.0 if name.startswith(("one_to_one.", "group.")) else 1.0
        torch.testing.assert_close(averaged[name] * factor, value, rtol=1e-6, atol=0)


def _group_model(mixed: bool):
    cfg = tiny_model_config(mixed_selection=True, group=GroupQueriesConfig(num_groups=3),
                            mixed_supervision=MixedSupervisionConfig(enabled=mixed))
    torch.manual_seed(0)
    return build_model(cfg).train(), cfg


@pytest.mark.parametrize("mixed", [False, True])
def test_groups_are_isolated_copies_of_the_primary_queries(mixed):
    """With the primary's content queries copied into every group, each group predicts exactly
    what the primary does: same proposals, same decoder, and no attention across groups."""
    model, cfg = _group_model(mixed)
    provider = model.query_groups[0]
    with torch.no_grad():
        provider.query_embed.weight.copy_(model.queries.content_embed.weight.repeat(2, 1))
    _, images, mask = padded_batch([(64, 80), (72, 56)])
    with torch.no_grad():
        out = model(images, mask)
    primary, group = out.streams["one_to_one"], out.streams["group"]
    q = cfg.num_queries
    assert group.logits.shape == (cfg.dec_layers, 2, 2 * q, cfg.num_classes)
    assert out.query_meta["group"] == GroupMeta(num_groups=2, group_size=q)
    for g in range(2):
        torch.testing.assert_close(group.logits[:, :, g * q : (g + 1) * q], primary.logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(group.boxes[:, :, g * q : (g + 1) * q], primary.boxes, atol=1e-5, rtol=0)
    model.eval()
    with torch.no_grad():
        assert set(model(images, mask).streams) == {"one_to_one"}


@pytest.mark.parametrize("two_stage", [True, False])
def test_hybrid_queries_leave_the_primary_unchanged_and_train(two_stage):
    cfg = tiny_model_config(two_stage=two_stage, mixed_selection=two_stage, hybrid=HybridQueriesConfig(12))
    torch.manual_seed(0)
    model = build_model(cfg).train()
    _, images, mask = padded_batch([(64, 80), (72, 56)])
    out = model(images, mask)
    assert out.streams["hybrid"].logits.shape == (cfg.dec_layers, 2, 12, cfg.num_classes)
    with torch.no_grad():
        plain = model(images, mask, all_streams=False)
    torch.testing.assert_close(out.streams["one_to_one"].logits.detach(), plain.streams["one_to_one"].logits,
                               atol=1e-5, rtol=0)
    config = SupervisionConfig()
    config.hybrid.enabled, config.hybrid.k = True, 2
    result = build_criterion(config, cfg.num_classes)(out, TARGETS)
    result.total.backward()
    embed = model.query_groups[0].content_embed if two_stage else model.query_groups[0].query_embed
    assert embed.weight.grad.abs().sum() > 0


def test_two_stage_hybrid_queries_are_the_proposals_after_the_primary_top_k():
    cfg = tiny_model_config(hybrid=HybridQueriesConfig(12))  # two-stage, content from the proposals
    torch.manual_seed(0)
    model = build_model(cfg).train()
    _, images, mask = padded_batch([(64, 80)])
    seen = {}
    model.query_groups[0].register_forward_hook(lambda m, inp, out: seen.update(group=out))
    with torch.no_grad():
        out = model(images, mask)
    q = cfg.num_queries
    ranked = out.encoder.logits[..., 0].topk(q + 12, dim=1).indices[:, q:]
    expected = torch.gather(out.encoder.boxes, 1, ranked[..., None].expand(-1, -1, 4))
    torch.testing.assert_close(seen["group"].reference_points, expected, atol=1e-6, rtol=0)


def test_extra_queries_and_their_supervision_come_together():
    with pytest.raises(MsdetrError, match="model.hybrid.num_queries > 0 is true but supervision.hybrid.enabled"):
        load_config("ddetr_pp_r50_300", ["model.hybrid.num_queries=10"])
    with pytest.raises(MsdetrError, match="supervision.group.enabled is true"):
        load_config("ddetr_pp_r50_300", ["supervision.group.enabled=true"])
    with pytest.raises(MsdetrError, match="hybrid.k"):
        load_config("hdetr_pp_r50_300", ["supervision.hybrid.k=0"])
