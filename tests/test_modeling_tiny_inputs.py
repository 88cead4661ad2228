"""Tiny inputs: a 1x1 coarsest feature map at batch 1 (hidden_dim 32: one channel per GroupNorm group)
predicts instead of raising `nn.GroupNorm`'s "Expected more than 1 value per channel" ValueError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import msdetr
from msdetr.config.model import MaskHeadConfig
from msdetr.modeling.build import build_model
from msdetr.modeling.norm import GroupNorm
from test_predict_support import random_checkpoint
from tiny_models import tiny_model_config


@pytest.mark.parametrize("shape", [(2, 64, 5, 7), (1, 32, 1, 2), (3, 32, 4), (2, 64, 1, 1)])
def test_group_norm_is_torchs_bit_for_bit(shape):
    torch.manual_seed(0)
    ours, theirs = GroupNorm(32, shape[1]), nn.GroupNorm(32, shape[1])
    nn.init.normal_(ours.weight), nn.init.normal_(ours.bias)
    theirs.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(shape)
    assert torch.equal(ours(x), theirs(x))


def test_group_norm_of_single_values_is_the_bias():
    torch.manual_seed(0)
    norm = GroupNorm(32, 32)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(2, 32, 1, 1, requires_grad=True)
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.functional.group_norm(x[:1], 32, norm.weight, norm.bias, norm.eps)  # what torch does alone
    single = norm(x[:1])
    torch.testing.assert_close(single.flatten(), norm.bias.detach(), atol=1e-4, rtol=0)
    assert torch.equal(single, norm(x)[:1])  # as torch computes it for a batch of two such maps
    single.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("overrides", [
    pytest.param({}, id="plain"),  # strides 16, 32: a 32 x 32 input has a 1x1 stride-32 map
    # plus an extra stride-2 level of the neck (1x1 from 1x1)
    pytest.param({"num_feature_levels": 3}, id="extra_level", marks=pytest.mark.slow),
    pytest.param({"two_stage": True, "mixed_selection": True, "num_queries": 300}, id="mixed_selection_300",
                 marks=pytest.mark.slow),
    pytest.param({"two_stage": True, "mask_head": MaskHeadConfig(enabled=True, mask_dim=16)}, id="mask_head",
                 marks=pytest.mark.slow),
])
def test_public_api_predicts_images_whose_coarsest_map_is_1x1(overrides, tmp_path):
    detector = msdetr.load(random_checkpoint(tmp_path / "model.pt", eval_size=32, **overrides))
    pixels = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    dets = detector.predict(pixels, score=0.0)
    assert len(dets) > 0 and torch.isfinite(dets.boxes).all() and torch.isfinite(dets.scores).all()
    if detector.model.mask_head is not None:
        assert dets.masks.shape == (len(dets), 32, 32)


@pytest.mark.parametrize("size", [(1, 1), (5, 9), (32, 32)])
def test_detector_runs_inputs_down_to_one_pixel(size):
    """Every level 1x1 at the extreme (a stride-2 convolution keeps a 1x1 map 1x1)."""
    torch.manual_seed(0)
    model = build_model(tiny_model_config(num_feature_levels=4)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size), torch.zeros(1, *size, dtype=torch.bool))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.boxes).all()
