"""Tiny detector configs shared by tests (random weights, CPU-fast)."""

from __future__ import annotations

import torch

from msdetr.config.model import BackboneConfig, MixedSupervisionConfig, ModelConfig


def tiny_model_config(**overrides) -> ModelConfig:
    """resnet18, hidden 32, 1 encoder + 2 decoder layers, 7 queries, 5 classes, 3 levels."""
    ms = overrides.pop("mixed_supervision", MixedSupervisionConfig())
    cfg = ModelConfig(
        num_classes=5, hidden_dim=32, nheads=4, enc_layers=1, dec_layers=2, dim_feedforward=64, dropout=0.0,
        num_queries=7, num_feature_levels=3, enc_n_points=2, dec_n_points=2,
        backbone=BackboneConfig(name="resnet18", freeze_at="layer1"), mixed_supervision=ms,
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def padded_batch(sizes: list[tuple[int, int]], seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Random images of the given (h, w), batched with zero padding. Returns (images, batch, pixel_mask)."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, h, w, generator=g) for h, w in sizes]
    hmax, wmax = max(h for h, _ in sizes), max(w for _, w in sizes)
    batch = torch.zeros(len(sizes), 3, hmax, wmax)
    mask = torch.ones(len(sizes), hmax, wmax, dtype=torch.bool)
    for i, im in enumerate(images):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
        mask[i, : im.shape[1], : im.shape[2]] = False
    return images, batch, mask
