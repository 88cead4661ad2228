"""One optimizer step: skipping non-finite losses, accumulation, the non-finite guard and EMA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from msdetr.data.collate import Batch
from msdetr.engine.amp import make_scaler
from msdetr.engine.ema import ModelEma
from msdetr.engine.nonfinite import NonFiniteGuard
from msdetr.engine.step import train_step
from msdetr.errors import MsdetrError
from msdetr.losses.criterion import LossResult


class LinearDetector(nn.Module):
    """Stands in for the detector: `forward(images, mask)` -> images.mean * weight."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))

    def forward(self, images, pixel_mask, targets=None):
        return images.mean(dim=(2, 3)) * self.weight


class SquaredCriterion(nn.Module):
    """total = mean(output^2) * scale, where a target's `scale` may be nan."""

    def forward(self, output, targets):
        scale = targets[0]["scale"]
        value = output.pow(2).mean() * scale
        return LossResult(total=value, terms={"squared": value})


def batch(scale: float, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(2, 3, 4, 4, generator=g),
        torch.zeros(2, 4, 4, dtype=torch.bool),
        [{"scale": torch.tensor(scale)}, {"scale": torch.tensor(scale)}],
    )


def run_step(model, batches, clip=0.0):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return train_step(
        model,
        SquaredCriterion(),
        batches,
        opt,
        make_scaler("none", torch.device("cpu")),
        torch.device("cpu"),
        "none",
        clip,
    )


def test_non_finite_loss_skips_the_step_and_keeps_weights():
    model = LinearDetector()
    result = run_step(model, [batch(1.0), batch(float("nan"), seed=1)])
    assert not result.ok and result.bad_terms == ["squared"]
    assert torch.equal(model.weight.detach(), torch.ones(3))
    assert all(p.grad is None for p in model.parameters())


def test_accumulation_equals_one_big_batch():
    a, b = batch(1.0, seed=0), batch(1.0, seed=1)
    accumulated, single = LinearDetector(), LinearDetector()
    result = run_step(accumulated, [a, b])
    both = Batch(torch.cat([a.images, b.images]), torch.cat([a.pixel_mask, b.pixel_mask]), a.targets * 2)
    run_step(single, [both])
    assert result.ok and math.isfinite(result.grad_norm)
    torch.testing.assert_close(accumulated.weight, single.weight)


def test_gradient_clipping_bounds_the_update():
    model = LinearDetector()
    result = run_step(model, [batch(100.0)], clip=0.01)
    assert result.grad_norm > 0.01
    assert (model.weight.detach() - 1).norm() == pytest.approx(0.1 * 0.01, rel=1e-4)


def test_guard_counts_and_stops_after_too_many_in_a_row():
    guard = NonFiniteGuard(max_in_a_row=3)
    for ok in (False, False, True, False, False):
        guard.record(ok, step=0)
    assert (guard.total, guard.in_a_row) == (4, 2)
    with pytest.raises(MsdetrError, match="3 steps in a row.*one_to_one.layer1.cls"):
        guard.record(False, step=7, bad_terms=["one_to_one.layer1.cls"])


def test_ema_follows_the_weights():
    model = LinearDetector()
    ema = ModelEma(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, torch.full((3,), 2.0))
    warm = ModelEma(model, decay=0.9, warmup_steps=10)
    assert warm.current_decay() == 0.0  # before the first update: take the weights as they are
    warm.update(model)
    assert 0 < warm.current_decay() < 0.9
