"""The criterion's one loss path: pluggable classification terms, per-pair weights, IoU-aware
classification and masks all go through the batched (compilable) arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from msdetr.config.supervision import IouAwareConfig, LossWeights
from msdetr.engine.compile import compile_criterion
from msdetr.errors import MsdetrError
from msdetr.losses import Criterion, batched
from msdetr.losses.classification import CLASSIFICATION_TERMS, ClassTargets, register_classification_term
from msdetr.losses.mask_losses import MaskLoss, PointSampling
from msdetr.modeling.outputs import DetectorOutput, MaskPredictions, StreamPredictions
from msdetr.ops.boxes import box_cxcywh_to_xyxy
from msdetr.supervision import SupervisionTask
from msdetr.supervision.one_to_one import layer_predictions
from msdetr.supervision.pairs import flatten
from test_losses_criterion import NUM_CLASSES, random_output, random_targets

WEIGHTS = LossWeights(cls=1.0, bbox=5.0, giou=2.0, mask=3.0, dice=4.0)

# image 0 has 3 targets, image 1 has 1: target 0 of image 0 gets three queries, target 1 two
ASSIGNMENT = [
    (torch.tensor([4, 1, 6, 2, 7, 0]), torch.tensor([0, 0, 0, 1, 1, 2])),
    (torch.tensor([3, 5]), torch.tensor([0, 0])),
]


class LayerTasks:
    """Every layer of the one-to-one stream with the same assignment and task options."""

    def __init__(self, **options):
        self.options = options

    def plan(self, output, targets):
        stream = output.streams["one_to_one"]
        return [
            SupervisionTask("one_to_one", layer, layer_predictions(output, "one_to_one", layer), targets, ASSIGNMENT,
                            layer == stream.num_layers - 1, **self.options)
            for layer in range(stream.num_layers)
        ]


def _inputs(num_layers=2):
    output = random_output(num_layers=num_layers, batch=2, num_queries=8, mixed=False, encoder=False, seed=2)
    return output, random_targets([3, 1], seed=3)


def _matched(output, targets, layer):
    """(P,) matched logits of the target class, (P, 4) matched and target boxes, (P,) keys."""
    pairs = flatten(ASSIGNMENT, torch.device("cpu"))
    offsets = torch.tensor([0, len(targets[0]["labels"])])
    flat = offsets[pairs.image] + pairs.target
    labels = torch.cat([t["labels"] for t in targets])[flat]
    target_boxes = torch.cat([t["boxes"] for t in targets])[flat]
    stream = output.streams["one_to_one"]
    logits = stream.logits[layer][pairs.image, pairs.query, labels]
    return pairs, labels, logits, stream.boxes[layer][pairs.image, pairs.query], target_boxes, flat


def _hand_iou(a, b):
    a, b = box_cxcywh_to_xyxy(a), box_cxcywh_to_xyxy(b)
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _hand_weights(quality, flat, tau):
    """exp(-rank / tau), rank among the pairs of the same target by decreasing quality (a Python loop)."""
    weights = torch.empty_like(quality)
    for p in range(len(quality)):
        better = sum(1 for o in range(len(quality)) if flat[o] == flat[p] and (
            quality[o] > quality[p] or (quality[o] == quality[p] and o < p)))
        weights[p] = torch.exp(torch.tensor(-better / tau))
    return weights


def test_pair_weights_scale_the_box_terms_as_a_hand_computation():
    output, targets = _inputs()
    tau = 1.5
    criterion = Criterion(LayerTasks(rank_tau=tau), {"one_to_one": WEIGHTS}, NUM_CLASSES)
    terms = criterion(output, targets).terms
    for layer in range(2):
        pairs, labels, logits, boxes, target_boxes, flat = _matched(output, targets, layer)
        quality = (logits.sigmoid() ** 0.25 * _hand_iou(boxes, target_boxes) ** 0.75).clamp(min=0.01)
        weights = _hand_weights(quality, flat, tau)
        assert weights.min() < 1.0  # the weighting acts on these pairs
        l1 = ((boxes - target_boxes).abs().sum(1) * weights).sum() / 4
        torch.testing.assert_close(terms[f"one_to_one.layer{layer}.bbox"], l1)
        # focal classification: not weighted (the unweighted one-hot focal loss)
        onehot = torch.zeros(2, 8, NUM_CLASSES)
        onehot[pairs.image, pairs.query, labels] = 1.0
        focal = sigmoid_focal_loss(output.streams["one_to_one"].logits[layer], onehot, reduction="sum") / 4
        torch.testing.assert_close(terms[f"one_to_one.layer{layer}.cls"], focal)


def test_iou_aware_term_with_pair_weights_is_the_released_formula():
    output, targets = _inputs()
    tau, config = 1.5, IouAwareConfig(alpha=0.25, gamma=2.0)
    criterion = Criterion(LayerTasks(rank_tau=tau), {"one_to_one": WEIGHTS}, NUM_CLASSES,
                          classification_losses={"one_to_one": "iou_aware"}, iou_aware=config)
    terms = criterion(output, targets).terms
    for layer in range(2):
        pairs, labels, logits, boxes, target_boxes, flat = _matched(output, targets, layer)
        quality = (logits.sigmoid() ** 0.25 * _hand_iou(boxes, target_boxes) ** 0.75).clamp(min=0.01)
        t = quality * _hand_weights(quality, flat, tau)
        p = output.streams["one_to_one"].logits[layer].sigmoid()
        pos = torch.zeros_like(p).index_put((pairs.image, pairs.query, labels), t)
        neg = (p**2).index_put((pairs.image, pairs.query, labels), 1 - t)
        expected = (-pos * p.log() - neg * (1 - p).log()).sum() / 4
        torch.testing.assert_close(terms[f"one_to_one.layer{layer}.cls"], expected, rtol=1e-5, atol=0)


def test_a_registered_classification_term_is_used_per_stream(monkeypatch):
    monkeypatch.setattr("msdetr.losses.classification.CLASSIFICATION_TERMS", dict(CLASSIFICATION_TERMS))

    class PlainBce:
        """Toy term: BCE on one-hot targets, the quality ignored."""

        needs_quality = False

        def __call__(self, logits, targets: ClassTargets):
            onehot = torch.zeros_like(logits).index_put((targets.row, targets.query, targets.label),
                                                        torch.ones_like(targets.row, dtype=logits.dtype))
            return F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")

    register_classification_term("plain_bce", lambda settings: PlainBce())
    output, targets = _inputs()
    criterion = Criterion(LayerTasks(), {"one_to_one": WEIGHTS}, NUM_CLASSES,
                          classification_losses={"one_to_one": "plain_bce"})
    result = criterion(output, targets)
    for layer in range(2):
        pairs, labels, *_ = _matched(output, targets, layer)
        onehot = torch.zeros(2, 8, NUM_CLASSES)
        onehot[pairs.image, pairs.query, labels] = 1.0
        expected = F.binary_cross_entropy_with_logits(output.streams["one_to_one"].logits[layer], onehot,
                                                      reduction="sum") / 4
        torch.testing.assert_close(result.terms[f"one_to_one.layer{layer}.cls"], expected)
    with pytest.raises(MsdetrError, match="unknown loss 'nope'"):
        Criterion(LayerTasks(), {"one_to_one": WEIGHTS}, NUM_CLASSES, classification_losses={"one_to_one": "nope"})


@pytest.mark.slow
def test_every_task_kind_goes_through_the_dense_arithmetic():
    """Align-DETR's tasks (IoU-aware classification, pair weights) use `dense_losses`: under
    train.compile (aot_eager) they give the eager values."""
    torch._dynamo.reset()
    output, targets = _inputs()
    kwargs = dict(classification_losses={"one_to_one": "iou_aware"})
    eager = Criterion(LayerTasks(rank_tau=1.5), {"one_to_one": WEIGHTS}, NUM_CLASSES, **kwargs)
    compiled = compile_criterion(Criterion(LayerTasks(rank_tau=1.5), {"one_to_one": WEIGHTS}, NUM_CLASSES, **kwargs),
                                 backend="aot_eager")
    calls = []
    dense = compiled.dense_losses
    compiled.dense_losses = lambda *args: calls.append(1) or dense(*args)
    expected, got = eager(output, targets), compiled(output, targets)
    assert calls == [1]  # both layers, one group, one call
    torch.testing.assert_close(got.total, expected.total)
    assert got.term_values() == pytest.approx(expected.term_values(), rel=1e-5, abs=1e-6)


def _mask_output():
    output, targets = _inputs()
    g = torch.Generator().manual_seed(7)
    stream = output.streams["one_to_one"]
    masks = MaskPredictions(torch.randn(2, 2, 8, 6, generator=g, requires_grad=True),
                            torch.randn(2, 6, 8, 8, generator=g), stride=8)
    output = DetectorOutput(streams={"one_to_one": StreamPredictions(stream.logits, stream.boxes, masks)})
    for t in targets:
        t["masks"] = torch.rand(len(t["labels"]), 64, 64, generator=g) > 0.5
    return output, targets, masks


def test_mask_terms_are_rows_of_the_group():
    output, targets, masks = _mask_output()
    loss = MaskLoss(PointSampling(num_points=16), torch.Generator().manual_seed(0))
    criterion = Criterion(LayerTasks(), {"one_to_one": WEIGHTS}, NUM_CLASSES, mask_loss=loss)
    result = criterion(output, targets)
    reference = MaskLoss(PointSampling(num_points=16), torch.Generator().manual_seed(0))
    total = 0.0
    for layer in range(2):
        pairs, *_, flat = _matched(output, targets, layer)
        expected = reference(masks.layer(layer), pairs, flat, targets)
        for term, weight in (("mask", WEIGHTS.mask), ("dice", WEIGHTS.dice)):
            value = result.terms[f"one_to_one.layer{layer}.{term}"]
            torch.testing.assert_close(value, expected[term] / 4)
            total = total + weight * value
        total = total + sum(getattr(WEIGHTS, t) * result.terms[f"one_to_one.layer{layer}.{t}"]
                            for t in ("cls", "bbox", "giou"))
    torch.testing.assert_close(result.total, total)
    result.total.backward()
    assert masks.query_embed.grad.abs().sum() > 0


def test_group_key_separates_what_the_arithmetic_must_not_mix():
    output, targets = _inputs()
    tasks = LayerTasks().plan(output, targets) + LayerTasks(rank_tau=1.0).plan(output, targets)
    assert batched.group_tasks(tasks) == [[0, 1], [2, 3]]
    assert batched.group_tasks(tasks[:2], [("focal", ()), ("iou_aware", ())]) == [[0], [1]]
