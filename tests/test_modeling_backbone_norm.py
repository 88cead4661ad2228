"""model.backbone.norm: frozen BatchNorm (pretrained weights) or trainable BatchNorm / GroupNorm (from scratch)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from msdetr.config.model import BackboneConfig
from msdetr.modeling.backbone import Backbone


def _norm_layers(backbone: Backbone) -> list[torch.nn.Module]:
    kinds = (FrozenBatchNorm2d, torch.nn.BatchNorm2d, torch.nn.GroupNorm)
    return [m for m in backbone.modules() if isinstance(m, kinds)]


@pytest.mark.parametrize(
    "norm, kind, trainable",
    [("frozen_bn", FrozenBatchNorm2d, False), ("batch_norm", torch.nn.BatchNorm2d, True),
     ("group_norm", torch.nn.GroupNorm, True)],
)
def test_norm_layers_and_their_gradients(norm, kind, trainable):
    backbone = Backbone(BackboneConfig(name="resnet18", freeze_at="none", norm=norm)).train()
    layers = _norm_layers(backbone)
    assert layers and all(isinstance(m, kind) for m in layers)
    images = torch.randn(2, 3, 64, 64)
    features = backbone(images, torch.zeros(2, 64, 64, dtype=torch.bool))
    assert [f.shape[1] for f, _ in features] == [128, 256, 512]
    sum(f.square().mean() for f, _ in features).backward()
    norm_params = [p for m in layers for p in m.parameters()]
    assert bool(norm_params) == trainable  # FrozenBatchNorm2d holds buffers only
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in norm_params)


def test_batch_norm_updates_running_statistics_in_training_only():
    backbone = Backbone(BackboneConfig(name="resnet18", freeze_at="none", norm="batch_norm"))
    bn = backbone.body.bn1
    before = bn.running_mean.clone()
    backbone.eval()(torch.randn(2, 3, 64, 64) + 3, torch.zeros(2, 64, 64, dtype=torch.bool))
    assert torch.equal(bn.running_mean, before)
    backbone.train()(torch.randn(2, 3, 64, 64) + 3, torch.zeros(2, 64, 64, dtype=torch.bool))
    assert not torch.equal(bn.running_mean, before)


def test_unknown_norm_is_a_config_error():
    from msdetr.config.loader import load_config
    from msdetr.errors import MsdetrError

    with pytest.raises(MsdetrError, match="norm"):
        load_config("tiny", ["model.backbone.norm=layer_norm"])
