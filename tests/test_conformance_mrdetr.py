"""Mr. DETR equals its released code (Visual-AI/Mr.DETR, Deformable variant) on both fixture
configurations (`tests/fixtures/mrdetr_300q.pt` / `mrdetr_900q.pt`, made by
tests/make_mrdetr_fixture.py): in training mode every route's logits and boxes on every decoder
layer, both encoder heads' proposals, every loss term, the total and every parameter's gradient
(sketched ones by their sketch and norm); in eval mode the final layer's fused scores.

Tolerances as the H-DETR test: outputs and losses 1e-4 absolute, gradients 1e-3 relative to the
parameter's largest gradient entry. detrex's 1e-6 IoU / GIoU epsilons are `supervision.iou_epsilon`
(the top-K assigner's IoU stays exact: the pairs are identical, tests/test_mrdetr_reference_topk.py);
the routes clamp their references' inverse sigmoid at detrex's 1e-3 (`model.mr_detr.reference_eps`).
"""

from __future__ import annotations

import pytest
import torch

from make_mrdetr_fixture import sketch_projection
from mrdetr_fixture import fixture_weights, load, model_config, msdetr_name, normalized_batch, supervision_config
from msdetr.losses import build_criterion
from msdetr.modeling.build import build_model

ATOL = 1e-4
GRAD_RTOL = 1e-3
CONFIGS = ["300q", "900q"]
TERMS = {"cls": "loss_class", "bbox": "loss_bbox", "giou": "loss_giou"}


def reference_name(term: str, num_layers: int) -> str:
    """msdetr term name -> the release's loss name."""
    parts = term.split(".")
    stream, kind = parts[0], TERMS[parts[-1]]
    if stream == "encoder":
        return f"{kind}_enc"
    if stream == "mr_encoder":
        return f"{kind}_enc_o2m"
    layer = int(parts[1].removeprefix("layer"))
    if stream == "one_to_one":
        return kind if layer == num_layers - 1 else f"{kind}_{layer}"
    return f"{kind}_{ {'mr_instructive': 'group', 'mr_sep': 'sep'}[stream]}_{layer}"


def _setup(config: str):
    fixture = load(config)
    model = build_model(model_config(fixture)).train()
    assert model.load_state_dict(fixture_weights(fixture), strict=True)
    return fixture, model


def _close(ours, theirs, label, atol=ATOL):
    torch.testing.assert_close(ours, theirs.float(), atol=atol, rtol=0, msg=lambda m: f"{label}: {m}")


@pytest.mark.parametrize("config", CONFIGS)
def test_routes_losses_and_gradients_match_the_release(config):
    fixture, model = _setup(config)
    images, mask = normalized_batch(fixture["inputs"]["images"])
    targets = fixture["targets"]
    out = model(images, mask, targets=targets)
    ref = fixture["outputs"]
    num_layers = fixture["config"]["num_decoder_layers"]

    primary = [*ref["aux_outputs"], {"pred_logits": ref["pred_logits"], "pred_boxes": ref["pred_boxes"]}]
    for stream, layers in (("one_to_one", primary), ("mr_instructive", ref["group"]), ("mr_sep", ref["sep"])):
        ours = out.streams[stream]
        assert ours.num_layers == len(layers) == num_layers
        for i, layer in enumerate(layers):
            _close(ours.logits[i].detach(), layer["pred_logits"], f"{stream} layer {i} logits")
            _close(ours.boxes[i].detach(), layer["pred_boxes"], f"{stream} layer {i} boxes")
    for ours, key in ((out.encoder, "enc_outputs"), (out.encoders["mr_encoder"], "enc_outputs_o2m")):
        _close(ours.logits.detach(), ref[key]["pred_logits"], f"{key} logits")
        _close(ours.boxes.detach(), ref[key]["pred_boxes"], f"{key} boxes")
        _close(ours.anchors, ref[key]["anchors"], f"{key} anchors")

    result = build_criterion(supervision_config(), model.cfg.num_classes)(out, targets)
    compared = set()
    for term, value in result.terms.items():
        name = reference_name(term, num_layers)
        _close(value.detach(), fixture["losses"][name], f"{term} ({name})")
        compared.add(name)
    assert compared == set(fixture["losses"]), sorted(compared ^ set(fixture["losses"]))
    torch.testing.assert_close(result.total.detach(), fixture["total"].float(), atol=ATOL, rtol=1e-5)

    result.total.backward()
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    expected = {msdetr_name(n, num_layers) for n in fixture["parameter_names"]}
    assert trainable == expected, sorted(trainable ^ expected)
    for name, (half, scale) in fixture["gradients"].items():
        ours = params[msdetr_name(name, num_layers)].grad
        theirs = half.float() * scale
        torch.testing.assert_close(ours, theirs, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")
    for name, sketch in fixture["gradient_sketches"].items():
        flat = params[msdetr_name(name, num_layers)].grad.flatten(1).double()
        ours = (flat @ sketch_projection(flat.shape[1]).double()).float()
        torch.testing.assert_close(ours, sketch["sketch"], rtol=GRAD_RTOL,
                                   atol=GRAD_RTOL * float(sketch["sketch"].abs().max()),
                                   msg=lambda m, name=name: f"gradient sketch of {name}: {m}")
        assert abs(float(flat.norm()) - sketch["norm"]) <= GRAD_RTOL * sketch["norm"], name


@pytest.mark.parametrize("config", CONFIGS)
def test_eval_mode_fused_scores_match_the_release(config):
    fixture, model = _setup(config)
    model.cfg.mr_detr.score_fusion = True
    images, mask = normalized_batch(fixture["inputs"]["images"], padding_mask=False)  # the release's eval mode
    with torch.no_grad():
        out = model.eval()(images, mask)
    assert set(out.streams) == {"one_to_one"} and not out.encoders  # no routes at inference
    _close(out.logits, fixture["inference"]["box_cls"], "fused final-layer logits")
    _close(out.boxes, fixture["inference"]["box_pred"], "final-layer boxes")
