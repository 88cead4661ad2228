"""The criterion: loss formulas, normalization, weights, duplicates, empty images, logs, names."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_convert, generalized_box_iou

from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.errors import MsdetrError
from msdetr.losses import Criterion, build_criterion, parse_name, to_official_name
from msdetr.supervision import LayerPredictions, SupervisionTask
from support.fakes import NUM_CLASSES, random_output, random_targets


def t(values):
    return torch.tensor(values, dtype=torch.int64)


class FixedStrategy:
    """Supervises the final one-to-one layer with a given assignment."""

    def __init__(self, assignment, stream="one_to_one"):
        self.assignment, self.stream = assignment, stream

    def plan(self, output, targets):
        s = output.streams["one_to_one"]
        predictions = LayerPredictions(s.logits[-1], s.boxes[-1])
        return [SupervisionTask(self.stream, s.num_layers - 1, predictions, targets, self.assignment, True)]


def reference_losses(logits, boxes, targets, pairs, num_targets, alpha=0.25, gamma=2.0):
    """Independent per-pair computation (class target of a query: its last pair)."""
    onehot = torch.zeros_like(logits)
    for b, (pred_idx, target_idx) in enumerate(pairs):
        for q, j in zip(pred_idx.tolist(), target_idx.tolist()):
            onehot[b, q] = 0
            onehot[b, q, targets[b]["labels"][j]] = 1
    p = logits.sigmoid()
    ce = -(onehot * p.log() + (1 - onehot) * (1 - p).log())
    p_t = p * onehot + (1 - p) * (1 - onehot)
    focal = ((alpha * onehot + (1 - alpha) * (1 - onehot)) * ce * (1 - p_t) ** gamma).sum()
    l1 = giou = torch.zeros(())
    for b, (pred_idx, target_idx) in enumerate(pairs):
        pred, tgt = boxes[b, pred_idx], targets[b]["boxes"][target_idx]
        l1 = l1 + (pred - tgt).abs().sum()
        if len(pred_idx):
            g = generalized_box_iou(
                box_convert(pred, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy")
            ).diag()
            giou = giou + (1 - g).sum()
    return focal / num_targets, l1 / num_targets, giou / num_targets


def test_terms_match_independent_formulas_with_duplicate_queries():
    output, targets = random_output(mixed=False, encoder=False), random_targets([3, 2])
    # Query 5 of image 0 serves targets 0 then 2: it is positive for target 2's class only.
    pairs = [(t([1, 5, 5]), t([0, 0, 2])), (t([0]), t([1]))]
    weights = {"one_to_one": LossWeights(cls=1.5, bbox=4.0, giou=3.0)}
    result = Criterion(FixedStrategy(pairs), weights, NUM_CLASSES)(output, targets)
    logits, boxes = output.streams["one_to_one"].logits[-1], output.streams["one_to_one"].boxes[-1]
    cls, l1, giou = reference_losses(logits, boxes, targets, pairs, num_targets=5)
    torch.testing.assert_close(result.terms["one_to_one.layer1.cls"], cls)
    torch.testing.assert_close(result.terms["one_to_one.layer1.bbox"], l1)
    torch.testing.assert_close(result.terms["one_to_one.layer1.giou"], giou)
    torch.testing.assert_close(result.total, 1.5 * cls + 4.0 * l1 + 3.0 * giou)
    assert float(result.num_targets) == 5.0


def test_class_error_and_cardinality_logs_without_gradient():
    output, targets = random_output(mixed=False, encoder=False), random_targets([2, 1])
    logits = output.streams["one_to_one"].logits
    logits.requires_grad_(True)
    logits.data[-1, 0, 3] = -10.0
    logits.data[-1, 0, 3, targets[0]["labels"][0]] = 10.0  # image 0, query 3: right class
    logits.data[-1, 1, 0] = -10.0
    logits.data[-1, 1, 0, (targets[1]["labels"][0] + 1) % NUM_CLASSES] = 10.0  # image 1, query 0: wrong
    pairs = [(t([3]), t([0])), (t([0]), t([0]))]
    result = Criterion(FixedStrategy(pairs), {"one_to_one": LossWeights()}, NUM_CLASSES)(output, targets)
    assert float(result.logs["one_to_one.layer1.class_error"]) == pytest.approx(50.0)
    top = logits[-1].argmax(-1)
    expected_card = ((top != NUM_CLASSES - 1).sum(1).float() - torch.tensor([2.0, 1.0])).abs().mean()
    assert float(result.logs["one_to_one.layer1.cardinality_error"]) == pytest.approx(float(expected_card))
    assert all(not v.requires_grad for v in result.logs.values())
    assert result.terms["one_to_one.layer1.cls"].requires_grad and result.total.requires_grad


def test_empty_images_give_finite_losses_and_gradients():
    output, targets = random_output(), random_targets([0, 0])
    for s in output.streams.values():
        s.logits.requires_grad_(True)
    criterion = build_criterion(SupervisionConfig(strategy="mixed"), NUM_CLASSES)
    result = criterion(output, targets)
    assert torch.isfinite(result.total)
    assert float(result.num_targets) == 1.0  # clamped
    for name, value in result.terms.items():
        assert torch.isfinite(value)
        if name.endswith((".bbox", ".giou")):
            assert float(value) == 0.0
    assert result.logs["one_to_one.layer1.class_error"] == 100.0
    result.total.backward()
    assert output.streams["one_to_many"].logits.grad.abs().sum() > 0


def test_one_empty_image_in_batch():
    output, targets = random_output(), random_targets([0, 3])
    result = build_criterion(SupervisionConfig(strategy="mixed"), NUM_CLASSES)(output, targets)
    assert torch.isfinite(result.total) and float(result.num_targets) == 3.0
    assert float(result.terms["one_to_many.layer1.bbox"]) > 0


def test_typed_weights_per_stream_and_term():
    output, targets = random_output(), random_targets([2, 3])
    config = SupervisionConfig(strategy="mixed")
    torch.manual_seed(0)
    base = build_criterion(config, NUM_CLASSES)(output, targets)
    config.loss_weights.one_to_many.cls += 1.0
    config.loss_weights.encoder.giou = 0.0
    torch.manual_seed(0)
    changed = build_criterion(config, NUM_CLASSES)(output, targets)
    delta = sum(v for k, v in base.terms.items() if k.startswith("one_to_many.") and k.endswith(".cls"))
    delta = delta - 2.0 * base.terms["encoder.giou"]
    torch.testing.assert_close(changed.total, base.total + delta)
    expected_total = sum(
        getattr(getattr(config.loss_weights, parse_name(k)[0]), parse_name(k)[2]) * v
        for k, v in changed.terms.items()
    )
    torch.testing.assert_close(changed.total, expected_total)


def test_term_names_and_official_names():
    output, targets = random_output(num_layers=3), random_targets([1, 1])
    result = build_criterion(SupervisionConfig(strategy="mixed"), NUM_CLASSES)(output, targets)
    expected = {
        f"{s}.layer{i}.{k}"
        for s in ("one_to_one", "one_to_many")
        for i in range(3)
        for k in ("cls", "bbox", "giou")
    }
    assert set(result.terms) == expected | {"encoder.cls", "encoder.bbox", "encoder.giou"}
    assert to_official_name("one_to_one.layer2.cls", 3) == "loss_ce"
    assert to_official_name("one_to_one.layer0.giou", 3) == "loss_giou_0"
    assert to_official_name("one_to_many.layer2.bbox", 3) == "loss_bbox_o2m"
    assert to_official_name("one_to_many.layer1.class_error", 3) == "class_error_1_o2m"
    assert to_official_name("encoder.cardinality_error", 3) == "cardinality_error_enc"
    assert to_official_name("hybrid.layer0.cls", 3) is None
    assert parse_name("encoder.cls") == ("encoder", None, "cls")
    official = result.official(3)
    assert "loss_ce_1_o2m" in official and "class_error" in official and "class_error_o2m" in official
    assert len(official) == len(result.terms) + len(result.logs)


def test_target_problems_are_clear_errors():
    output = random_output(mixed=False, encoder=False)
    criterion = build_criterion(SupervisionConfig(), NUM_CLASSES)
    bad = random_targets([1, 2])
    bad[1]["labels"][1] = NUM_CLASSES
    with pytest.raises(MsdetrError, match=r"image 1: label 5 is outside \[0, 5\)"):
        criterion(output, bad)
    with pytest.raises(MsdetrError, match="1 target dicts for 2 images"):
        criterion(output, random_targets([1]))
    wrong = random_targets([1, 1])
    wrong[0]["labels"] = wrong[0]["labels"].float()
    with pytest.raises(MsdetrError, match="image 0: labels have dtype"):
        criterion(output, wrong)


def test_missing_stream_weights_is_a_clear_error():
    output, targets = random_output(mixed=False, encoder=False), random_targets([1, 1])
    criterion = Criterion(
        FixedStrategy([(t([0]), t([0]))] * 2, stream="hybrid"), {"one_to_one": LossWeights()}, 5
    )
    with pytest.raises(MsdetrError, match=r"no weights for stream\(s\) \['hybrid'\]"):
        criterion(output, targets)
