"""The Mr. DETR fixtures' one-to-many supervision against msdetr's existing pieces.

The fixtures (`tests/fixtures/mrdetr_<config>.pt`, made by `tests/make_mrdetr_fixture.py` from the
released Mr. DETR code, see docs/mr_detr_reference.md) record, for both one-to-many routes (`group`:
the instructive route, `sep`: the route with its own FFN weights) and every decoder layer, the
route's predictions, the released assigner's pairs and the loss terms. msdetr's top-K assigner
(official mode, k 6, threshold 0.4, score 0.3 p + 0.7 IoU) with the pairs listed by target, best
first, must give the same pairs (the reference caps positives at 225 an image, above the fixtures'
counts), and the focal / L1 / GIoU sums over them divided by the number of targets the same terms
(GIoU up to detrex's 1e-6 epsilons).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from msdetr.losses.classification import onehot_focal_loss
from msdetr.ops.boxes import aligned_box_iou_giou
from msdetr.supervision.base import LayerPredictions
from msdetr.supervision.dac import by_target_best_first
from msdetr.supervision.topk import TopKAssigner

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIGS = ["300q", "900q"]
ROUTES = {"group": "topk_group", "sep": "topk_sep"}


def load(config: str) -> dict:
    path = FIXTURES / f"mrdetr_{config}.pt"
    if not path.is_file():
        pytest.skip(f"Mr. DETR fixture not found at {path} (make it with tests/make_mrdetr_fixture.py)")
    return torch.load(path, weights_only=False, map_location="cpu")


def released_assigner() -> TopKAssigner:
    # positive_fraction 1: no cap below the queries; the reference's cap (225) is above every count here
    return TopKAssigner(k=6, threshold=0.4, class_weight=0.3, iou_weight=0.7, positive_fraction=1.0)


@pytest.mark.parametrize("config", CONFIGS)
def test_top_k_pairs_of_both_routes_match_the_released_assigner(config):
    fixture = load(config)
    assigner = released_assigner()
    several = 0
    for route, key in ROUTES.items():
        for layer, outputs in enumerate(fixture["outputs"][route]):
            ours = assigner(LayerPredictions(outputs["pred_logits"], outputs["pred_boxes"]), fixture["targets"])
            ours = by_target_best_first(ours)
            for image, ((pred, tgt), (ref_pred, ref_tgt)) in enumerate(zip(ours, fixture["matching"][key][layer])):
                assert torch.equal(pred, ref_pred) and torch.equal(tgt, ref_tgt), (route, layer, image)
                several += int(len(tgt) and torch.bincount(tgt).max() > 1)
    assert several > 0, "the fixture should give some target several queries"


@pytest.mark.parametrize("config", CONFIGS)
def test_one_to_many_route_losses_are_sums_over_the_pairs_divided_by_the_target_count(config):
    fixture = load(config)
    targets = fixture["targets"]
    num_targets = sum(len(t["labels"]) for t in targets)
    for route, key in ROUTES.items():
        for layer, outputs in enumerate(fixture["outputs"][route]):
            pairs = fixture["matching"][key][layer]
            logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
            onehot = torch.zeros_like(logits)
            batch = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(pairs)])
            src = torch.cat([src for src, _ in pairs])
            labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, pairs)])
            onehot[batch, src, labels] = 1.0
            matched = boxes[batch, src]
            target_boxes = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, pairs)])
            # detrex's GIoU divides by union + 1e-6 and hull area + 1e-6 (msdetr's supervision.iou_epsilon)
            _, giou = aligned_box_iou_giou(matched, target_boxes, in_fmt="cxcywh", eps=1e-6)
            ours = {
                "loss_class": onehot_focal_loss(logits, onehot, alpha=0.25, gamma=2.0).sum() / num_targets,
                "loss_bbox": (matched - target_boxes).abs().sum() / num_targets,
                "loss_giou": (1 - giou).sum() / num_targets,
            }
            for term, value in ours.items():
                reference = fixture["losses"][f"{term}_{route}_{layer}"]
                torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6, msg=f"{term}_{route}_{layer}")
