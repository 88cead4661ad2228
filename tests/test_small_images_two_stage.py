"""Two-stage Deformable-DETR++ presets on small images: fewer encoder tokens (S) than queries (Q).

The primary queries are then the top-S proposals (with mixed selection: the first S content
embeddings, the others unused), every stream built from them has S queries, H-DETR's hybrid branch
takes min(E, S) proposals, and training, prediction through the public API and ONNX export work."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import msdetr
from msdetr.config.loader import load_config
from msdetr.losses.build import build_criterion
from msdetr.modeling.build import build_model
from msdetr.modeling.queries import TwoStageQueries
from test_predict_support import random_checkpoint
from test_train_support import tiny_run_config
from tiny_models import tiny_model_config

PRESETS = [
    "ddetr_pp_r50_300", "msdetr_pp_r50_300", "hdetr_pp_r50_300", "msdetr_hdetr_pp_r50_300",
    "group_ddetr_pp_r50_300", "msdetr_group_ddetr_pp_r50_300", "dino_r50_900", "msdetr_dino_r50_900",
    "align_dino_r50_900", "msdetr_align_dino_r50_900", "dac_ddetr_pp_r50_300", "msdetr_dac_ddetr_pp_r50_300",
]


def shrunk_model(preset: str):
    """The preset's model and supervision (queries, levels, methods) on a resnet18, hidden 32, 1 + 2 layers."""
    cfg = load_config(preset)
    tiny = tiny_model_config()
    model = replace(cfg.model, hidden_dim=32, nheads=4, enc_layers=1, dec_layers=2, dim_feedforward=64,
                    num_classes=5, backbone=tiny.backbone)
    return model, cfg.supervision


def _targets(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"boxes": torch.cat([torch.rand(count, 2, generator=g) * 0.5 + 0.25,
                                 torch.rand(count, 2, generator=g) * 0.3 + 0.1], 1),
             "labels": torch.randint(0, 5, (count,), generator=g)} for _ in range(2)]


# the fast tier keeps one case per method family (each combined with MS-DETR, both image sizes
# covered); every other preset and size runs in the slow tier
FAST_CASES = {("msdetr_pp_r50_300", 96), ("msdetr_hdetr_pp_r50_300", 96), ("msdetr_group_ddetr_pp_r50_300", 32),
              ("msdetr_dino_r50_900", 32), ("msdetr_align_dino_r50_900", 96), ("msdetr_dac_ddetr_pp_r50_300", 96)}
CASES = [
    pytest.param(preset, size, objects, marks=() if (preset, size) in FAST_CASES else pytest.mark.slow,
                 id=f"{size}-{objects}-{preset}")
    for size, objects in [(96, 3), (32, 30)]  # 32 px: more objects than queries
    for preset in PRESETS
]


@pytest.mark.parametrize(("preset", "size", "objects"), CASES)
def test_preset_trains_one_step_with_fewer_tokens_than_queries(preset, size, objects):
    model_cfg, supervision = shrunk_model(preset)
    assert model_cfg.two_stage and model_cfg.mixed_selection and model_cfg.num_queries >= 300
    torch.manual_seed(0)
    model = build_model(model_cfg).train()
    criterion = build_criterion(supervision, model_cfg.num_classes)
    targets = _targets(objects)
    images = torch.randn(2, 3, size, size)
    out = model(images, torch.zeros(2, size, size, dtype=torch.bool), targets=targets)
    tokens = out.encoder.logits.shape[1]
    assert tokens < model_cfg.num_queries and (size > 32 or tokens < objects)
    queries = {name: stream.logits.shape[2] for name, stream in out.streams.items()}
    assert queries["one_to_one"] == tokens
    for name in ("one_to_many", "dac"):
        assert queries.get(name, tokens) == tokens
    if model_cfg.hybrid.num_queries:
        assert queries["hybrid"] == min(model_cfg.hybrid.num_queries, tokens)
    if model_cfg.group.num_groups > 1:
        assert queries["group"] == (model_cfg.group.num_groups - 1) * tokens
    assert ("denoising" in queries) == model_cfg.denoising.enabled

    result = criterion(out, targets)
    values = result.term_values()
    assert all(math.isfinite(v) for v in values.values())
    streams = {key.split(".")[0] for key in result.terms}
    assert {"one_to_one", "encoder"} <= streams and set(queries) <= streams | {"one_to_one"}
    for name in set(queries) - {"denoising"}:  # every stream is supervised: some term is not zero
        assert any(v > 0 for k, v in values.items() if k.startswith(f"{name}.")), name
    result.total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    # one learned content query per selected proposal; the others are unused for this batch
    content = model.queries.content_embed.weight.grad
    assert content[:tokens].abs().sum(1).gt(0).all() and not content[tokens:].any()


def _proposals(num_tokens: int, num_queries: int, num_extra: int):
    """TwoStageQueries on one level of `num_tokens` cells with identity heads: the reference
    boxes of the primary and extra queries, and the proposals' boxes sorted by score."""
    torch.manual_seed(0)
    module = TwoStageQueries(num_queries, 32, mixed_selection=True)
    memory = torch.randn(1, num_tokens, 32)
    mask = torch.zeros(1, num_tokens, dtype=torch.bool)
    class_head, box_head = torch.nn.Linear(32, 1), torch.nn.Linear(32, 4)
    init = module(memory, mask, [(1, num_tokens)], class_head, box_head, num_extra=num_extra)
    order = init.encoder.logits[0, :, 0].argsort(descending=True)
    return init, init.encoder.boxes[0, order]


def test_extra_proposals_follow_the_primary_on_large_images():
    init, ranked = _proposals(num_tokens=40, num_queries=10, num_extra=25)
    assert init.tgt.shape[1] == 10 and init.extra.tgt.shape[1] == 25
    torch.testing.assert_close(init.reference_points[0], ranked[:10])
    torch.testing.assert_close(init.extra.reference_points[0], ranked[10:35])


@pytest.mark.parametrize(("num_tokens", "num_queries", "num_extra", "extra_ranks"), [
    (30, 10, 25, (5, 30)),  # Q < S < Q + E: the extra ones overlap the primary's ranks 5..9
    (8, 10, 4, (4, 8)),     # S < Q: the primary has S queries, the extra ones its last E
    (6, 10, 25, (0, 6)),    # S < E: the extra ones are all S proposals
])
def test_extra_proposals_overlap_the_primary_when_tokens_run_short(num_tokens, num_queries, num_extra,
                                                                   extra_ranks):
    """S < Q + E: the primary keeps the top min(Q, S), the extra ones the last min(E, S) of the top-S."""
    init, ranked = _proposals(num_tokens, num_queries, num_extra)
    primary = min(num_queries, num_tokens)
    assert init.tgt.shape[1] == primary and init.query_pos.shape[1] == primary
    torch.testing.assert_close(init.reference_points[0], ranked[:primary])
    start, stop = extra_ranks
    assert init.extra.tgt.shape[1] == stop - start == min(num_extra, num_tokens)
    torch.testing.assert_close(init.extra.reference_points[0], ranked[start:stop])


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """300 two-stage mixed-selection queries, evaluated at 32 px (a 32 x 64 image stays 32 x 64)."""
    return random_checkpoint(tmp_path_factory.mktemp("small") / "model.pt", eval_size=32, num_queries=300,
                             two_stage=True, mixed_selection=True, with_box_refine=True, look_forward_twice=True)


def test_public_api_predicts_a_32x64_image(small_checkpoint):
    detector = msdetr.load(small_checkpoint)
    assert detector.model.cfg.num_queries == 300 and detector.model.cfg.mixed_selection
    pixels = np.random.default_rng(0).integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
    dets = detector.predict(pixels, score=0.0)
    logits, boxes, _ = detector.final_predictions([torch.from_numpy(pixels).permute(2, 0, 1)])
    tokens = 2 * 4 + 1 * 2  # strides 16 and 32 of a 32 x 64 input
    assert logits.shape == (1, tokens, 3) and torch.isfinite(boxes).all()
    assert len(dets) == min(detector.settings.topk, tokens * 3) and dets.image_size == (32, 64)
    assert (dets.scores[:-1] >= dets.scores[1:]).all() and torch.isfinite(dets.boxes).all()
    assert (dets.boxes[:, 0::2] <= 64).all() and (dets.boxes[:, 1::2] <= 32).all()
    # a batch with a larger image: one query count for the batch, each image its detections
    both = detector.predict([pixels, np.zeros((40, 90, 3), np.uint8)], score=0.0)
    assert [d.image_size for d in both] == [(32, 64), (40, 90)] and all(len(d) > 0 for d in both)


@pytest.mark.slow
def test_fixed_size_onnx_export_of_a_small_input(small_checkpoint, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from msdetr.export.inference_graph import InferenceGraph
    from msdetr.export.onnx_export import export_onnx, run_onnxruntime

    detector = msdetr.load(small_checkpoint)
    graph = InferenceGraph(detector.model, topk=100)
    image = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        boxes, scores, labels = graph(image)
    assert scores.shape == (1, 10 * 3)  # K capped at the queries x classes this input gives
    exported = export_onnx(graph, tmp_path / "small.onnx", 32, 64)
    got_boxes, got_scores, got_labels = run_onnxruntime(exported.path, image)
    assert torch.equal(got_labels, labels)
    torch.testing.assert_close(got_scores, scores, atol=1e-3, rtol=0)
    torch.testing.assert_close(got_boxes, boxes, atol=0.1, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["msdetr_pp_r50_300", "dino_r50_900"])
def test_trainer_runs_two_steps_on_96px_images(preset, tmp_path):
    from msdetr.engine.trainer import Trainer

    model_cfg, supervision = shrunk_model(preset)
    small = tiny_run_config(tmp_path, train_images=4, val_images=2, epochs=1, batch_size=2,
                            mixed=model_cfg.mixed_supervision.enabled, max_steps=2, eval_every=0, vis_images=0)
    transforms = replace(small.data.transforms, train_min_sizes=[96], train_max_size=96, eval_min_size=96,
                         eval_max_size=96)
    data = replace(small.data, synthetic=replace(small.data.synthetic, size=96), transforms=transforms)
    cfg = replace(small, name=preset, model=replace(model_cfg, num_classes=small.model.num_classes),
                  supervision=supervision, data=data)
    steps = []
    result = Trainer(cfg, tmp_path / "run", verbose=False,
                     callbacks=[lambda trainer, step: steps.append(step)]).fit()
    assert result.steps == 2 and result.skipped_steps == 0
    assert all(math.isfinite(value) for value in steps[-1].terms.values())
    assert "bbox_mAP" in result.metrics
