"""`train.time_limit_minutes`: the number of steps follows from the measured step time, the
schedule completes inside the budget, and the plan follows a machine that slows down."""

from __future__ import annotations

import time

import pytest
import torch

from msdetr.config.loader import load_config
from msdetr.engine.time_budget import FINISH_RESERVE_S, EvalCounter, TimeBudget, process_start_time
from msdetr.engine.trainer import Trainer
from msdetr.errors import MsdetrError
from support.tiny import tiny_run_config


def _drive(budget: TimeBudget, step_times: list[float], eval_batches: int = 10, eval_every: int = 0,
           steps_per_epoch: int = 1000) -> tuple[list, float]:
    """Feed `budget` one step per entry of `step_times` (seconds); returns (plans, clock)."""
    now, plans = budget.start, []
    for step, seconds in enumerate(step_times, start=1):
        now += seconds
        plan = budget.after_step(step, now, eval_batches, EvalCounter(step, steps_per_epoch, eval_every))
        if plan is not None:
            plans.append((step, plan))
    return plans, now


def test_plan_fills_the_budget_with_steps_and_the_final_evaluation():
    budget = TimeBudget(limit_s=100.0, start=1000.0, warmup_steps=5)
    plans, now = _drive(budget, [3.0] + [0.5] * 4)  # a slow first step, then 0.5 s per step
    assert [s for s, _ in plans] == [5]
    plan = plans[0][1]
    assert plan.step_s == pytest.approx(0.5)  # the first step is not in the clock
    eval_s = 10 * 0.6 * 0.5 + 2.0  # the estimate before an evaluation was timed
    assert plan.eval_s == pytest.approx(eval_s) and plan.evals_left == 1
    left = 100.0 - (now - 1000.0) - FINISH_RESERVE_S
    assert plan.total_steps == 5 + int((left - eval_s) / 0.5)
    # the plan's steps, one evaluation and the reserve end inside the budget
    end = now + (plan.total_steps - 5) * 0.5 + eval_s + FINISH_RESERVE_S
    assert end <= 1100.0 and end > 1100.0 - 0.5


def test_intermediate_evaluations_are_paid_for():
    budget = TimeBudget(limit_s=200.0, start=0.0, warmup_steps=5)
    no_evals = TimeBudget(limit_s=200.0, start=0.0, warmup_steps=5)
    with_evals = _drive(budget, [0.5] * 5, eval_every=1, steps_per_epoch=50)[0][0][1]
    without = _drive(no_evals, [0.5] * 5, eval_every=0, steps_per_epoch=50)[0][0][1]
    assert with_evals.evals_left > 1
    spent = with_evals.total_steps * 0.5 + with_evals.evals_left * with_evals.eval_s
    assert spent <= 200.0 - FINISH_RESERVE_S and with_evals.total_steps < without.total_steps


def test_eval_counter_counts_epoch_evaluations_and_the_final_one():
    counter = EvalCounter(done=10, steps_per_epoch=100, eval_every=2)
    assert counter(50) == 1  # only the final evaluation
    assert counter(200) == 1  # epoch 2 ends with the run: its evaluation is the final one
    assert counter(250) == 2  # after epoch 2, and the final one
    assert counter(450) == 3  # epochs 2 and 4
    assert EvalCounter(10, 100, 0)(1000) == 1


def test_a_machine_that_slows_down_moves_the_end_of_the_schedule_earlier():
    budget = TimeBudget(limit_s=100.0, start=0.0, warmup_steps=5, replan_every=10)
    plans, _ = _drive(budget, [0.5] * 15 + [2.0] * 16)
    first, later = plans[0][1], plans[-1][1]
    assert later.step_s == pytest.approx(2.0)  # the step time of the last window, not of the whole run
    assert later.total_steps < first.total_steps
    budget_fast = TimeBudget(limit_s=100.0, start=0.0, warmup_steps=5, replan_every=10)
    plans_fast, _ = _drive(budget_fast, [2.0] * 15 + [0.5] * 16)
    assert plans_fast[-1][1].total_steps > plans_fast[0][1].total_steps


def test_an_exhausted_budget_plans_no_more_steps():
    budget = TimeBudget(limit_s=1.0, start=0.0, warmup_steps=3)
    plans, _ = _drive(budget, [1.0] * 3)
    assert plans[0][1].total_steps == 3


def test_process_start_time_is_in_the_past():
    start = process_start_time()
    assert start <= time.time() and time.time() - start < 24 * 3600


@pytest.mark.slow
def test_trainer_stops_and_completes_the_schedule_when_the_budget_is_spent(tmp_path):
    """A budget that is already spent when training starts: the warm-up steps run, then the
    plan ends the run there, the schedule's total is the steps done and it still evaluates."""
    cfg = tiny_run_config(epochs=50, vis_images=0, time_limit_minutes=0.01)
    trainer = Trainer(cfg, tmp_path / "run", verbose=False, started_at=time.time() - 60.0)
    result = trainer.fit()
    assert result.steps == 5  # TimeBudget's warm-up
    assert trainer.schedule.total_steps == 5
    assert "bbox_mAP" in result.metrics
    log = (tmp_path / "run" / "train.log").read_text()
    assert "time budget 0.0 min" in log and "-> 5 steps in all" in log
    state = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)["train_state"]
    assert state["time_budget_steps"] == 5


def test_time_limit_must_be_positive():
    with pytest.raises(MsdetrError, match="train.time_limit_minutes"):
        load_config("tiny", ["train.time_limit_minutes=0"])
