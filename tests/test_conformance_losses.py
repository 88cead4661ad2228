"""Every official loss term of the six fixture configs, reproduced by our criterion."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.losses import build_criterion
from support.references import load_reference, official_outputs_to_detector_output

CONFIGS = [
    "ddetr_boxrefine_twostage",
    "ddetr_pp",
    "msdetr",
    "msdetr_noauxffn",
    "msdetr_pp",
    "msdetr_pp_merge",
]


def supervision_config_from_official_args(args: dict) -> SupervisionConfig:
    """Our typed config for an official argument namespace (as stored in the fixture)."""
    config = SupervisionConfig(strategy="mixed" if args["use_ms_detr"] else "one_to_one")
    config.matcher.cls = args["set_cost_class"]
    config.matcher.bbox = args["set_cost_bbox"]
    config.matcher.giou = args["set_cost_giou"]
    config.focal_alpha = args["focal_alpha"]
    config.one_to_many.merge_one_to_one = args["use_indices_merge"]
    weights = config.loss_weights
    weights.one_to_one = LossWeights(args["cls_loss_coef"], args["bbox_loss_coef"], args["giou_loss_coef"])
    weights.one_to_many = LossWeights(
        args["o2m_cls_loss_coef"], args["o2m_bbox_loss_coef"], args["o2m_giou_loss_coef"]
    )
    weights.encoder = LossWeights(
        args["enc_cls_loss_coef"], args["enc_bbox_loss_coef"], args["enc_giou_loss_coef"]
    )
    return config


@pytest.mark.parametrize("name", CONFIGS)
def test_every_official_loss_term_matches(name):
    fixture = load_reference("official")
    official = fixture["configs"][name]
    output = official_outputs_to_detector_output(official["outputs"])
    targets = fixture["inputs"]["targets"]
    num_layers = output.streams["one_to_one"].num_layers
    criterion = build_criterion(supervision_config_from_official_args(official["args"]), num_classes=91)

    torch.manual_seed(0)
    result = criterion(output, targets)
    ours = result.official(num_layers)

    assert set(ours) == set(official["losses"])
    for key, expected in official["losses"].items():
        expected = torch.as_tensor(expected, dtype=torch.float32)
        torch.testing.assert_close(ours[key], expected, rtol=1e-4, atol=0, msg=f"{name}: {key}")
    weight_dict = official["weight_dict"]
    expected_total = sum(
        official["losses"][k] * weight_dict[k] for k in weight_dict if k in official["losses"]
    )
    torch.testing.assert_close(result.total, torch.as_tensor(expected_total).float(), rtol=1e-4, atol=0)


def test_merge_option_is_what_changes_the_merge_config():
    """Without our merge, the msdetr_pp_merge one-to-many terms are not reproduced (the merge is live)."""
    fixture = load_reference("official")
    official = fixture["configs"]["msdetr_pp_merge"]
    config = supervision_config_from_official_args(official["args"])
    config.one_to_many.merge_one_to_one = False
    torch.manual_seed(0)
    ours = build_criterion(config, num_classes=91)(
        official_outputs_to_detector_output(official["outputs"]), fixture["inputs"]["targets"]
    ).official(3)
    expected = torch.as_tensor(official["losses"]["loss_ce_o2m"], dtype=torch.float32)
    assert not torch.allclose(ours["loss_ce_o2m"], expected, rtol=1e-2)
