"""Hungarian one-to-one assignment: a permutation, optimal, batched, float32, clear errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import box_convert, generalized_box_iou

from msdetr.errors import MsdetrError
from msdetr.supervision import HungarianAssigner, LayerPredictions
from msdetr.supervision.targets import pad_targets


def random_problem(seed, num_queries, counts, num_classes=5):
    g = torch.Generator().manual_seed(seed)
    batch = len(counts)
    boxes = torch.cat(
        [
            0.2 + 0.6 * torch.rand(batch, num_queries, 2, generator=g),
            0.05 + 0.4 * torch.rand(batch, num_queries, 2, generator=g),
        ],
        dim=-1,
    )
    logits = 2 * torch.randn(batch, num_queries, num_classes, generator=g)
    targets = [
        {
            "boxes": torch.cat(
                [0.2 + 0.6 * torch.rand(n, 2, generator=g), 0.05 + 0.4 * torch.rand(n, 2, generator=g)], 1
            ),
            "labels": torch.randint(num_classes, (n,), generator=g),
        }
        for n in counts
    ]
    return LayerPredictions(logits=logits, boxes=boxes), targets


def independent_cost(logits, boxes, target, w_class=2.0, w_bbox=5.0, w_giou=2.0):
    """(Q, T) DETR matching cost of one image, computed with torchvision's 2-D GIoU."""
    prob = logits.sigmoid()[:, target["labels"]]
    focal = 0.25 * (1 - prob) ** 2 * -(prob + 1e-8).log() - 0.75 * prob**2 * -(1 - prob + 1e-8).log()
    l1 = (boxes[:, None, :] - target["boxes"][None, :, :]).abs().sum(-1)
    giou = generalized_box_iou(
        box_convert(boxes, "cxcywh", "xyxy"), box_convert(target["boxes"], "cxcywh", "xyxy")
    )
    return w_class * focal + w_bbox * l1 - w_giou * giou


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    num_queries=st.integers(1, 8),
    counts=st.lists(st.integers(0, 8), min_size=1, max_size=3),
)
def test_one_to_one_on_min_q_t_pairs(seed, num_queries, counts):
    predictions, targets = random_problem(seed, num_queries, counts)
    for (pred_idx, target_idx), n in zip(HungarianAssigner()(predictions, targets), counts):
        assert len(pred_idx) == len(target_idx) == min(num_queries, n)
        assert len(set(pred_idx.tolist())) == len(pred_idx) and len(set(target_idx.tolist())) == len(
            target_idx
        )
        assert ((pred_idx >= 0) & (pred_idx < num_queries)).all() and (
            (target_idx >= 0) & (target_idx < max(n, 1))
        ).all()
        assert torch.equal(pred_idx, pred_idx.sort().values)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    num_queries=st.integers(1, 5),
    counts=st.lists(st.integers(1, 4), min_size=1, max_size=2),
)
def test_optimal_against_brute_force(seed, num_queries, counts):
    predictions, targets = random_problem(seed, num_queries, counts)
    assignment = HungarianAssigner()(predictions, targets)
    for b, ((pred_idx, target_idx), target) in enumerate(zip(assignment, targets)):
        cost = independent_cost(predictions.logits[b], predictions.boxes[b], target)
        got = cost[pred_idx, target_idx].sum()
        q, t = cost.shape
        if q >= t:
            best = min(cost[list(rows), list(range(t))].sum() for rows in itertools.permutations(range(q), t))
        else:
            best = min(cost[list(range(q)), list(cols)].sum() for cols in itertools.permutations(range(t), q))
        torch.testing.assert_close(got, best, rtol=1e-5, atol=1e-5)


def test_batched_padded_cost_equals_per_image_cost():
    predictions, targets = random_problem(3, 12, [4, 0, 7])
    assigner = HungarianAssigner(cost_class=1.5, cost_bbox=3.0, cost_giou=1.0)
    cost = assigner.cost_matrix(predictions, pad_targets(targets, torch.device("cpu")))
    assert cost.shape == (3, 12, 7) and cost.dtype == torch.float32
    for b, target in enumerate(targets):
        n = len(target["labels"])
        expected = independent_cost(predictions.logits[b], predictions.boxes[b], target, 1.5, 3.0, 1.0)
        torch.testing.assert_close(cost[b, :, :n], expected, rtol=1e-5, atol=1e-5)


def test_zero_class_weight_ignores_labels():
    predictions, targets = random_problem(4, 10, [5])
    relabeled = [{"boxes": targets[0]["boxes"], "labels": (targets[0]["labels"] + 1) % 5}]
    assigner = HungarianAssigner(cost_class=0.0)
    a, b = assigner(predictions, targets)[0], assigner(predictions, relabeled)[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(
        HungarianAssigner(cost_class=50.0, cost_bbox=0.1)(predictions, targets)[0][1], a[1]
    )


def test_no_targets_anywhere_gives_empty_pairs():
    predictions, targets = random_problem(5, 6, [0, 0])
    for pred_idx, target_idx in HungarianAssigner()(predictions, targets):
        assert pred_idx.numel() == 0 and target_idx.numel() == 0 and pred_idx.dtype == torch.int64


@pytest.mark.parametrize("where", ["prediction", "target"])
def test_non_finite_cost_names_the_image(where):
    predictions, targets = random_problem(6, 6, [2, 3, 1])
    if where == "prediction":
        predictions.boxes[2, 1, 2] = float("inf")
    else:
        targets[2]["boxes"][0, 0] = float("nan")
    with pytest.raises(MsdetrError, match="image 2 of the batch"):
        HungarianAssigner()(predictions, targets)


def test_all_zero_costs_rejected():
    with pytest.raises(MsdetrError, match="all matching costs are 0"):
        HungarianAssigner(0.0, 0.0, 0.0)


def test_float32_under_bfloat16_autocast():
    predictions, targets = random_problem(7, 20, [6, 3])
    low = LayerPredictions(predictions.logits.bfloat16(), predictions.boxes.bfloat16())
    expected = HungarianAssigner()(LayerPredictions(low.logits.float(), low.boxes.float()), targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = HungarianAssigner().cost_matrix(low, pad_targets(targets, torch.device("cpu")))
        got = HungarianAssigner()(low, targets)
    assert cost.dtype == torch.float32
    for (p1, t1), (p2, t2) in zip(got, expected):
        assert torch.equal(p1, p2) and torch.equal(t1, t2)


@pytest.mark.parametrize("max_elements", [None, 1])
def test_all_layers_at_once_equal_layer_by_layer(max_elements, monkeypatch):
    if max_elements is not None:
        monkeypatch.setattr("msdetr.supervision.targets.MAX_PAIRWISE_ELEMENTS_CPU", max_elements)
    layers = [random_problem(30 + i, 9, [4, 0, 6])[0] for i in range(3)]
    targets = random_problem(30, 9, [4, 0, 6])[1]
    assigner = HungarianAssigner()
    got = assigner.assign_layers(
        torch.stack([p.logits for p in layers]), torch.stack([p.boxes for p in layers]), targets
    )
    for layer, predictions in enumerate(layers):
        for (p1, t1), (p2, t2) in zip(got[layer], assigner(predictions, targets)):
            assert torch.equal(p1, p2) and torch.equal(t1, t2)
