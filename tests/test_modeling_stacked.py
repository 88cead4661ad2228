"""Heads, box refinement and auxiliary FFNs of all decoder layers at once equal the per-layer calls."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.model import MixedSupervisionConfig
from msdetr.modeling.build import build_model
from msdetr.modeling.decoder import apply_box_delta
from msdetr.modeling.decoder_layers import MixedSupervisionDecoderLayer, aux_ffn_all_layers
from msdetr.modeling.heads import MLP
from msdetr.modeling.stacked import stacked_layer_norm, stacked_linear, stacked_mlp
from support.tiny import tiny_model_config


def test_stacked_modules_equal_per_layer_calls():
    torch.manual_seed(0)
    linears = [torch.nn.Linear(8, 5) for _ in range(3)]
    mlps = [MLP(8, 8, 4, 3) for _ in range(3)]
    norms = [torch.nn.LayerNorm(8) for _ in range(3)]
    for norm in norms:
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, 2, 6, 8)
    for stacked, modules in ((stacked_linear, linears), (stacked_mlp, mlps), (stacked_layer_norm, norms)):
        expected = torch.stack([m(x[i]) for i, m in enumerate(modules)])
        torch.testing.assert_close(stacked(modules, x), expected, rtol=0, atol=1e-6)
        shared = [modules[0]] * 3  # one module for every layer: a plain call
        torch.testing.assert_close(stacked(shared, x), modules[0](x), rtol=0, atol=0)


def test_aux_ffn_all_layers_equals_per_layer():
    torch.manual_seed(0)
    layers = [MixedSupervisionDecoderLayer(16, 32, 0.0, "relu", 2, 4, 2) for _ in range(3)]
    x = torch.randn(3, 2, 5, 16)
    expected = torch.stack([layer.aux_ffn_block(x[i]) for i, layer in enumerate(layers)])
    torch.testing.assert_close(aux_ffn_all_layers(layers, x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("refine,two_stage,share_box", [(True, True, True), (True, False, False), (False, False, True)])
def test_detector_streams_equal_per_layer_heads(refine, two_stage, share_box):
    """The detector's batched heads against the heads applied layer by layer on the decoder's
    outputs (aux FFN applied per layer), parameter names unchanged."""
    torch.manual_seed(0)
    ms = MixedSupervisionConfig(enabled=True, tap="c", aux_ffn=True, share_box_head=share_box)
    cfg = tiny_model_config(mixed_supervision=ms, with_box_refine=refine, two_stage=two_stage)
    model = build_model(cfg).eval()
    names = {name for name, _ in model.named_parameters()}
    assert any(".linear3." in name for name in names) and any(name.startswith("heads.class_heads.") for name in names)
    images, mask = torch.randn(2, 3, 64, 64), torch.zeros(2, 64, 64, dtype=torch.bool)
    captured = {}
    decoder_forward = model.decoder.forward

    def capture(*args, **kwargs):
        captured["dec"] = out = decoder_forward(*args, **kwargs)
        return out

    model.decoder.forward = capture
    with torch.no_grad():
        output = model(images, mask, all_streams=True)
    dec = captured["dec"]
    heads = model.heads
    logits = torch.stack([h(x) for h, x in zip(heads.class_heads, dec.hidden)])
    boxes = torch.stack([apply_box_delta(d, r) for d, r in zip(dec.box_deltas, dec.references)])
    box_heads = heads.o2m_box_heads if heads.o2m_box_heads is not None else heads.box_heads
    o2m_logits = torch.stack([h(x) for h, x in zip(heads.class_heads, dec.hidden_o2m)])
    o2m_boxes = torch.stack([apply_box_delta(h(x), r) for h, x, r in zip(box_heads, dec.hidden_o2m, dec.references)])
    for got, expected in (
        (output.streams["one_to_one"].logits, logits),
        (output.streams["one_to_one"].boxes, boxes),
        (output.streams["one_to_many"].logits, o2m_logits),
        (output.streams["one_to_many"].boxes, o2m_boxes),
    ):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
