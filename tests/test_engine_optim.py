"""Parameter groups, learning-rate scaling to the total batch, and the schedules."""

from __future__ import annotations

import math

import pytest
import torch

from msdetr.config.schema import OptimizerConfig, ScheduleConfig, TrainConfig
from msdetr.engine.optim import build_optimizer, lr_scale, parameter_groups
from msdetr.engine.schedule import LrSchedule, lr_factor
from msdetr.modeling.build import build_model
from support.tiny import tiny_run_config


def test_parameter_groups_follow_the_official_recipe(tmp_path):
    model = build_model(tiny_run_config().model)
    cfg = TrainConfig(optimizer=OptimizerConfig(lr=2e-4, lr_backbone=2e-5, lr_linear_proj_mult=0.1))
    groups = {g["name"]: g for g in parameter_groups(model, cfg)}
    assert {n: g["lr"] for n, g in groups.items()} == pytest.approx(
        {"default": 2e-4, "backbone": 2e-5, "linear_proj": 2e-5}
    )
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("backbone.") for p in groups["backbone"]["params"])
    assert all("sampling_offsets" in names[id(p)] for p in groups["linear_proj"]["params"])
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(grouped) == sorted(trainable)  # every trainable parameter exactly once
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("backbone.body.conv1.", "backbone.body.layer1.")) for n in frozen)


@pytest.mark.parametrize("rule, expected", [("linear", 0.25), ("sqrt", 0.5), ("none", 1.0)])
def test_lr_scaling_rule(rule, expected):
    cfg = TrainConfig(batch_size=2, accumulate_steps=1, reference_batch_size=16, lr_scaling=rule)
    assert lr_scale(cfg, world_size=2) == pytest.approx(expected)  # 2 x 2 x 1 = 4 of 16
    cfg.accumulate_steps = 4
    assert lr_scale(cfg, world_size=2) == pytest.approx(1.0)  # 16 of 16


def test_optimizer_lrs_are_scaled(tmp_path):
    model = build_model(tiny_run_config().model)
    cfg = TrainConfig(batch_size=2, reference_batch_size=16, optimizer=OptimizerConfig(lr=2e-4))
    opt = build_optimizer(model, cfg, world_size=1)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * 2 / 16)


def test_step_schedule_drops_at_epoch_with_warmup():
    cfg = ScheduleConfig(name="step", drop_epochs=[11], drop_factor=0.1, warmup_steps=10, warmup_start_factor=0.01)
    assert lr_factor(cfg, 0, steps_per_epoch=100, total_steps=1200) == pytest.approx(0.01)
    assert lr_factor(cfg, 5, 100, 1200) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(cfg, 1099, 100, 1200) == pytest.approx(1.0)
    assert lr_factor(cfg, 1100, 100, 1200) == pytest.approx(0.1)


def test_cosine_schedule_endpoints():
    cfg = ScheduleConfig(name="cosine", min_factor=0.05)
    assert lr_factor(cfg, 0, 10, 100) == pytest.approx(1.0)
    assert lr_factor(cfg, 50, 10, 100) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(cfg, 100, 10, 100) == pytest.approx(0.05)


def test_lr_schedule_sets_group_lrs_and_round_trips():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW([{"params": params[:1], "lr": 1.0}, {"params": params[1:], "lr": 0.1}])
    schedule = LrSchedule(opt, ScheduleConfig(name="cosine", min_factor=0.0), steps_per_epoch=4, total_steps=8)
    schedule.apply(4)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])
    other = LrSchedule(opt, ScheduleConfig(name="cosine", min_factor=0.0), 4, 8)
    other.load_state_dict(schedule.state_dict())
    other.apply(8)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert not math.isnan(opt.param_groups[0]["lr"])
