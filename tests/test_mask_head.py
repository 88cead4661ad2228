"""Mask head: shapes, gradients, per-stream masks; point-sampled losses equal dense ones when
every pixel is a point; the mask matching cost."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from msdetr.config.model import MaskHeadConfig, MixedSupervisionConfig
from msdetr.config.supervision import SupervisionConfig
from msdetr.losses.build import build_criterion
from msdetr.losses.mask_losses import MaskLoss, PointSampling
from msdetr.modeling.build import build_model
from msdetr.modeling.outputs import ONE_TO_MANY, ONE_TO_ONE, MaskPredictions
from msdetr.ops.point_sampling import FlatMasks, pixel_centres
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.mask_cost import MaskMatchingCost
from msdetr.supervision.pairs import flatten
from support.tiny import padded_batch, tiny_model_config

SIZES = [(64, 80), (48, 64)]


def mask_model(mixed: bool = True, **overrides):
    torch.manual_seed(0)
    cfg = tiny_model_config(mixed_supervision=MixedSupervisionConfig(enabled=mixed),
                            mask_head=MaskHeadConfig(enabled=True, mask_dim=16), **overrides)
    return build_model(cfg)


def mask_targets(sizes=SIZES) -> list[dict]:
    targets = []
    for h, w in sizes:
        masks = torch.zeros(2, h, w, dtype=torch.bool)
        masks[0, 5:30, 10:40] = True
        masks[1, 20:40, 30:60] = True
        boxes = torch.tensor([[25 / w, 17.5 / h, 30 / w, 25 / h], [45 / w, 30 / h, 30 / w, 20 / h]])
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "masks": masks})
    return targets


def test_mask_head_shapes_on_every_stream():
    model = mask_model().train()
    _, images, pixel_mask = padded_batch(SIZES)
    out = model(images, pixel_mask)
    for name in (ONE_TO_ONE, ONE_TO_MANY):
        masks = out.streams[name].masks
        assert masks.query_embed.shape == (2, 2, 7, 16)  # (L, B, Q, M)
        assert masks.stride == 8 and masks.pixel_embed.shape == (2, 16, 8, 10)  # stride 8 of 64 x 80
        assert masks.logits().shape == (2, 7, 8, 10)
    # the one-to-many masks come from the tapped features, the pixel map is shared
    assert out.streams[ONE_TO_MANY].masks.pixel_embed is out.streams[ONE_TO_ONE].masks.pixel_embed
    assert not torch.equal(out.streams[ONE_TO_MANY].masks.query_embed, out.streams[ONE_TO_ONE].masks.query_embed)
    model.eval()
    assert set(model(images, pixel_mask).streams) == {ONE_TO_ONE}


def test_box_only_detector_has_no_masks():
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    _, images, pixel_mask = padded_batch(SIZES)
    assert model.mask_head is None and model(images, pixel_mask).masks is None


def test_mask_losses_reach_every_mask_parameter():
    model = mask_model().train()
    _, images, pixel_mask = padded_batch(SIZES)
    targets = mask_targets()
    config = SupervisionConfig(strategy="mixed")
    config.masks.num_points, config.masks.matcher_points = 300, 200
    criterion = build_criterion(config, 5, with_masks=True)
    result = criterion(model(images, pixel_mask, targets=targets), targets)
    names = set(result.terms)
    for stream in (ONE_TO_ONE, ONE_TO_MANY):
        for layer in (0, 1):
            assert {f"{stream}.layer{layer}.mask", f"{stream}.layer{layer}.dice"} <= names
    mask_total = sum(v for k, v in result.terms.items() if k.endswith((".mask", ".dice")))
    mask_total.backward()
    for name, p in model.mask_head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the mask losses also train the decoder and encoder (through the embeddings)
    assert model.encoder.layers[0].linear1.weight.grad.abs().sum() > 0


def dense_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask2Former's losses on full (P, H, W) masks: mean BCE per mask, dice per mask, summed."""
    logits, targets = logits.flatten(1), targets.flatten(1).float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum()
    prob = logits.sigmoid()
    dice = (1 - (2 * (prob * targets).sum(1) + 1) / (prob.sum(1) + targets.sum(1) + 1)).sum()
    return bce, dice


def test_point_losses_equal_dense_losses_when_every_pixel_is_sampled():
    torch.manual_seed(0)
    h, w = 12, 16  # a stride-1 mask map, so each pixel centre is a map pixel
    masks = MaskPredictions(torch.randn(1, 2, 5, 8, requires_grad=True), torch.randn(2, 8, h, w), stride=1)
    target_masks = [torch.rand(3, h, w) > 0.5, torch.rand(2, h, w) > 0.6]
    targets = [{"labels": torch.zeros(3, dtype=torch.long), "masks": target_masks[0]},
               {"labels": torch.zeros(2, dtype=torch.long), "masks": target_masks[1]}]
    assignment = [(torch.tensor([0, 3, 4]), torch.tensor([2, 0, 1])), (torch.tensor([1, 2]), torch.tensor([1, 0]))]
    pairs = flatten(assignment, torch.device("cpu"))
    flat_target = torch.tensor([0, 3])[pairs.image] + pairs.target
    got = MaskLoss()(masks, pairs, flat_target, targets, points=pixel_centres(h, w))
    dense_logits = masks.logits()[pairs.image, pairs.query]
    dense_targets = torch.cat(target_masks)[flat_target]
    bce, dice = dense_losses(dense_logits, dense_targets)
    torch.testing.assert_close(got["mask"], bce)
    torch.testing.assert_close(got["dice"], dice)
    # and the gradients agree
    grad_points = torch.autograd.grad(got["mask"] + got["dice"], masks.query_embed)[0]
    grad_dense = torch.autograd.grad(bce + dice, masks.query_embed)[0]
    torch.testing.assert_close(grad_points, grad_dense)


def test_uncertain_points_are_the_requested_number_and_in_the_image():
    torch.manual_seed(0)
    masks = MaskPredictions(torch.randn(1, 1, 4, 8), torch.randn(1, 8, 6, 6), stride=4)
    targets = [{"labels": torch.zeros(1, dtype=torch.long), "masks": torch.ones(1, 20, 24, dtype=torch.bool)}]
    pairs = flatten([(torch.tensor([1]), torch.tensor([0]))], torch.device("cpu"))
    loss = MaskLoss(PointSampling(num_points=100))
    result = loss(masks, pairs, torch.tensor([0]), targets)
    assert torch.isfinite(result["mask"]) and 0 <= float(result["dice"]) <= 1


def test_flat_masks_read_each_object_at_its_own_size():
    a = torch.zeros(1, 4, 6, dtype=torch.bool)
    a[0, 1, 2] = True
    b = torch.zeros(2, 3, 3, dtype=torch.bool)
    b[1, 2, 0] = True
    flat = FlatMasks([a, b])
    points = torch.tensor([[[2.5 / 6, 1.5 / 4], [0.1, 0.1]], [[0.5 / 3, 2.5 / 3], [0.9, 0.9]]])
    values = flat.sample(torch.tensor([0, 2]), points)
    assert values.tolist() == [[1.0, 0.0], [1.0, 0.0]]


def test_mask_cost_prefers_the_query_whose_mask_matches():
    h, w = 16, 16
    target = torch.zeros(1, h, w, dtype=torch.bool)
    target[0, :, :8] = True  # left half
    # map with one channel: +1 on the left half, -1 on the right; query 0 = +10 (left), 1 = -10 (right)
    pixel = torch.where(torch.arange(w) < 8, 1.0, -1.0).expand(h, w)[None, None].clone()
    masks = MaskPredictions(torch.tensor([[[[10.0], [-10.0]]]]), pixel, stride=1)
    targets = [{"labels": torch.zeros(1, dtype=torch.long), "boxes": torch.tensor([[0.25, 0.5, 0.5, 1.0]]),
                "masks": target}]
    cost = MaskMatchingCost(num_points=400, generator=torch.Generator().manual_seed(0))(masks, targets, 1)
    assert cost.shape == (1, 1, 2, 1) and cost[0, 0, 0, 0] < cost[0, 0, 1, 0] - 5
    # with identical boxes, the Hungarian assigner now picks the query with the right mask
    assigner = HungarianAssigner(cost_class=0, mask_cost=MaskMatchingCost(num_points=400))
    logits, boxes = torch.zeros(1, 1, 2, 1), torch.tensor([[[[0.5, 0.5, 0.5, 0.5]] * 2]])
    (pred, tgt), = assigner.assign_layers(logits, boxes, targets, masks=masks)[0]
    assert pred.tolist() == [0] and tgt.tolist() == [0]


def test_query_group_streams_carry_their_masks():
    from support.fakes import LearnedGroup

    model = mask_model(mixed=False).train()
    model.query_groups.append(LearnedGroup("hybrid", 5, model.cfg.hidden_dim))
    _, images, pixel_mask = padded_batch(SIZES)
    out = model(images, pixel_mask, targets=[{}, {}])
    assert out.streams["hybrid"].masks.query_embed.shape == (2, 2, 5, 16)
    assert out.streams[ONE_TO_ONE].masks.query_embed.shape == (2, 2, 7, 16)
    out.streams["hybrid"].masks.logits().sum().backward()
    assert model.query_groups[0].embed.weight.grad.abs().sum() > 0
