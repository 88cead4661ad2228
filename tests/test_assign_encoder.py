"""Two-stage encoder assignment: class-agnostic Hungarian matched on the anchors."""

from __future__ import annotations

import torch

from msdetr.modeling.outputs import DetectorOutput, EncoderPredictions, StreamPredictions
from msdetr.supervision import EncoderAssigner, EncoderSupervision


def encoder_problem():
    """Anchors 3 and 7 coincide with the two targets; the refined boxes point elsewhere."""
    g = torch.Generator().manual_seed(0)
    num_tokens = 10
    anchors = torch.cat(
        [0.1 + 0.2 * torch.rand(1, num_tokens, 2, generator=g), torch.full((1, num_tokens, 2), 0.1)], -1
    )
    target_boxes = torch.tensor([[0.7, 0.3, 0.2, 0.3], [0.4, 0.8, 0.3, 0.2]])
    anchors[0, 3], anchors[0, 7] = target_boxes[0], target_boxes[1]
    boxes = anchors.clone()
    boxes[0, 3], boxes[0, 7] = anchors[0, 5], anchors[0, 6]
    boxes[0, 1], boxes[0, 2] = target_boxes[0], target_boxes[1]
    encoder = EncoderPredictions(
        logits=torch.randn(1, num_tokens, 4, generator=g), boxes=boxes, anchors=anchors
    )
    targets = [{"boxes": target_boxes, "labels": torch.tensor([3, 1])}]
    return encoder, targets


def test_matches_on_anchors_not_refined_boxes():
    encoder, targets = encoder_problem()
    pred_idx, target_idx = EncoderAssigner()(encoder, targets)[0]
    assert dict(zip(target_idx.tolist(), pred_idx.tolist())) == {0: 3, 1: 7}
    pred_idx, target_idx = EncoderAssigner(match_on_anchors=False)(encoder, targets)[0]
    assert dict(zip(target_idx.tolist(), pred_idx.tolist())) == {0: 1, 1: 2}


def test_labels_do_not_matter_and_task_targets_are_one_class():
    encoder, targets = encoder_problem()
    logits = encoder.logits.clone()
    logits[0, 5, 3] = 20.0  # a confident proposal of the first target's class, far from it
    encoder = EncoderPredictions(logits=logits, boxes=encoder.boxes, anchors=encoder.anchors)
    output = DetectorOutput(
        streams={"one_to_one": StreamPredictions(torch.zeros(1, 1, 2, 4), torch.rand(1, 1, 2, 4))},
        encoder=encoder,
    )
    (task,) = EncoderSupervision(EncoderAssigner()).plan(output, targets)
    assert task.stream == "encoder" and task.layer is None and task.name == "encoder"
    assert task.targets[0]["labels"].tolist() == [0, 0]
    assert targets[0]["labels"].tolist() == [3, 1]  # caller's targets untouched
    assert torch.equal(task.predictions.boxes, encoder.boxes)
    assert dict(zip(task.assignment[0][1].tolist(), task.assignment[0][0].tolist())) == {0: 3, 1: 7}


def test_no_encoder_output_no_task():
    output = DetectorOutput(
        streams={"one_to_one": StreamPredictions(torch.zeros(1, 1, 2, 4), torch.rand(1, 1, 2, 4))}
    )
    assert (
        EncoderSupervision(EncoderAssigner()).plan(
            output, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}]
        )
        == []
    )
