"""Forward/backward of every detector variant on tiny configs; gradients reach every trainable parameter."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.model import MixedSupervisionConfig
from msdetr.errors import MsdetrError
from msdetr.modeling.build import build_model
from support.tiny import padded_batch, tiny_model_config

MS = MixedSupervisionConfig

VARIANTS = {
    "single_stage": dict(two_stage=False, with_box_refine=False),
    "single_stage_box_refine": dict(two_stage=False, with_box_refine=True),
    "two_stage_no_refine": dict(two_stage=True, with_box_refine=False),
    "two_stage_box_refine": dict(two_stage=True, with_box_refine=True),
    "deformable_detr_pp": dict(two_stage=True, with_box_refine=True, mixed_selection=True, look_forward_twice=True),
    "msdetr_single_stage": dict(two_stage=False, with_box_refine=True, mixed_supervision=MS(enabled=True)),
    **{f"msdetr_tap_{p}": dict(mixed_supervision=MS(enabled=True, tap=p)) for p in "abcd"},
    "msdetr_no_aux_ffn": dict(mixed_supervision=MS(enabled=True, aux_ffn=False)),
    **{
        f"msdetr_share_class{int(c)}_box{int(b)}": dict(
            mixed_selection=True, look_forward_twice=True,
            mixed_supervision=MS(enabled=True, share_class_head=c, share_box_head=b))
        for c in (True, False) for b in (True, False)
    },
}


def _loss_touching_everything(out) -> torch.Tensor:
    total = 0.0
    for stream in out.streams.values():
        total = total + stream.logits.sum() + stream.boxes.sum()
    if out.encoder is not None:
        total = total + out.encoder.logits.sum() + out.encoder.boxes.masked_fill(out.encoder.boxes >= 1, 0).sum()
    return total


SLOW_VARIANTS = {"msdetr_tap_a", "msdetr_tap_b", "msdetr_tap_d", "msdetr_share_class0_box1",
                 "msdetr_share_class1_box0", "single_stage_box_refine"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow if name in SLOW_VARIANTS else ())
                                  for name in sorted(VARIANTS)])
def test_forward_backward_and_gradients(name):
    torch.manual_seed(0)
    cfg = tiny_model_config(**VARIANTS[name])
    model = build_model(cfg).train()
    # some layers start at exactly zero (box head outputs, offsets), which hides
    # structural gradient paths at init: nudge every weight away from its init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    _, images, mask = padded_batch([(64, 80), (48, 64)])
    out = model(images, mask)
    L, B, Q, C = cfg.dec_layers, 2, cfg.num_queries, cfg.num_classes
    o2o = out.streams["one_to_one"]
    assert o2o.logits.shape == (L, B, Q, C) and o2o.boxes.shape == (L, B, Q, 4)
    assert torch.isfinite(o2o.logits).all() and ((o2o.boxes >= 0) & (o2o.boxes <= 1)).all()
    assert ("one_to_many" in out.streams) == cfg.mixed_supervision.enabled
    if cfg.mixed_supervision.enabled:
        assert out.streams["one_to_many"].logits.shape == (L, B, Q, C)
    assert (out.encoder is not None) == cfg.two_stage

    _loss_touching_everything(out).backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "no trainable parameters"
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without (finite) gradient: {no_grad}"
    zero = [n for n, p in trainable.items() if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with all-zero gradient: {zero}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(n.startswith(("backbone.body.conv1", "backbone.body.bn1", "backbone.body.layer1")) for n in frozen)


def test_inference_has_no_one_to_many_stream_and_same_one_to_one():
    torch.manual_seed(0)
    model = build_model(tiny_model_config(mixed_supervision=MS(enabled=True))).eval()
    _, images, mask = padded_batch([(64, 64)])
    with torch.no_grad():
        plain = model(images, mask)
        full = model(images, mask, all_streams=True)
    assert set(plain.streams) == {"one_to_one"}
    assert set(full.streams) == {"one_to_one", "one_to_many"}
    torch.testing.assert_close(plain.logits, full.logits, rtol=0, atol=0)
    torch.testing.assert_close(plain.boxes, full.boxes, rtol=0, atol=0)


def test_ms_detr_adds_only_the_aux_ffn_parameters():
    base = build_model(tiny_model_config())
    ms = build_model(tiny_model_config(mixed_supervision=MS(enabled=True)))
    ms_plain = build_model(tiny_model_config(mixed_supervision=MS(enabled=True, aux_ffn=False)))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(ms_plain) == n(base)
    extra = {k for k in ms.state_dict()} - {k for k in base.state_dict()}
    assert extra and all(k.split(".")[3] in ("linear3", "linear4", "norm4") for k in extra)


@pytest.mark.parametrize("two_stage", [True, False])
def test_any_hidden_size(two_stage):
    cfg = tiny_model_config(hidden_dim=96, nheads=3, two_stage=two_stage)
    model = build_model(cfg).eval()
    _, images, mask = padded_batch([(64, 64)])
    with torch.no_grad():
        out = model(images, mask)
    assert out.logits.shape == (1, cfg.num_queries, cfg.num_classes)


def test_invalid_architecture_is_a_clear_error():
    with pytest.raises(MsdetrError, match="mixed_selection"):
        build_model(tiny_model_config(two_stage=False, mixed_selection=True))
    with pytest.raises(MsdetrError, match="resnet7"):
        build_model(tiny_model_config(backbone=type(tiny_model_config().backbone)(name="resnet7")))
