"""Exponential moving average of a model's weights (and a copy of its buffers)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEma:
    """Keeps `module`, a frozen copy of the model averaged after every optimizer step.

    decay(n) = decay * (1 - exp(-n / warmup_steps)) after n updates (plain `decay` when
    warmup_steps is 0), so early weights are forgotten quickly.
    """

    def __init__(self, model: nn.Module, decay: float, warmup_steps: int = 0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup_steps, self.updates = decay, warmup_steps, 0

    def current_decay(self) -> float:
        if not self.warmup_steps:
            return self.decay
        return self.decay * (1 - math.exp(-self.updates / self.warmup_steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = self.current_decay()
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = ema_state[name]
            if target.is_floating_point():
                target.lerp_(value.detach(), 1.0 - decay)
            else:
                target.copy_(value)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
