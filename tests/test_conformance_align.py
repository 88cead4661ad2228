"""Align-DETR's criterion (IoU-aware loss, mixed matching, prime-sample weights) vs the released code.

The fixture (`tests/fixtures/align_detr_reference.pt`, or the file named by the environment
variable MSDETR_ALIGN_FIXTURE) is made by `tests/make_align_fixture.py` from FelixCaae/AlignDETR's
`ManyToOneCriterion` and `MixedMatcher`: losses, their weighted total, its gradient with respect to
every layer's logits and boxes, and the matcher's pairs, for three (k, tau) settings.
"""

from __future__ import annotations

import pytest
import torch

from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.modeling.outputs import ONE_TO_ONE, DetectorOutput, StreamPredictions
from support.references import load_reference


def our_name(reference_name: str, num_layers: int) -> str:
    """'loss_class_0' -> 'one_to_one.layer0.cls'; 'loss_giou' -> the final layer's giou."""
    parts = reference_name.split("_")
    term = {"class": "cls", "bbox": "bbox", "giou": "giou"}[parts[1]]
    layer = int(parts[2]) if len(parts) == 3 else num_layers - 1
    return f"{ONE_TO_ONE}.layer{layer}.{term}"


def criterion_for(config: dict):
    match_num, tau = config["match_num"], config["tau"]
    cfg = SupervisionConfig(strategy="one_to_one")
    cfg.many_to_one.enabled = True
    cfg.many_to_one.k = match_num[1]
    cfg.many_to_one.final_k = match_num[-1]
    cfg.many_to_one.tau = tau
    cfg.classification_loss.one_to_one = "iou_aware"
    cfg.loss_weights.one_to_one = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
    return build_criterion(cfg, num_classes=7)


@pytest.mark.parametrize("name", ["k2_tau1.5", "k3_tau3", "k1"])
def test_losses_gradients_and_pairs_match_the_released_align_detr(name):
    fixture = load_reference("align")
    inputs, reference = fixture["inputs"], fixture["configs"][name]
    logits = inputs["logits"].clone().requires_grad_(True)
    boxes = inputs["boxes"].clone().requires_grad_(True)
    output = DetectorOutput(streams={ONE_TO_ONE: StreamPredictions(logits=logits, boxes=boxes)})
    criterion = criterion_for(reference)
    tasks = criterion.strategy.plan(output, inputs["targets"])
    result = criterion(output, inputs["targets"])
    num_layers = logits.shape[0]

    for reference_name, expected in reference["losses"].items():
        ours = result.terms[our_name(reference_name, num_layers)]
        torch.testing.assert_close(ours, torch.tensor(expected), rtol=1e-4, atol=1e-6, msg=reference_name)
    assert len(result.terms) == len(reference["losses"])
    torch.testing.assert_close(result.total, torch.tensor(reference["total"]), rtol=1e-4, atol=1e-6)

    result.total.backward()
    torch.testing.assert_close(logits.grad, reference["grad_logits"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(boxes.grad, reference["grad_boxes"], rtol=1e-4, atol=1e-6)

    for task in tasks:
        for image, ((ours_q, ours_t), (ref_q, ref_t)) in enumerate(
            zip(task.assignment, reference["indices"][task.layer])
        ):
            ours_pairs = sorted(zip(ours_q.tolist(), ours_t.tolist()))
            assert ours_pairs == sorted(zip(ref_q.tolist(), ref_t.tolist())), (task.layer, image)


def test_prime_sample_weighting_is_live():
    """Without the rank weights the k=2 auxiliary losses are not the reference's (tau matters)."""
    fixture = load_reference("align")
    reference = fixture["configs"]["k2_tau1.5"]
    criterion = criterion_for({**reference, "tau": 1e6})  # exp(-rank / 1e6) ~ 1: no weighting
    output = DetectorOutput(streams={ONE_TO_ONE: StreamPredictions(fixture["inputs"]["logits"],
                                                                   fixture["inputs"]["boxes"])})
    ours = criterion(output, fixture["inputs"]["targets"]).terms["one_to_one.layer0.bbox"]
    assert not torch.allclose(ours, torch.tensor(reference["losses"]["loss_bbox_0"]), rtol=1e-2)
