"""Many-to-one Hungarian on all layers at once equals layer by layer; one error for diverged costs."""

from __future__ import annotations

import pytest
import torch

from msdetr.errors import MsdetrError
from msdetr.supervision.base import LayerPredictions
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.repeated_hungarian import RepeatedHungarianAssigner

TARGETS = [
    {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1], [0.7, 0.4, 0.2, 0.2]]),
     "labels": torch.tensor([1, 2, 2])},
    {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # an image without targets
    {"boxes": torch.tensor([[0.4, 0.6, 0.3, 0.2]]), "labels": torch.tensor([3])},
]


def _layers(num_layers=3, batch=3, queries=12, classes=5):
    g = torch.Generator().manual_seed(4)
    boxes = torch.cat([0.2 + 0.6 * torch.rand(num_layers, batch, queries, 2, generator=g),
                       0.05 + 0.3 * torch.rand(num_layers, batch, queries, 2, generator=g)], -1)
    return torch.randn(num_layers, batch, queries, classes, generator=g), boxes


def test_assign_layers_equals_layer_by_layer():
    logits, boxes = _layers()
    assigner = RepeatedHungarianAssigner(HungarianAssigner(), k=2)
    together = assigner.assign_layers(logits, boxes, TARGETS)
    assert len(together) == 3
    for layer in range(3):
        alone = assigner(LayerPredictions(logits[layer], boxes[layer]), TARGETS)
        for (q1, t1), (q2, t2) in zip(together[layer], alone):
            assert torch.equal(q1, q2) and torch.equal(t1, t2)
        assert [len(q) for q, _ in together[layer]] == [6, 0, 2]  # k = 2 per target


def test_no_targets_in_the_batch_gives_empty_pairs():
    logits, boxes = _layers()
    empty = [TARGETS[1]] * 3
    result = RepeatedHungarianAssigner(HungarianAssigner(), k=2).assign_layers(logits, boxes, empty)
    assert all(len(q) == 0 and len(t) == 0 for layer in result for q, t in layer)


@pytest.mark.parametrize(("assigner", "kind"), [
    (HungarianAssigner(), "one-to-one"), (RepeatedHungarianAssigner(HungarianAssigner(), k=2), "many-to-one"),
])
def test_diverged_cost_names_the_assignment_image_and_layer(assigner, kind):
    logits, boxes = _layers()
    boxes[1, 2, 5] = float("nan")
    with pytest.raises(MsdetrError, match=rf"^{kind} assignment: image 2 of the batch \(decoder layer 1\): the "
                                          "matching cost has NaN or inf values; check"):
        assigner.assign_layers(logits, boxes, TARGETS)
