"""Mr. DETR as a training method (msdetr.methods.mr_detr): its streams and loss terms alone and with
MS-DETR, nothing of it at inference (unless the release's score fusion is on), the positive cap, the
config checks, and its presets training steps on a shrunk model."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from msdetr.config.loader import load_config
from msdetr.errors import MsdetrError
from msdetr.losses import build_criterion
from msdetr.methods.mr_detr.config import MrDetrModelConfig, MrDetrSupervisionConfig
from msdetr.methods.mr_detr.fusion import fuse_layer_scores
from msdetr.methods.mr_detr.supervision import MrDetrSupervision
from msdetr.methods.unit import SupervisionTools
from msdetr.modeling.build import build_model
from msdetr.supervision.encoder import EncoderAssigner
from test_overlay_streams import SHRINK, _batch
from tiny_models import tiny_model_config

ROUTES = {"mr_instructive", "mr_sep", "mr_encoder"}


def _step(spec: str, overrides: list[str] = ()):
    torch.manual_seed(0)
    cfg = load_config(spec, [*SHRINK, *overrides])
    model = build_model(cfg.model).train()
    criterion = build_criterion(cfg.supervision, cfg.model.num_classes)
    images, mask, targets = _batch(False)
    output = model(images, mask, targets=targets)
    result = criterion(output, targets)
    result.total.backward()
    return cfg, model, output, result


@pytest.mark.parametrize("spec", ["tiny_ddetr+mr_detr", "tiny_ddetr+mr_detr+ms_detr"])
def test_overlay_trains_a_step_with_the_routes_streams_and_terms(spec):
    cfg, model, output, result = _step(spec)
    layers = cfg.model.dec_layers
    extra = {"one_to_many"} if "ms_detr" in spec else set()
    assert set(output.streams) == {"one_to_one", "mr_instructive", "mr_sep", *extra}
    assert set(output.encoders) == {"mr_encoder"}
    q, c = cfg.model.num_queries, cfg.model.num_classes
    for stream in ("mr_instructive", "mr_sep"):
        assert output.streams[stream].logits.shape == (layers, 2, q, c)
        for layer in range(layers):
            assert {f"{stream}.layer{layer}.{t}" for t in ("cls", "bbox", "giou")} <= set(result.terms)
    assert {"mr_encoder.cls", "mr_encoder.bbox", "mr_encoder.giou"} <= set(result.terms)
    assert math.isfinite(result.total.item())
    # every route parameter is trained (instruction tokens, route norm, sep FFN, second encoder head)
    for name, p in model.branches[0].named_parameters():
        assert p.grad is not None, name
        # the box head's hidden layers start without gradient: its last layer's weight starts at 0
        assert p.grad.abs().sum() > 0 or "box_head.layers.2" not in name and "box_head" in name, name


def test_routes_can_be_turned_off_one_by_one():
    _, _, output, result = _step("tiny_ddetr+mr_detr", ["model.mr_detr.instructive_route=false"])
    assert set(output.streams) == {"one_to_one", "mr_sep"} and not output.encoders
    assert not [t for t in result.terms if t.startswith(("mr_instructive", "mr_encoder"))]
    _, model, output, _ = _step("tiny_ddetr+mr_detr", ["model.mr_detr.sep_route=false"])
    assert set(output.streams) == {"one_to_one", "mr_instructive"}
    assert not hasattr(model.branches[0].params.layers[0], "linear1")


def _eval_logits(model, images, mask):
    with torch.no_grad():
        out = model.eval()(images, mask)
    assert set(out.streams) == {"one_to_one"} and not out.encoders  # nothing of the routes at inference
    return out.streams["one_to_one"]


def test_inference_is_the_plain_detector_unless_scores_are_fused():
    images, mask, _ = _batch(False)
    torch.manual_seed(0)
    with_routes = build_model(tiny_model_config(mixed_selection=True, mr_detr=MrDetrModelConfig(enabled=True)))
    plain = build_model(tiny_model_config(mixed_selection=True))
    missing, unexpected = plain.load_state_dict(with_routes.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("branches.0.") for k in unexpected)
    ours, theirs = _eval_logits(with_routes, images, mask), _eval_logits(plain, images, mask)
    assert torch.equal(ours.logits, theirs.logits) and torch.equal(ours.boxes, theirs.boxes)
    with torch.no_grad():  # the routes' parameters do not reach the inference outputs
        for p in with_routes.branches[0].parameters():
            p.add_(1.0)
    assert torch.equal(_eval_logits(with_routes, images, mask).logits, theirs.logits)

    with_routes.branches[0].cfg.score_fusion = True  # the release's fusion: changes the scores, not the boxes
    fused = _eval_logits(with_routes, images, mask)
    assert torch.equal(fused.boxes, theirs.boxes)
    assert not torch.allclose(fused.logits, theirs.logits)
    torch.testing.assert_close(fused.logits, fuse_layer_scores(theirs.logits))


def test_score_fusion_follows_the_released_formula():
    logits = torch.tensor([[[[0.5, -8.0]]], [[[2.0, -1.0]]]])  # (L 2, B 1, Q 1, C 2)
    def detrex_logit(p):  # detrex's inverse_sigmoid: log(max(p, 1e-3) / max(1 - p, 1e-3))
        return torch.log(p.clamp(min=1e-3) / (1 - p).clamp(min=1e-3))

    x0 = detrex_logit(logits[0].sigmoid())  # -8 is clamped: p = 3.4e-4 < 1e-3
    x1 = detrex_logit(torch.sqrt((logits[1].sigmoid() ** 2.001 + x0.sigmoid() ** 1.853) / 2))
    expected = torch.stack([x0, x1])
    assert expected[0, 0, 0, 1] > -7.0
    torch.testing.assert_close(fuse_layer_scores(logits), expected)


@pytest.mark.parametrize(("queries", "cap"), [(300, 225), (900, 225), (226, 225), (100, 100), (7, 7)])
def test_positive_cap_is_absolute_as_released(queries, cap):
    top_k = partial(SupervisionTools.top_k, SimpleNamespace(generator=None))
    strategy = MrDetrSupervision(MrDetrSupervisionConfig(enabled=True), top_k, EncoderAssigner())
    assert int(queries * strategy.assigner(queries).positive_fraction) == cap


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["model.mr_detr.enabled=false"], "model.mr_detr.enabled is false but supervision.mr_detr.enabled is true"),
        (["supervision.mr_detr.enabled=false"], "model.mr_detr.enabled is true but supervision.mr_detr.enabled"),
        (["model.mr_detr.num_instructions=-1"], "model.mr_detr.num_instructions is -1; it must be an integer >= 0"),
        (["supervision.mr_detr.max_positives=0"], "supervision.mr_detr.max_positives is 0"),
        (["supervision.mr_detr.normalizer_scale=0"], "supervision.mr_detr.normalizer_scale is 0"),
        (["model.mixed_selection=false"], "model.mr_detr.instructive_route is True; it must be used with "
                                          "model.two_stage and model.mixed_selection"),
        (["model.mr_detr.instructive_route=false", "model.mr_detr.sep_route=false"], "model.mr_detr.sep_route"),
        (["supervision.loss_weights.mr_sep.cls=0", "supervision.loss_weights.mr_sep.bbox=0",
          "supervision.loss_weights.mr_sep.giou=0"], "supervision.loss_weights.mr_sep are all 0"),
    ],
)
def test_bad_settings_are_one_line_errors_when_the_config_loads(overrides, says):
    with pytest.raises(MsdetrError) as err:
        load_config("mrdetr_ddetr_pp_r50_300", overrides)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_route_loss_without_the_routes_is_an_error():
    with pytest.raises(MsdetrError, match="classification_loss.mr_sep is 'iou_aware' but the model has no"):
        load_config("ddetr_pp_r50_300", ["supervision.classification_loss.mr_sep=iou_aware"])


def test_sep_route_alone_needs_no_second_encoder_head():
    cfg = tiny_model_config(mr_detr=MrDetrModelConfig(enabled=True, instructive_route=False))
    model = build_model(cfg)
    assert model.branches[0].params.encoder_class_head is None
    with pytest.raises(MsdetrError, match="model.mr_detr.instructive_route"):
        build_model(tiny_model_config(mr_detr=MrDetrModelConfig(enabled=True)))  # no mixed selection


def test_second_encoder_head_starts_as_the_released_copy():
    model = build_model(tiny_model_config(mixed_selection=True, mr_detr=MrDetrModelConfig(enabled=True)))
    params, heads = model.branches[0].params, model.heads
    assert torch.equal(params.encoder_class_head.weight, heads.class_heads[0].weight)
    assert torch.equal(params.encoder_box_head.layers[0].weight, heads.box_heads[0].layers[0].weight)
    assert params.encoder_box_head.layers[-1].bias.tolist() == [0.0, 0.0, -2.0, -2.0]
    assert params.encoder_box_head is not heads.box_heads[0]


@pytest.mark.parametrize("preset", ["mrdetr_ddetr_pp_r50_300", "msdetr_mrdetr_ddetr_pp_r50_300",
                                    "mrdetr_dino_r50_900", "mrdetr_align_dino_r50_900"])
def test_presets_train_two_steps_on_a_shrunk_model(preset):
    from test_small_images_two_stage import shrunk_model

    model_cfg, supervision = shrunk_model(preset)
    model_cfg = replace(model_cfg, num_queries=12, num_feature_levels=2)
    torch.manual_seed(0)
    model = build_model(model_cfg).train()
    criterion = build_criterion(supervision, model_cfg.num_classes)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images, mask, targets = _batch(False)
    for _ in range(2):
        output = model(images, mask, targets=targets)
        result = criterion(output, targets)
        optimizer.zero_grad()
        result.total.backward()
        optimizer.step()
        assert math.isfinite(result.total.item())
    assert {t.split(".")[0] for t in result.terms} >= ROUTES | {"one_to_one", "encoder"}
    assert ("one_to_many" in output.streams) == preset.startswith("msdetr_")


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["mrdetr_ddetr_pp_r50_300", "msdetr_mrdetr_ddetr_pp_r50_300"])
def test_trainer_runs_two_steps(preset, tmp_path):
    from test_small_images_two_stage import test_trainer_runs_two_steps_on_96px_images

    test_trainer_runs_two_steps_on_96px_images(preset, tmp_path)


def test_routes_follow_the_primary_when_tokens_run_short():
    """32 px images, 2 levels (strides 16, 32): 5 encoder tokens for 30 queries; every route gets S queries."""
    cfg = tiny_model_config(mixed_selection=True, num_queries=30, num_feature_levels=2,
                            mr_detr=MrDetrModelConfig(enabled=True))
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 32, 32, dtype=torch.bool)
    targets = [{"boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]]), "labels": torch.tensor([1])}] * 2
    out = model(images, mask, targets=targets)
    counts = {name: stream.logits.shape[2] for name, stream in out.streams.items()}
    tokens = out.encoder.logits.shape[1]
    assert tokens == 5 and out.encoders["mr_encoder"].logits.shape[1] == tokens
    assert counts == {"one_to_one": tokens, "mr_instructive": tokens, "mr_sep": tokens}
    sup = load_config("tiny_ddetr+mr_detr").supervision
    result = build_criterion(sup, cfg.num_classes)(out, targets)
    result.total.backward()
    assert math.isfinite(result.total.item())


def test_with_denoising_the_routes_carry_the_denoising_queries_hidden_from_the_tokens():
    cfg, model, output, result = _step("tiny_ddetr+dino+mr_detr")
    dn = output.streams["denoising"].logits.shape[2]
    assert output.streams["mr_instructive_dn"].logits.shape[2] == output.streams["mr_sep_dn"].logits.shape[2] == dn
    assert {t.split(".")[0] for t in result.terms} >= {"mr_instructive_dn", "mr_sep_dn", "denoising"}

    from msdetr.methods.mr_detr.attention import instructive_self_block
    from msdetr.modeling.queries import QueryInit
    from msdetr.modeling.query_groups import QueryGroup, assemble_queries

    layer, params = model.decoder.layers[0], model.branches[0].params.layers[0]
    g = torch.Generator().manual_seed(1)
    d = cfg.model.hidden_dim
    primary = QueryInit(torch.randn(1, 4, d, generator=g), torch.randn(1, 4, d, generator=g), torch.rand(1, 4, 4))
    group = QueryGroup("denoising", torch.randn(1, 3, d, generator=g), torch.randn(1, 3, d, generator=g),
                       torch.rand(1, 3, 4), sees_primary=True)
    q = assemble_queries(primary, [group], "one_to_one")
    with torch.no_grad():
        before = instructive_self_block(layer, params, q.tgt, q.query_pos, q.attn_mask, num_primary=4)
        params.instruction.add_(1.0)
        after = instructive_self_block(layer, params, q.tgt, q.query_pos, q.attn_mask, num_primary=4)
    # the denoising queries neither see the tokens nor are seen by them; the primary queries see them
    torch.testing.assert_close(after[:, 4:], before[:, 4:])
    assert not torch.allclose(after[:, :4], before[:, :4])


@pytest.mark.parametrize("rank_weights_l1", [False, True])
def test_prime_sample_weights_leave_the_routes_l1_term_unweighted_as_released(rank_weights_l1):
    overrides = ["model.num_queries=30", f"supervision.mr_detr.rank_weights_l1={str(rank_weights_l1).lower()}",
                 "supervision.mr_detr.threshold=0.0"]  # many pairs per target
    torch.manual_seed(0)
    cfg = load_config("tiny_ddetr+dino+align+mr_detr", [*SHRINK, *overrides])
    assert cfg.supervision.mr_detr.tau == 1.5
    model = build_model(cfg.model).train()
    criterion = build_criterion(cfg.supervision, cfg.model.num_classes)
    images, mask, targets = _batch(False)
    output = model(images, mask, targets=targets)
    state = torch.random.get_rng_state()
    tasks = [t for t in criterion.strategy.plan(output, targets) if t.stream == "mr_sep"]
    torch.random.set_rng_state(state)
    result = criterion(output, targets)
    num_targets = sum(len(t["labels"]) for t in targets)
    task = tasks[0]
    boxes = torch.cat([task.predictions.boxes[b, q] for b, (q, _) in enumerate(task.assignment)])
    goal = torch.cat([targets[b]["boxes"][t] for b, (_, t) in enumerate(task.assignment)])
    assert max(torch.bincount(t).max() for _, t in task.assignment) > 1
    unweighted = (boxes - goal).abs().sum() / (num_targets * cfg.supervision.mr_detr.normalizer_scale)  # 3N
    term = result.terms[f"mr_sep.layer{task.layer}.bbox"]
    assert torch.allclose(term, unweighted) != rank_weights_l1
