"""The optimizer: AdamW over three parameter groups, with learning rates scaled to the batch.

Groups (official Deformable DETR recipe):
  - "backbone": names starting with `backbone.`, at `lr_backbone` (skipped when 0);
  - "linear_proj": names containing one of `linear_proj_names`, at lr * lr_linear_proj_mult;
  - "default": everything else that requires a gradient, at `lr`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from msdetr.config.schema import TrainConfig


def lr_scale(cfg: TrainConfig, world_size: int) -> float:
    """Factor on every learning rate for the actual total batch (see `msdetr.config.schema`)."""
    total = total_batch_size(cfg, world_size)
    ratio = total / cfg.reference_batch_size
    if cfg.lr_scaling == "linear":
        return ratio
    if cfg.lr_scaling == "sqrt":
        return math.sqrt(ratio)
    return 1.0


def total_batch_size(cfg: TrainConfig, world_size: int) -> int:
    """Images per optimizer step over all processes."""
    return cfg.batch_size * world_size * cfg.accumulate_steps


def parameter_groups(model: nn.Module, cfg: TrainConfig, scale: float = 1.0) -> list[dict]:
    """Named parameter groups with their (scaled) learning rates; frozen parameters left out."""
    opt = cfg.optimizer
    groups: dict[str, list[nn.Parameter]] = {"default": [], "backbone": [], "linear_proj": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("backbone."):
            groups["backbone"].append(param)
        elif any(key in name for key in opt.linear_proj_names):
            groups["linear_proj"].append(param)
        else:
            groups["default"].append(param)
    lrs = {"default": opt.lr, "backbone": opt.lr_backbone, "linear_proj": opt.lr * opt.lr_linear_proj_mult}
    out = []
    for name, params in groups.items():
        if not params:
            continue
        if name == "backbone" and opt.lr_backbone == 0:
            for p in params:
                p.requires_grad_(False)
            continue
        out.append({"name": name, "params": params, "lr": lrs[name] * scale})
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig, world_size: int = 1) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`, learning rates scaled by `lr_scale`.

    Uses torch's fused implementation where the device has one (CPU and CUDA; several times
    faster than the per-tensor loop on the CPU), else the multi-tensor one.
    """
    groups = parameter_groups(model, cfg, lr_scale(cfg, world_size))
    opt = cfg.optimizer
    kwargs = {"lr": opt.lr, "betas": tuple(opt.betas), "weight_decay": opt.weight_decay}
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
        return torch.optim.AdamW(groups, foreach=True, **kwargs)
