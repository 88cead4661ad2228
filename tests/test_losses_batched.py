"""The batched criterion: equal to a task-by-task computation, for any strategy's tasks."""

from __future__ import annotations

import torch
from torchvision.ops import sigmoid_focal_loss

from msdetr.config.supervision import LossWeights
from msdetr.losses import Criterion
from msdetr.losses.batched import group_tasks, stack_predictions
from msdetr.losses.term_table import TermTable, host_values
from msdetr.ops.boxes import aligned_box_iou_giou, box_cxcywh_to_xyxy
from msdetr.supervision import LayerPredictions, SupervisionTask
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.mixed import MixedSupervision
from msdetr.supervision.one_to_one import OneToOneSupervision, layer_predictions
from msdetr.supervision.pairs import flatten, last_occurrence
from msdetr.supervision.topk import TopKAssigner
from support.fakes import NUM_CLASSES, random_output, random_targets


def per_task_losses(task: SupervisionTask, num_targets: float) -> dict[str, torch.Tensor]:
    """The per-task computation of the criterion before batching (an independent reference)."""
    logits, boxes = task.predictions.logits, task.predictions.boxes
    batch, num_queries = logits.shape[:2]
    pairs = flatten(task.assignment, logits.device)
    offsets = torch.tensor([0] + [len(t["labels"]) for t in task.targets]).cumsum(0)[:-1]
    flat_target = offsets[pairs.image] + pairs.target
    target_boxes = torch.cat([t["boxes"] for t in task.targets]).float()[flat_target]
    target_labels = torch.cat([t["labels"] for t in task.targets])[flat_target]
    winner = last_occurrence(pairs.image, pairs.query, batch, num_queries)
    onehot = torch.zeros(logits.shape)
    onehot[pairs.image[winner], pairs.query[winner], target_labels[winner]] = 1.0
    matched = boxes[pairs.image, pairs.query]
    giou = aligned_box_iou_giou(box_cxcywh_to_xyxy(matched), box_cxcywh_to_xyxy(target_boxes))[1]
    return {
        "cls": sigmoid_focal_loss(logits, onehot, alpha=0.25, gamma=2.0, reduction="sum") / num_targets,
        "bbox": (matched - target_boxes).abs().sum() / num_targets,
        "giou": (1 - giou).sum() / num_targets,
    }


class ExtraStream:
    """A strategy of a new stream (as hybrid / group / denoising add): per-layer tasks of its own
    stream, some from views of the output (batched without a copy), some computed tensors."""

    def __init__(self, stream: str):
        self.stream = stream
        self.assigner = HungarianAssigner()

    def plan(self, output, targets):
        tasks = []
        for layer in range(output.streams[self.stream].num_layers):
            predictions = layer_predictions(output, self.stream, layer)
            if layer == 0:  # not a view of the stream: goes through the stacking fallback
                predictions = LayerPredictions(predictions.logits * 1.0, predictions.boxes * 1.0)
            tasks.append(SupervisionTask(self.stream, layer, predictions, targets, self.assigner(predictions, targets)))
        return tasks


class Both:
    def __init__(self, *strategies):
        self.strategies = strategies

    def plan(self, output, targets):
        return [task for s in self.strategies for task in s.plan(output, targets)]


def test_batched_terms_equal_per_task_computation_for_every_stream():
    output = random_output(num_layers=3, batch=2, num_queries=10, mixed=True, encoder=False, seed=3)
    extra = random_output(num_layers=3, batch=2, num_queries=6, mixed=False, encoder=False, seed=4)
    output.streams["hybrid"] = extra.streams["one_to_one"]
    for stream in output.streams.values():
        stream.logits.requires_grad_(True)
        stream.boxes.requires_grad_(True)
    targets = random_targets([3, 0])  # an image without targets, too
    strategy = Both(MixedSupervision(OneToOneSupervision(HungarianAssigner()), TopKAssigner(k=2, mode="paper")),
                    ExtraStream("hybrid"))
    weights = {
        "one_to_one": LossWeights(cls=1.0, bbox=5.0, giou=2.0),
        "one_to_many": LossWeights(cls=2.0, bbox=5.0, giou=2.0),
        "hybrid": LossWeights(cls=0.5, bbox=3.0, giou=1.0),
    }
    tasks = strategy.plan(output, targets)

    class Fixed:
        def plan(self, output, targets):
            return tasks

    result = Criterion(Fixed(), weights, NUM_CLASSES)(output, targets)
    expected_total = torch.zeros(())
    for task in tasks:
        for term, value in per_task_losses(task, 3.0).items():
            torch.testing.assert_close(result.terms[f"{task.name}.{term}"], value, msg=f"{task.name}.{term}")
            expected_total = expected_total + getattr(weights[task.stream], term) * value
    torch.testing.assert_close(result.total, expected_total)
    assert list(result.terms)[:3] == ["one_to_one.layer0.cls", "one_to_one.layer0.bbox", "one_to_one.layer0.giou"]
    assert "one_to_many.layer2.class_error" in result.logs and "one_to_many.layer1.class_error" not in result.logs
    # gradient flows to every stream, the stacking fallback included
    result.total.backward()
    for stream in output.streams.values():
        assert stream.logits.grad.abs().sum() > 0 and stream.boxes.grad.abs().sum() > 0


def test_layer_views_are_batched_without_copies():
    output = random_output(num_layers=3, batch=2, num_queries=8, mixed=True, encoder=False)
    targets = random_targets([2, 1])
    tasks = MixedSupervision(OneToOneSupervision(HungarianAssigner()), TopKAssigner(k=2)).plan(output, targets)
    assert group_tasks(tasks) == [list(range(6))]  # both streams, one group
    one_to_one = tasks[:3]
    logits, boxes = stack_predictions(one_to_one, output)
    assert logits is output.streams["one_to_one"].logits and boxes is output.streams["one_to_one"].boxes
    logits, _ = stack_predictions(tasks[1:3], output)
    assert logits.data_ptr() == output.streams["one_to_one"].logits[1].data_ptr()  # a slice, no copy
    logits, _ = stack_predictions(tasks, output)
    torch.testing.assert_close(logits, torch.cat([s.logits for s in output.streams.values()]))


def test_term_table_splits_on_access_and_transfers_once():
    table = TermTable()
    table.reserve(["a", "b", "c"])
    table.add_block(["c", None, "a"], torch.tensor([3.0, 99.0, 1.0]))
    table["b"] = torch.tensor(2.0)
    assert list(table) == ["a", "b", "c"]
    assert host_values(table) == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert float(table["c"]) == 3.0 and len(table) == 3
    assert host_values({"x": torch.tensor(4.0)}) == {"x": 4.0}
