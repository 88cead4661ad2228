"""Group DETR supervision equals the reference criterion and matcher (detrex projects/group_detr,
from Atten4Vis/ConditionalDETR's GroupDETR branch): per-group Hungarian matching on every layer,
the G * N normalizer, every loss term, the total and its gradient with respect to the predictions.
Fixture: tests/make_group_detr_fixture.py; MSDETR_GROUP_DETR_FIXTURE points at another one."""

from __future__ import annotations

import torch

from msdetr.config.supervision import SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.modeling.outputs import DetectorOutput, StreamPredictions
from support.references import load_reference

_TERMS = {"cls": "loss_class", "bbox": "loss_bbox", "giou": "loss_giou"}


def test_group_supervision_matches_reference_criterion():
    fx = load_reference("group_detr")
    groups, weights = fx["groups"], fx["weight_dict"]
    logits = fx["inputs"]["logits"].clone().requires_grad_(True)
    boxes = fx["inputs"]["boxes"].clone().requires_grad_(True)
    layers, _, total_queries, num_classes = logits.shape
    q = total_queries // groups
    output = DetectorOutput(
        streams={"one_to_one": StreamPredictions(logits[:, :, :q], boxes[:, :, :q]),
                 "group": StreamPredictions(logits[:, :, q:], boxes[:, :, q:])},
        query_meta={"group": {"num_groups": groups - 1, "group_size": q}},
    )
    config = SupervisionConfig(strategy="one_to_one")
    config.group.enabled = True
    result = build_criterion(config, num_classes)(output, fx["inputs"]["targets"])

    for layer in range(layers):
        suffix = "" if layer == layers - 1 else f"_{layer}"
        for term, official in _TERMS.items():
            ours = result.terms[f"one_to_one.layer{layer}.{term}"] + result.terms[f"group.layer{layer}.{term}"]
            torch.testing.assert_close(ours.detach(), fx["losses"][official + suffix], atol=1e-5, rtol=1e-5,
                                       msg=lambda m, t=official + suffix: f"{t}: {m}")
    assert set(weights) == {f"{_TERMS[t]}{s}" for t in _TERMS for s in ["", *[f"_{i}" for i in range(layers - 1)]]}
    torch.testing.assert_close(result.total.detach(), fx["total"], atol=1e-4, rtol=1e-5)

    result.total.backward()
    for name, ours in (("logits", logits.grad), ("boxes", boxes.grad)):
        theirs = fx["gradients"][name]
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3 * float(theirs.abs().max()),
                                   msg=lambda m, name=name: f"gradient wrt {name}: {m}")
