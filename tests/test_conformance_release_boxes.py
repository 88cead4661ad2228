"""Details of the released Align-DETR and DAC-DETR criteria the fixtures do not reach, checked against
the released formulas written out here:

- Align-DETR computes IoU and GIoU with detrex's box functions, which add 1e-6 to the union and to
  the enclosing area (`supervision.iou_epsilon: 1.0e-6` in the Align presets): the IoU-aware
  quality, the GIoU loss and the GIoU matching cost. DAC-DETR's own box functions are exact.
- A batch without objects: every term divided by max(N, 1) = 1 (Align-DETR), and DAC-DETR's branch
  by max(3N, 1), not 3 * max(N, 1).

Boxes are small (sides ~0.003 of the image) so the epsilon changes the values by several percent.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from msdetr.config.loader import load_config
from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.methods.contracts import DAC
from msdetr.modeling.outputs import ONE_TO_ONE, DetectorOutput, StreamPredictions
from msdetr.supervision.base import LayerPredictions
from msdetr.supervision.targets import pad_targets

LAYERS, QUERIES, CLASSES = 3, 10, 5
EPS = 1e-6


def released_iou_giou(a: torch.Tensor, b: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and GIoU of (N, 4) and (M, 4) cxcywh boxes as detrex's `box_iou` /
    `generalized_box_iou` (eps = 1e-6) or DETR's (eps = 0) compute them -> (N, M) each."""
    def corners(x):
        return torch.cat([x[:, :2] - 0.5 * x[:, 2:], x[:, :2] + 0.5 * x[:, 2:]], 1)
    a, b = corners(a.double()), corners(b.double())
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.min(a[:, None, 2:], b[:, 2:]) - torch.max(a[:, None, :2], b[:, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b - inter
    iou = inter / (union + eps)
    wh = (torch.max(a[:, None, 2:], b[:, 2:]) - torch.min(a[:, None, :2], b[:, :2])).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou, iou - (enclosing - union) / (enclosing + eps)


def small_boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 4) cxcywh boxes with sides 0.002-0.004, centers within 0.002 of (0.05, 0.05): overlapping
    (near the origin, where float32 resolves the corners finely)."""
    return torch.cat([0.05 + 0.002 * torch.rand(n, 2, generator=generator),
                      0.002 + 0.002 * torch.rand(n, 2, generator=generator)], 1)


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(LAYERS, 2, QUERIES, CLASSES, generator=g)
    boxes = small_boxes(LAYERS * 2 * QUERIES, g).view(LAYERS, 2, QUERIES, 4)
    targets = [{"boxes": small_boxes(3, g), "labels": torch.tensor([0, 2, 2])},
               {"boxes": small_boxes(2, g), "labels": torch.tensor([1, 4])}]
    return logits, boxes, targets


def align_config(eps: float) -> SupervisionConfig:
    cfg = SupervisionConfig(strategy="one_to_one")
    cfg.many_to_one.enabled = True
    cfg.classification_loss.one_to_one = "iou_aware"
    cfg.loss_weights.one_to_one = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
    cfg.iou_epsilon = eps
    return cfg


def output_of(logits, boxes, dac=None) -> DetectorOutput:
    streams = {ONE_TO_ONE: StreamPredictions(logits, boxes)}
    if dac is not None:
        streams[DAC] = StreamPredictions(*dac)
    return DetectorOutput(streams=streams)


def released_iou_aware_terms(logits, boxes, targets, pairs, eps, normalizer):
    """Released Align-DETR loss_labels / loss_boxes of one one-to-one layer (each target one pair, so
    its prime-sample weight is exp(0) = 1): IoU-aware BCE, L1 and 1 - GIoU, divided by `normalizer`."""
    logits = logits.double()
    prob = logits.sigmoid()
    pos_weights = torch.zeros_like(prob)
    neg_weights = prob**2
    l1 = giou_sum = 0.0
    for image, (query, target) in enumerate(pairs):
        t_boxes, labels = targets[image]["boxes"][target].double(), targets[image]["labels"][target]
        p_boxes = boxes[image, query].double()
        iou, giou = released_iou_giou(p_boxes, t_boxes, eps)
        quality = (prob[image, query, labels] ** 0.25 * iou.diag() ** 0.75).clamp(min=0.01)
        pos_weights[image, query, labels] = quality
        neg_weights[image, query, labels] = 1 - quality
        l1 = l1 + (p_boxes - t_boxes).abs().sum()
        giou_sum = giou_sum + (1 - giou.diag()).sum()
    cls = (-pos_weights * prob.log() - neg_weights * (1 - prob).log()).sum()
    return {"cls": cls / normalizer, "bbox": l1 / normalizer, "giou": giou_sum / normalizer}


@pytest.mark.parametrize("eps", [EPS, 0.0])
def test_align_matching_cost_is_the_released_one_with_the_detrex_epsilon(eps):
    logits, boxes, targets = inputs()
    criterion = build_criterion(align_config(eps), num_classes=CLASSES)
    hungarian = criterion.strategy.strategies[0].assigner.hungarian
    predictions = LayerPredictions(logits[-1], boxes[-1])
    padded = pad_targets(targets, torch.device("cpu"))
    cost = hungarian.cost_matrix(predictions, padded)
    for image, target in enumerate(targets):
        count = len(target["labels"])
        _, giou = released_iou_giou(boxes[-1, image], target["boxes"], eps)
        prob = logits[-1, image][:, target["labels"]].double().sigmoid()
        focal = 0.25 * (1 - prob) ** 2 * -(prob + 1e-8).log() - 0.75 * prob**2 * -(1 - prob + 1e-8).log()
        l1 = torch.cdist(boxes[-1, image].double(), target["boxes"].double(), p=1)
        expected = 2 * focal + 5 * l1 - 2 * giou
        torch.testing.assert_close(cost[image, :, :count].double(), expected, rtol=1e-5, atol=1e-5)
        _, other = released_iou_giou(boxes[-1, image], target["boxes"], EPS - eps)  # the other epsilon
        assert not torch.allclose(cost[image, :, :count].double(), expected + 2 * giou - 2 * other, atol=1e-3)


def test_align_losses_are_the_released_ones_with_the_detrex_epsilon():
    logits, boxes, targets = inputs()
    results = {}
    for eps in (EPS, 0.0):
        criterion = build_criterion(align_config(eps), num_classes=CLASSES)
        output = output_of(logits, boxes)
        final = criterion.strategy.plan(output, targets)[-1]
        assert final.layer == LAYERS - 1
        result = criterion(output, targets)
        expected = released_iou_aware_terms(logits[-1], boxes[-1], targets, final.assignment, EPS, normalizer=5.0)
        results[eps] = {term: result.terms[f"one_to_one.layer{LAYERS - 1}.{term}"] for term in expected}
    for term, value in expected.items():
        torch.testing.assert_close(results[EPS][term].double(), value, rtol=2e-5, atol=1e-7, msg=term)
    # the epsilon is live at these box sizes: the exact areas give other values
    for term in ("cls", "giou"):
        assert not torch.allclose(results[0.0][term].double(), expected[term], rtol=1e-3), term


def test_align_presets_use_the_detrex_epsilon_and_the_dac_presets_exact_areas():
    for name in ("align_dino_r50_900", "msdetr_align_dino_r50_900"):
        assert load_config(name).supervision.iou_epsilon == EPS, name
    for name in ("dac_ddetr_pp_r50_300", "msdetr_dac_ddetr_pp_r50_300", "msdetr_pp_r50_300", "dino_r50_900"):
        assert load_config(name).supervision.iou_epsilon == 0.0, name


def test_align_batch_without_objects_divides_by_one():
    logits, boxes, _ = inputs()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    result = build_criterion(align_config(EPS), num_classes=CLASSES)(output_of(logits, boxes), empty)
    for layer in range(LAYERS):
        prob = logits[layer].double().sigmoid()
        negatives = (prob**2 * -(1 - prob).log()).sum()  # every entry negative; num_boxes clamped to 1
        torch.testing.assert_close(result.terms[f"one_to_one.layer{layer}.cls"].double(), negatives, rtol=1e-5,
                                   atol=0)
        assert result.terms[f"one_to_one.layer{layer}.giou"].item() == 0.0
    torch.testing.assert_close(result.total, sum(result.terms[f"one_to_one.layer{i}.cls"] for i in range(LAYERS)))


def dac_config() -> SupervisionConfig:
    cfg = SupervisionConfig(strategy="one_to_one")
    cfg.classification_loss.one_to_one = "iou_aware"
    cfg.classification_loss.dac = "iou_aware"
    cfg.loss_weights.one_to_one = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
    cfg.loss_weights.dac = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
    cfg.dac.enabled, cfg.dac.positive_fraction = True, 1.0
    return cfg


def dac_output(seed: int = 0):
    logits, boxes, targets = inputs(seed)
    g = torch.Generator().manual_seed(seed + 1)
    branch = (torch.randn(logits.shape, generator=g), small_boxes(boxes[..., 0].numel(), g).view(boxes.shape))
    return output_of(logits, boxes, dac=branch), targets


def test_dac_keeps_exact_areas():
    """DAC-DETR's box functions have no epsilon: the one-to-one GIoU loss on small boxes is the exact one."""
    output, targets = dac_output()
    criterion = build_criterion(dac_config(), num_classes=CLASSES)
    final = [t for t in criterion.strategy.plan(output, targets) if t.stream == ONE_TO_ONE][-1]
    result = criterion(output, targets)
    stream = output.streams[ONE_TO_ONE]
    exact = released_iou_aware_terms(stream.logits[-1], stream.boxes[-1], targets, final.assignment, 0.0, 5.0)
    detrex = released_iou_aware_terms(stream.logits[-1], stream.boxes[-1], targets, final.assignment, EPS, 5.0)
    ours = result.terms[f"one_to_one.layer{LAYERS - 1}.giou"].double()
    torch.testing.assert_close(ours, exact["giou"], rtol=2e-5, atol=1e-7)
    assert not torch.allclose(ours, detrex["giou"], rtol=1e-3)


def test_dac_batch_without_objects_divides_the_branch_by_max_3n_1():
    """Released: the branch's num_boxes is 3 * (objects), clamped at 1 after scaling; with no objects
    the branch's classification loss (all negatives) is divided by 1, not 3."""
    output, _ = dac_output()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    result = build_criterion(dac_config(), num_classes=CLASSES)(output, empty)
    for stream in (ONE_TO_ONE, DAC):
        for layer in range(LAYERS):
            x = output.streams[stream].logits[layer].double()
            negatives = (x.sigmoid() ** 2 * F.softplus(x)).sum()
            torch.testing.assert_close(result.terms[f"{stream}.layer{layer}.cls"].double(), negatives, rtol=1e-5,
                                       atol=0, msg=f"{stream} {layer}")


def test_dac_branch_clamps_after_scaling_and_the_primary_stream_before():
    """Fewer objects than ranks (a mean count below 1): the branch divides by max(3 * 0.5, 1) = 1.5,
    the one-to-one stream by max(0.5, 1) = 1; with a mean count of 2 by 6 and 2."""
    output, targets = dac_output()
    criterion = build_criterion(dac_config(), num_classes=CLASSES)
    torch.manual_seed(0)
    low = criterion(output, targets, target_count=torch.tensor(0.5)).terms
    torch.manual_seed(0)
    high = criterion(output, targets, target_count=torch.tensor(2.0)).terms
    for term in ("cls", "bbox", "giou"):
        name = f"{DAC}.layer1.{term}"
        torch.testing.assert_close(low[name] * 1.5, high[name] * 6.0, rtol=1e-6, atol=0, msg=name)
        name = f"{ONE_TO_ONE}.layer1.{term}"
        torch.testing.assert_close(low[name] * 1.0, high[name] * 2.0, rtol=1e-6, atol=0, msg=name)


@pytest.mark.parametrize("eps", [EPS, 0.0])
def test_every_box_function_takes_the_epsilon_as_detrex(eps):
    """The pairwise IoU / GIoU (matching) and the per-pair IoU / GIoU of the losses (the one aligned
    function, `aligned_box_iou_giou`) all equal the released formula with the same epsilon."""
    from msdetr.ops.boxes import aligned_box_iou_giou, pairwise_box_iou, pairwise_generalized_box_iou

    g = torch.Generator().manual_seed(3)
    a, b = small_boxes(7, g), small_boxes(7, g)
    iou, giou = released_iou_giou(a, b, eps)
    torch.testing.assert_close(pairwise_box_iou(a, b, "cxcywh", eps).double(), iou, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pairwise_generalized_box_iou(a, b, "cxcywh", eps).double(), giou, rtol=1e-5,
                               atol=1e-6)
    aligned_iou, aligned_giou = aligned_box_iou_giou(a, b, "cxcywh", eps)
    torch.testing.assert_close(aligned_iou.double(), iou.diag(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(aligned_giou.double(), giou.diag(), rtol=1e-5, atol=1e-6)
    _, other = released_iou_giou(a, b, EPS - eps)
    assert not torch.allclose(giou, other, atol=1e-3)  # the epsilon matters at these sizes
