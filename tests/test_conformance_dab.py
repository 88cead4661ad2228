"""DAB-Deformable-DETR and DN-DAB-Deformable-DETR: our whole model against the reference code
(DAB-DETR's `dab_deformable_detr`, DN-DETR's `dn_dab_deformable_detr`).

The fixture (`tests/fixtures/dn_dab_deformable_reference.pt`, made by `tests/make_dab_fixture.py`;
another file through MSDETR_DAB_FIXTURE) holds the reference model's outputs for deterministic weights
(`fixture_weights`, regenerated here by name), per model: eval-mode outputs (no denoising), and a
training forward (DN: with 5 DN-DETR denoising groups after a fixed seed): the matching (and
denoising) predictions, the criterion's terms, and every trainable parameter's gradient (float16,
fixed samples of the large ones, and float32 norms). Our model,
with the same weights under our names, must reproduce them (outputs 1e-4 absolute, losses 1e-4
relative, gradients 1e-3 relative on top of the fixture's float16 storage).
"""

from __future__ import annotations

import functools
import re

import pytest
import torch

from make_dab_fixture import fixture_weights, inputs, sampled_entries
from msdetr.compat.official import convert_official_state_dict
from msdetr.config.model import BackboneConfig, DenoisingConfig, ModelConfig
from msdetr.config.supervision import LossWeights, MatcherCosts, StreamLossWeights, SupervisionConfig
from msdetr.losses.build import build_criterion
from msdetr.modeling.build import build_model
from support.references import load_reference
from support.tiny import pad_batch

pytestmark = pytest.mark.slow

_DAB_NAMES = [  # reference name -> ours, for what the MS-DETR converter does not know
    (r"^tgt_embed\.", "queries.tgt_embed."),
    (r"^refpoint_embed\.", "queries.refpoint_embed."),
    (r"^transformer\.decoder\.(ref_point_head|query_scale)\.", r"queries.position.\1."),
    (r"^label_enc\.", "query_groups.0.label_embed."),
]


def _config(args: dict, denoising: bool) -> ModelConfig:
    dn = DenoisingConfig(method="dn", num_groups=args["scalar"], label_noise=args["label_noise_scale"],
                         box_noise=args["box_noise_scale"], label_indicator=True) if denoising else DenoisingConfig()
    return ModelConfig(
        num_classes=args["num_classes"], hidden_dim=args["hidden_dim"], nheads=args["nheads"],
        enc_layers=args["enc_layers"], dec_layers=args["dec_layers"], dim_feedforward=args["dim_feedforward"],
        dropout=args["dropout"], num_queries=args["num_queries"], num_feature_levels=args["num_feature_levels"],
        enc_n_points=args["enc_n_points"], dec_n_points=args["dec_n_points"], with_box_refine=True,
        two_stage=False, anchor_queries=True, padding_invariant=False,
        backbone=BackboneConfig(name="resnet50", weights=None, freeze_at="all"), denoising=dn,
    )


def _our_name(reference: str, cfg: ModelConfig) -> str:
    for pattern, repl in _DAB_NAMES:
        if re.match(pattern, reference):
            return re.sub(pattern, repl, reference)
    converted, report = convert_official_state_dict({reference: torch.zeros(1)}, cfg)
    assert not report.unplaced, reference
    return next(iter(converted))


@functools.lru_cache(maxsize=2)
def _model_and_names(case: str):
    fx = load_reference("dab")
    cfg = _config(fx["args"], denoising=case == "dn_dab")
    reference = fixture_weights(fx[case]["shapes"])
    names = {k: _our_name(k, cfg) for k in reference if not k.startswith("transformer.decoder.bbox_embed")}
    model = build_model(cfg)
    result = model.load_state_dict({names[k]: v for k, v in reference.items() if k in names}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return cfg, model, names


def _assert_layers(stream, reference: dict, what: str, atol: float = 1e-4):
    layers = [*reference["aux_outputs"], reference]
    for i, layer in enumerate(layers):
        torch.testing.assert_close(stream.logits[i], layer["pred_logits"], atol=atol, rtol=0, msg=f"{what} {i}")
        torch.testing.assert_close(stream.boxes[i], layer["pred_boxes"], atol=atol, rtol=0, msg=f"{what} {i}")


@pytest.mark.parametrize("case", ["dab", "dn_dab"])
def test_eval_outputs_match_the_reference(case):
    """Eval mode: no denoising queries, the DAB anchor queries alone."""
    fx = load_reference("dab")
    _, model, _ = _model_and_names(case)
    images, _ = inputs()
    batch, mask = pad_batch(images)
    with torch.no_grad():
        out = model.eval()(batch, mask)
    assert set(out.streams) == {"one_to_one"}
    _assert_layers(out.streams["one_to_one"], fx[case]["eval_outputs"], f"{case} eval layer")


@pytest.mark.parametrize("case", ["dab", "dn_dab"])
def test_training_outputs_losses_and_gradients_match_the_reference(case):
    fx = load_reference("dab")
    ref = fx[case]
    cfg, model, names = _model_and_names(case)
    images, targets = inputs()
    batch, mask = pad_batch(images)
    model.train()
    model.zero_grad()
    torch.manual_seed(fx["dn_seed"])  # the denoising noise: same draws as the reference
    out = model(batch, mask, targets=targets)
    _assert_layers(out.streams["one_to_one"], ref["train_outputs"], f"{case} train matching layer")
    streams = [("one_to_one", "loss_")]
    if case == "dn_dab":
        known = ref["train_denoising"]
        assert out.streams["denoising"].logits.shape[2] == known["pad_size"]
        torch.testing.assert_close(out.streams["denoising"].logits, known["logits"], atol=1e-4, rtol=0)
        torch.testing.assert_close(out.streams["denoising"].boxes, known["boxes"], atol=1e-4, rtol=0)
        streams.append(("denoising", "tgt_loss_"))
    else:
        assert "denoising" not in out.streams

    weights = LossWeights(cls=1.0, bbox=5.0, giou=2.0)  # DAB / DN-DETR: cls_loss_coef 1
    supervision = SupervisionConfig(matcher=MatcherCosts(2.0, 5.0, 2.0), denoising_normalization="groups",
                                    loss_weights=StreamLossWeights(one_to_one=weights, denoising=weights))
    result = build_criterion(supervision, cfg.num_classes)(out, targets)
    layers = cfg.dec_layers
    for layer in range(layers):
        suffix = "" if layer == layers - 1 else f"_{layer}"
        for ours, theirs in (("cls", "ce"), ("bbox", "bbox"), ("giou", "giou")):
            for stream, prefix in streams:
                torch.testing.assert_close(result.terms[f"{stream}.layer{layer}.{ours}"],
                                           ref["losses"][f"{prefix}{theirs}{suffix}"], rtol=1e-4, atol=1e-6,
                                           msg=f"{stream} layer {layer} {ours}")
    torch.testing.assert_close(result.total, ref["total"], rtol=1e-4, atol=0)

    result.total.backward()
    params = dict(model.named_parameters())
    trainable = {name for name, p in params.items() if p.requires_grad}
    compared = set()
    for reference, kept in ref["grads"].items():
        name = names[reference.replace("transformer.decoder.bbox_embed", "bbox_embed")]
        grad = params[name].grad
        assert grad is not None, name
        index = sampled_entries(grad.numel())
        ours = grad.flatten() if index is None else grad.flatten()[index]
        scale = float(grad.abs().max())
        torch.testing.assert_close(ours, kept.float(), rtol=1.5e-3, atol=1e-3 * scale + 1e-12, msg=name)
        torch.testing.assert_close(grad.norm(), ref["grad_norms"][reference], rtol=1e-3, atol=1e-12, msg=name)
        compared.add(name)
    assert compared == trainable, sorted(trainable - compared)
