"""H-DETR hybrid matching equals the reference code (HDETR/H-Deformable-DETR): forward outputs of
both branches on every decoder layer and of the encoder proposals, every loss term, the total
loss and every parameter's gradient (fixture: tests/make_hdetr_fixture.py, MSDETR_HDETR_FIXTURE)."""

from __future__ import annotations

import re

import pytest
import torch

from msdetr.compat.official import config_from_official_args, convert_official_state_dict
from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.losses.names import to_official_name
from msdetr.modeling.build import build_model
from support.references import fixture_state_dict, load_reference, unpack_gradient
from support.tiny import pad_batch

pytestmark = pytest.mark.slow

ATOL = 1e-4
GRAD_RTOL = 1e-3


def _setup(name: str):
    fixture = load_reference("hdetr")
    entry = fixture["configs"][name]
    state = fixture_state_dict(entry, fixture["backbone_seed"])
    cfg = config_from_official_args(entry["args"], state)
    converted, report = convert_official_state_dict(state, cfg)
    assert report.unplaced == [], report.unplaced
    model = build_model(cfg).train()  # dropout 0, as the reference run
    assert model.load_state_dict(converted, strict=True)
    return fixture, entry, cfg, model


def _criterion(args: dict, num_classes: int):
    base = LossWeights(cls=args["cls_loss_coef"], bbox=args["bbox_loss_coef"], giou=args["giou_loss_coef"])
    lam = args["lambda_one2many"]
    config = SupervisionConfig(strategy="one_to_one")
    config.matcher.cls, config.matcher.bbox, config.matcher.giou = (
        args["set_cost_class"], args["set_cost_bbox"], args["set_cost_giou"])
    config.focal_alpha = args["focal_alpha"]
    config.encoder_match_on_anchors, config.encoder_class_cost = False, True  # H-DETR's encoder matcher
    config.loss_weights.one_to_one = base
    config.loss_weights.encoder = base
    # lambda folded into the branch's weights (H-DETR multiplies the terms themselves)
    config.loss_weights.hybrid = LossWeights(cls=lam * base.cls, bbox=lam * base.bbox, giou=lam * base.giou)
    config.hybrid.enabled, config.hybrid.k = True, args["k_one2many"]
    return build_criterion(config, num_classes)


def _close(ours, theirs, label):
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0, msg=lambda m: f"{label}: {m}")


@pytest.mark.parametrize("name", ["hdetr_pp", "hdetr_twostage"])
def test_hdetr_outputs_losses_and_gradients_match_reference(name):
    fixture, entry, cfg, model = _setup(name)
    images, mask = pad_batch(fixture["inputs"]["images"])
    targets = fixture["inputs"]["targets"]
    out = model(images, mask, targets=targets)

    ref = entry["outputs"]
    for stream, suffix in (("one_to_one", ""), ("hybrid", "_one2many")):
        layers = [*ref[f"aux_outputs{suffix}"], {"pred_logits": ref[f"pred_logits{suffix}"],
                                                 "pred_boxes": ref[f"pred_boxes{suffix}"]}]
        ours = out.streams[stream]
        assert ours.num_layers == len(layers)
        for i, layer in enumerate(layers):
            _close(ours.logits[i].detach(), layer["pred_logits"], f"{stream} layer {i} logits")
            _close(ours.boxes[i].detach(), layer["pred_boxes"], f"{stream} layer {i} boxes")
    _close(out.encoder.logits.detach(), ref["enc_outputs"]["pred_logits"], "encoder logits")
    _close(out.encoder.boxes.detach(), ref["enc_outputs"]["pred_boxes"], "encoder boxes")

    args = entry["args"]
    result = _criterion(args, cfg.num_classes)(out, targets)
    lam = args["lambda_one2many"]
    compared = set()
    for term, value in result.terms.items():
        hybrid = term.startswith("hybrid.")
        # H-DETR names its branch's terms like the one-to-one ones plus "_one2many"
        official = to_official_name(term.replace("hybrid.", "one_to_one.", 1) if hybrid else term, cfg.dec_layers)
        official += "_one2many" if hybrid else ""
        scale = lam if hybrid else 1.0  # the reference logs lambda * term
        _close(value.detach() * scale, entry["losses"][official].float(), f"{term} ({official})")
        compared.add(official)
    expected = {k for k in entry["losses"] if k.startswith("loss_")}
    assert compared == expected, sorted(expected ^ compared)
    torch.testing.assert_close(result.total.detach(), entry["total"].float(), atol=ATOL, rtol=1e-5)

    if not entry["gradients"]:
        return
    result.total.backward()
    # the reference's heads are registered twice; named_parameters() lists the decoder's names
    reference = {re.sub(r"^transformer\.decoder\.(?=(class|bbox)_embed\.)", "", k): unpack_gradient(v)
                 for k, v in entry["gradients"].items()}
    converted, report = convert_official_state_dict(reference, cfg)
    assert report.unplaced == [], report.unplaced
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert set(converted) == trainable, sorted(set(converted) ^ trainable)
    for pname, theirs in converted.items():
        grad = params[pname].grad
        assert grad is not None, pname
        scale = float(theirs.abs().max())
        torch.testing.assert_close(grad, theirs, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale,
                                   msg=lambda m, pname=pname: f"gradient of {pname}: {m}")
