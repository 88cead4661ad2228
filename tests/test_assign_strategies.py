"""Supervision strategies (one_to_one, mixed, composed) and the one-to-one merge."""

from __future__ import annotations

import pytest
import torch

from msdetr.errors import MsdetrError
from msdetr.modeling.outputs import DetectorOutput, StreamPredictions
from msdetr.supervision import (
    ComposedSupervision,
    HungarianAssigner,
    MixedSupervision,
    OneToOneSupervision,
    TopKAssigner,
    merge_one_to_one,
)


def t(values):
    return torch.tensor(values, dtype=torch.int64)


def detector_output(num_layers=3, batch=2, num_queries=12, num_classes=4, mixed=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def stream():
        boxes = torch.cat(
            [
                0.2 + 0.6 * torch.rand(num_layers, batch, num_queries, 2, generator=g),
                0.1 + 0.3 * torch.rand(num_layers, batch, num_queries, 2, generator=g),
            ],
            -1,
        )
        return StreamPredictions(torch.randn(num_layers, batch, num_queries, num_classes, generator=g), boxes)

    streams = {"one_to_one": stream()}
    if mixed:
        streams["one_to_many"] = stream()
    targets = [
        {"boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.2]]), "labels": t([1, 2])},
        {"boxes": torch.tensor([[0.5, 0.4, 0.3, 0.3]]), "labels": t([3])},
    ][:batch]
    return DetectorOutput(streams=streams), targets


def test_merge_adds_one_to_one_pairs_one_to_many_wins_and_one_pair_per_query():
    one_to_many = [(t([4, 2, 4]), t([0, 1, 1])), (t([]), t([]))]
    one_to_one = [(t([2, 7]), t([0, 1])), (t([3]), t([0]))]
    merged = merge_one_to_one(one_to_many, one_to_one, num_queries=10)
    # Image 0: query 2 keeps its one-to-many target 1; query 4's last pair (target 1) wins; query 7 added.
    assert merged[0][0].tolist() == [2, 4, 7] and merged[0][1].tolist() == [1, 1, 1]
    assert merged[1][0].tolist() == [3] and merged[1][1].tolist() == [0]


def test_one_to_one_supervises_every_layer_and_logs_class_error_on_the_last():
    output, targets = detector_output(mixed=False)
    tasks = OneToOneSupervision(HungarianAssigner()).plan(output, targets)
    assert [task.name for task in tasks] == ["one_to_one.layer0", "one_to_one.layer1", "one_to_one.layer2"]
    assert [task.log_class_error for task in tasks] == [False, False, True]
    for layer, task in enumerate(tasks):
        assert torch.equal(task.predictions.logits, output.streams["one_to_one"].logits[layer])
        assert [len(p) for p, _ in task.assignment] == [2, 1]


class RecordingAssigner:
    """Wraps an assigner and records which layer's predictions it saw, in order."""

    def __init__(self, inner, stream):
        self.inner, self.stream, self.layers = inner, stream, []

    def __call__(self, predictions, targets):
        layers = self.stream.logits
        self.layers.append(next(i for i in range(len(layers)) if torch.equal(layers[i], predictions.logits)))
        return self.inner(predictions, targets)


def test_mixed_assigns_one_to_many_in_official_order_and_returns_both_streams():
    output, targets = detector_output(num_layers=4)
    recorder = RecordingAssigner(TopKAssigner(), output.streams["one_to_many"])
    tasks = MixedSupervision(OneToOneSupervision(HungarianAssigner()), recorder).plan(output, targets)
    assert recorder.layers == [3, 0, 1, 2]  # final layer first, like the official criterion
    names = [task.name for task in tasks]
    assert names == [f"one_to_one.layer{i}" for i in range(4)] + [f"one_to_many.layer{i}" for i in range(4)]
    assert [task.log_class_error for task in tasks if task.stream == "one_to_many"] == [
        False,
        False,
        False,
        True,
    ]


def test_mixed_merge_uses_same_layer_one_to_one_match():
    output, targets = detector_output()
    hungarian = HungarianAssigner()
    plain = MixedSupervision(OneToOneSupervision(hungarian), TopKAssigner(positive_fraction=1.0)).plan(
        output, targets
    )
    merged = MixedSupervision(
        OneToOneSupervision(hungarian), TopKAssigner(positive_fraction=1.0), merge_one_to_one=True
    ).plan(output, targets)
    for layer in range(3):
        o2o, o2m, both = plain[layer], plain[3 + layer], merged[3 + layer]
        for image in range(2):
            queries = set(both.assignment[image][0].tolist())
            assert queries == set(o2m.assignment[image][0].tolist()) | set(o2o.assignment[image][0].tolist())
            assert len(queries) == len(both.assignment[image][0])


def test_mixed_without_one_to_many_stream_is_a_clear_error():
    output, targets = detector_output(mixed=False)
    with pytest.raises(MsdetrError, match="no 'one_to_many' stream"):
        MixedSupervision(OneToOneSupervision(HungarianAssigner()), TopKAssigner()).plan(output, targets)


def test_composed_rejects_duplicate_tasks():
    output, targets = detector_output(mixed=False)
    one = OneToOneSupervision(HungarianAssigner())
    assert len(ComposedSupervision([one]).plan(output, targets)) == 3
    with pytest.raises(ValueError, match="same task twice"):
        ComposedSupervision([one, one]).plan(output, targets)


class PerLayerOnly:
    """Hides `assign_layers`, forcing the strategies' layer-by-layer path."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, predictions, targets):
        return self.inner(predictions, targets)


def test_batched_and_layer_by_layer_paths_give_the_same_tasks():
    output, targets = detector_output(num_layers=3, num_queries=40)
    fast = MixedSupervision(OneToOneSupervision(HungarianAssigner()), TopKAssigner(positive_fraction=0.05))
    slow = MixedSupervision(
        OneToOneSupervision(PerLayerOnly(HungarianAssigner())),
        PerLayerOnly(TopKAssigner(positive_fraction=0.05)),
    )
    torch.manual_seed(0)
    fast_tasks = fast.plan(output, targets)
    torch.manual_seed(0)
    slow_tasks = slow.plan(output, targets)
    for a, b in zip(fast_tasks, slow_tasks):
        assert a.name == b.name
        for (p1, t1), (p2, t2) in zip(a.assignment, b.assignment):
            assert torch.equal(p1, p2) and torch.equal(t1, t2)
