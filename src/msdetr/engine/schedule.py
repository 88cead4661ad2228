"""Learning-rate schedule per optimizer step: warmup, then step drops or cosine decay."""

from __future__ import annotations

import math

import torch

from msdetr.config.schema import ScheduleConfig


def lr_factor(cfg: ScheduleConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier on the base learning rates for optimizer step `step` (0-based)."""
    if cfg.name == "step":
        epoch = step // max(steps_per_epoch, 1)
        factor = cfg.drop_factor ** sum(1 for e in cfg.drop_epochs if epoch >= e)
    else:
        progress = min(step / max(total_steps, 1), 1.0)
        factor = cfg.min_factor + (1 - cfg.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.warmup_steps and step < cfg.warmup_steps:
        alpha = step / cfg.warmup_steps
        factor *= cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * alpha
    return factor


class LrSchedule:
    """Sets each parameter group's lr to base_lr * `lr_factor(step)`.

    Call `apply(step)` before the optimizer step `step`; the state is just the base lrs
    (the step lives in the trainer's state), so resuming is exact.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int):
        self.optimizer, self.cfg = optimizer, cfg
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]

    def apply(self, step: int) -> float:
        """Set the lrs for `step`; returns the factor."""
        factor = lr_factor(self.cfg, step, self.steps_per_epoch, self.total_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        return factor

    def state_dict(self) -> dict:
        return {
            "base_lrs": list(self.base_lrs),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])
