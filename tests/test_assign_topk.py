"""The vectorized MS-DETR top-K assigner: official semantics, random-source parity, properties."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from msdetr.errors import MsdetrError
from msdetr.supervision import LayerPredictions, TopKAssigner
from msdetr.supervision.targets import pad_targets

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "assign.py"
_spec = importlib.util.spec_from_file_location("assign_benchmark", _BENCH)
assign_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(assign_benchmark)
loop_topk_official = assign_benchmark.loop_topk_official


def random_problem(seed, batch, num_queries, counts, num_classes=7, near_fraction=0.5):
    """Predictions partly near targets (many positives), targets with the given counts per image."""
    g = torch.Generator().manual_seed(seed)
    targets = []
    for n in counts:
        centers = 0.2 + 0.6 * torch.rand(n, 2, generator=g)
        sizes = 0.05 + 0.3 * torch.rand(n, 2, generator=g)
        targets.append(
            {"boxes": torch.cat([centers, sizes], 1), "labels": torch.randint(num_classes, (n,), generator=g)}
        )
    boxes = torch.cat(
        [
            0.1 + 0.8 * torch.rand(batch, num_queries, 2, generator=g),
            0.05 + 0.3 * torch.rand(batch, num_queries, 2, generator=g),
        ],
        dim=-1,
    )
    near = int(num_queries * near_fraction)
    for b, n in enumerate(counts):
        if n and near:
            source = targets[b]["boxes"][torch.randint(n, (near,), generator=g)]
            boxes[b, :near] = (source * (1 + 0.2 * (torch.rand(near, 4, generator=g) - 0.5))).clamp(
                0.01, 0.99
            )
    logits = torch.randn(batch, num_queries, num_classes, generator=g)
    return LayerPredictions(logits=logits, boxes=boxes), targets


def pair_set(assignment):
    return [set(zip(p.tolist(), t.tolist())) for p, t in assignment]


def assert_same(a, b):
    assert len(a) == len(b)
    for (p1, t1), (p2, t2) in zip(a, b):
        assert torch.equal(p1, p2) and torch.equal(t1, t2)


def pair_scores(assigner, predictions, targets, assignment):
    scores = assigner.scores(predictions, pad_targets(targets, torch.device("cpu")))
    return [scores[b, t, p] for b, (p, t) in enumerate(assignment)]


@pytest.mark.parametrize("positive_fraction", [0.25, 0.05])
@pytest.mark.parametrize("counts", [[3, 5], [0, 4], [12, 1, 0], [0, 0]])
def test_matches_per_target_loop_reference_and_random_stream(counts, positive_fraction):
    """Same pairs, same order, and the same random numbers drawn as the official-style loop."""
    predictions, targets = random_problem(1, len(counts), 40, counts)
    ours = TopKAssigner(positive_fraction=positive_fraction)
    torch.manual_seed(123)
    expected = loop_topk_official(predictions, targets, positive_fraction=positive_fraction)
    after_reference = torch.rand(3)
    torch.manual_seed(123)
    got = ours(predictions, targets)
    assert_same(got, expected)
    torch.testing.assert_close(torch.rand(3), after_reference, rtol=0, atol=0)


def test_subsampling_caps_positives_and_is_exercised():
    """With a small cap the random subsampling decides the result (so the test above covers it)."""
    predictions, targets = random_problem(2, 1, 60, [10], near_fraction=0.9)
    capped = TopKAssigner(positive_fraction=0.05)  # at most 3 positives
    results = set()
    for seed in range(5):
        torch.manual_seed(seed)
        pairs = capped(predictions, targets)[0]
        assert len(pairs[0]) <= 3
        results.add(tuple(sorted(zip(pairs[0].tolist(), pairs[1].tolist()))))
    assert len(results) > 1
    uncapped = TopKAssigner(positive_fraction=1.0)(predictions, targets)[0]
    assert len(uncapped[0]) > 3


def test_injected_generator_replaces_global_random_state():
    predictions, targets = random_problem(3, 2, 50, [8, 6], near_fraction=0.9)
    first = TopKAssigner(positive_fraction=0.05, generator=torch.Generator().manual_seed(7))(
        predictions, targets
    )
    torch.manual_seed(0)
    global_before = torch.get_rng_state()
    second = TopKAssigner(positive_fraction=0.05, generator=torch.Generator().manual_seed(7))(
        predictions, targets
    )
    assert torch.equal(torch.get_rng_state(), global_before)
    assert_same(first, second)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    counts=st.lists(st.integers(0, 6), min_size=1, max_size=3),
    num_queries=st.integers(1, 30),
    k=st.integers(1, 8),
    mode=st.sampled_from(["official", "paper"]),
)
def test_never_more_than_k_queries_per_target(seed, counts, num_queries, k, mode):
    predictions, targets = random_problem(seed, len(counts), num_queries, counts)
    assignment = TopKAssigner(k=k, mode=mode)(predictions, targets)
    for (pred_idx, target_idx), n in zip(assignment, counts):
        assert pred_idx.dtype == torch.int64 and target_idx.dtype == torch.int64
        assert ((pred_idx >= 0) & (pred_idx < num_queries)).all()
        assert ((target_idx >= 0) & (target_idx < max(n, 1))).all()
        assert torch.bincount(target_idx, minlength=max(n, 1)).max() <= k if n else len(pred_idx) == 0
        # A target never gets the same query twice.
        assert len(set(zip(pred_idx.tolist(), target_idx.tolist()))) == len(pred_idx)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), counts=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_paper_mode_respects_threshold(seed, counts):
    predictions, targets = random_problem(seed, len(counts), 25, counts)
    assigner = TopKAssigner(mode="paper", class_weight=0.4, iou_weight=0.6)
    assignment = assigner(predictions, targets)
    for scores in pair_scores(assigner, predictions, targets, assignment):
        assert (scores >= assigner.threshold).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), counts=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_official_mode_below_threshold_only_through_forced_best_queries(seed, counts):
    """If every target's best query passes the threshold, every assigned pair does."""
    predictions, targets = random_problem(seed, len(counts), 25, counts)
    assigner = TopKAssigner(positive_fraction=1.0)
    scores = assigner.scores(predictions, pad_targets(targets, torch.device("cpu")))
    best_per_target = scores.amax(dim=2)
    valid = torch.isfinite(best_per_target)
    if not (best_per_target[valid] >= assigner.threshold).all():
        return
    for image_scores in pair_scores(assigner, predictions, targets, assigner(predictions, targets)):
        assert (image_scores >= assigner.threshold).all()


def test_each_target_best_query_is_forced_positive_even_below_threshold():
    """Official quirk: a target whose best query scores below the threshold still gets that query."""
    logits = torch.full((1, 4, 2), -8.0)
    boxes = torch.tensor(
        [[[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2]]]
    )
    targets = [{"boxes": torch.tensor([[0.23, 0.2, 0.1, 0.1]]), "labels": torch.tensor([1])}]
    assigner = TopKAssigner(threshold=0.9)
    pred_idx, target_idx = assigner(LayerPredictions(logits, boxes), targets)[0]
    assert pred_idx.tolist() == [0] and target_idx.tolist() == [0]
    assert (
        TopKAssigner(threshold=0.9, mode="paper")(LayerPredictions(logits, boxes), targets)[0][0].numel() == 0
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    counts=st.lists(st.integers(0, 6), min_size=1, max_size=3),
    mode=st.sampled_from(["official", "paper"]),
)
def test_invariant_to_query_order(seed, counts, mode):
    """Permuting the queries permutes the assignment (no subsampling: the cap is not reached)."""
    num_queries = 20
    predictions, targets = random_problem(seed, len(counts), num_queries, counts)
    perm = torch.randperm(num_queries, generator=torch.Generator().manual_seed(seed))
    permuted = LayerPredictions(predictions.logits[:, perm], predictions.boxes[:, perm])
    assigner = TopKAssigner(mode=mode, positive_fraction=1.0)
    original = pair_set(assigner(predictions, targets))
    moved = [{(int(perm[p]), t) for p, t in pairs} for pairs in pair_set(assigner(permuted, targets))]
    assert moved == original


def test_query_on_several_targets_is_ordered_by_score():
    """Pairs come by increasing score, so a shared query's last pair is its best-scoring target."""
    predictions, targets = random_problem(5, 1, 30, [2], near_fraction=0.5)
    targets[0]["boxes"][1] = targets[0]["boxes"][0] * torch.tensor([1.0, 1.0, 1.1, 1.0])  # near-duplicate
    targets[0]["labels"][1] = targets[0]["labels"][0]
    assigner = TopKAssigner(positive_fraction=1.0, k=4)
    assignment = assigner(predictions, targets)
    scores = pair_scores(assigner, predictions, targets, assignment)[0]
    assert (scores[1:] >= scores[:-1]).all()
    assert len(set(assignment[0][0].tolist())) < len(assignment[0][0])  # some query serves two targets


def test_nan_prediction_names_the_image():
    predictions, targets = random_problem(6, 2, 10, [2, 2])
    predictions.boxes[1, 3, 0] = float("nan")
    with pytest.raises(MsdetrError, match="image 1"):
        TopKAssigner()(predictions, targets)


def test_float32_under_bfloat16_autocast():
    predictions, targets = random_problem(8, 2, 30, [3, 4])
    low = LayerPredictions(predictions.logits.bfloat16(), predictions.boxes.bfloat16())
    torch.manual_seed(0)
    reference = TopKAssigner()(LayerPredictions(low.logits.float(), low.boxes.float()), targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = TopKAssigner().scores(low, pad_targets(targets, torch.device("cpu")))
        torch.manual_seed(0)
        got = TopKAssigner()(low, targets)
    assert scores.dtype == torch.float32
    assert_same(got, reference)


@pytest.mark.parametrize("mode", ["official", "paper"])
@pytest.mark.parametrize("max_elements", [None, 1, 2 * 2 * 7 * 30])
def test_all_layers_at_once_equal_layer_by_layer_in_official_order(mode, max_elements, monkeypatch):
    """assign_layers = one call per layer (final layer first, then 0, 1, ...), random draws included;
    also when memory forces one layer at a time, or two (chunks [3], [0, 1], [2])."""
    if max_elements is not None:
        monkeypatch.setattr("msdetr.supervision.topk.TOPK_PAIRWISE_ELEMENTS_CPU", max_elements)
    layers = [random_problem(10 + i, 2, 30, [7, 3], near_fraction=0.9)[0] for i in range(4)]
    targets = random_problem(10, 2, 30, [7, 3])[1]
    logits = torch.stack([p.logits for p in layers])
    boxes = torch.stack([p.boxes for p in layers])
    assigner = TopKAssigner(positive_fraction=0.1, mode=mode)
    torch.manual_seed(3)
    expected = {layer: assigner(layers[layer], targets) for layer in [3, 0, 1, 2]}
    torch.manual_seed(3)
    got = assigner.assign_layers(logits, boxes, targets)
    for layer in range(4):
        assert_same(got[layer], expected[layer])


def test_nan_in_one_layer_names_image_and_layer():
    layers = [random_problem(20 + i, 2, 10, [2, 2])[0] for i in range(3)]
    targets = random_problem(20, 2, 10, [2, 2])[1]
    boxes = torch.stack([p.boxes for p in layers])
    boxes[1, 0, 4, 1] = float("nan")
    with pytest.raises(MsdetrError, match=r"image 0 of the batch \(decoder layer 1\)"):
        TopKAssigner().assign_layers(torch.stack([p.logits for p in layers]), boxes, targets)


def test_layer_chunks_follow_the_draw_order_and_stay_consecutive():
    from msdetr.supervision.topk import _chunks

    assert _chunks([5, 0, 1, 2, 3, 4], 6) == [[5, 0, 1, 2, 3, 4]]
    assert _chunks([5, 0, 1, 2, 3, 4], 2) == [[5], [0, 1], [2, 3], [4]]
    assert _chunks([5, 0, 1, 2, 3, 4], 1) == [[5], [0], [1], [2], [3], [4]]
    assert _chunks([2, 0, 1], 2) == [[2], [0, 1]]
    assert _chunks([0, 2, 1], 2) == [[0], [2, 1]]
    assert [layer for piece in _chunks([3, 1, 0, 2], 3) for layer in piece] == [3, 1, 0, 2]


@pytest.mark.parametrize("positive_fraction", [0.25, 1.0])
def test_duplicate_targets_follow_the_official_first_target_rule(positive_fraction):
    """A target given twice: every query reaches its best score at both copies, so the per-target
    counts take the exact fallback (the official `max` over targets gives the first copy)."""
    predictions, targets = random_problem(5, 2, 50, [4, 3], near_fraction=0.8)
    for t in targets:
        t["boxes"] = torch.cat([t["boxes"], t["boxes"][:1]])
        t["labels"] = torch.cat([t["labels"], t["labels"][:1]])
    torch.manual_seed(9)
    expected = loop_topk_official(predictions, targets, positive_fraction=positive_fraction)
    torch.manual_seed(9)
    got = TopKAssigner(positive_fraction=positive_fraction)(predictions, targets)
    assert_same(got, expected)
    assert all(len(p) for p, _ in got)
