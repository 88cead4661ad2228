"""`train.time_limit_minutes`: fit a whole run, learning-rate schedule included, into a wall-time budget.

The budget counts from the start of the process (Python start-up, data generation and the
final evaluation included). After a few warm-up optimizer steps (the first ones are slow:
allocator, caches, data workers) the measured time per step sets the number of steps, so
that training, the evaluations still due and the end of the run (checkpoints, curves,
drawings) finish inside the budget. The plan is revised every `replan_every` steps from the
step time of the last `replan_every` steps, so a machine that slows down (or speeds up)
mid-run moves the end of the schedule instead of overrunning; the cosine / step schedule
follows the new total. Between revisions, a step that would leave too little time for the
final evaluation ends training early (the trainer's last resort). What cannot be foreseen: a
machine that becomes much slower during the final evaluation.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

# Seconds kept free at the end for what is not measured: saving the checkpoints, the loss and
# mAP plots, the validation drawings and the interpreter's exit.
FINISH_RESERVE_S = 6.0
# The estimate of an evaluation before one has been timed: validation batches x this many
# training steps (a no-grad forward pass is a fraction of a step; COCO scoring adds a little).
EVAL_STEPS_PER_BATCH = 0.6
EVAL_FIXED_S = 2.0


def process_start_time() -> float:
    """Wall-clock time (`time.time()` scale) at which this process started; on systems without
    /proc, the time of the first call."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / ticks  # field 22 of stat(5), counted after the name
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        start = boot + started_after_boot
        if start <= time.time():
            return start
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        pass
    global _FALLBACK_START
    if _FALLBACK_START is None:
        _FALLBACK_START = time.time()
    return _FALLBACK_START


_FALLBACK_START: float | None = None


@dataclass
class BudgetPlan:
    """One revision of the plan: total optimizer steps and the figures it came from."""

    total_steps: int
    step_s: float
    eval_s: float
    evals_left: int
    seconds_left: float


class TimeBudget:
    """Decides the number of optimizer steps of a run from its wall-time budget.

    limit_s: the budget in seconds, counted from `start` (a `time.time()` value).
    warmup_steps: optimizer steps before the first plan; the step time is measured over the
        steps after the first of them.
    replan_every: revise the plan every this many steps after the first plan.
    """

    def __init__(self, limit_s: float, start: float, warmup_steps: int = 5, replan_every: int = 10):
        self.limit_s = float(limit_s)
        self.start = float(start)
        self.warmup_steps = max(2, int(warmup_steps))
        self.replan_every = max(1, int(replan_every))
        self._clock_step: int | None = None  # step at which the step-time clock started
        self._clock_time = 0.0
        self._paused_s = 0.0  # evaluation time inside the clocked span (not training steps)
        self._window: tuple[int, float, float] | None = None  # (step, time, paused) at the last plan
        self.eval_s: float | None = None  # the last evaluation's measured duration
        self.plan: BudgetPlan | None = None

    @property
    def deadline(self) -> float:
        return self.start + self.limit_s

    def time_left(self, now: float | None = None) -> float:
        return self.deadline - (time.time() if now is None else now)

    def note_eval(self, seconds: float) -> None:
        """An evaluation took `seconds`; it is not training time and sets later estimates."""
        self.eval_s = float(seconds)
        if self._clock_step is not None:
            self._paused_s += float(seconds)

    def step_time(self, step: int, now: float) -> float | None:
        """Seconds per optimizer step over the steps since the last plan (since the clock
        started before the first plan), evaluations left out; None before a step was timed."""
        if self._clock_step is None:
            return None
        since_step, since_time, since_paused = self._window or (self._clock_step, self._clock_time, 0.0)
        if step - since_step < 1:
            return None
        return max(now - since_time - (self._paused_s - since_paused), 1e-6) / (step - since_step)

    def after_step(
        self, step: int, now: float, eval_batches: int, evals_for: EvalCounter
    ) -> BudgetPlan | None:
        """Call after optimizer step `step` (1-based count of steps done). Returns a new plan
        when one is due (after warm-up, then every `replan_every` steps), else None.

        eval_batches: validation batches of one evaluation (for the estimate before one ran).
        evals_for: evaluations still to run when the run ends after a given total of steps.
        """
        if self._clock_step is None:
            if step >= 1:  # the first step's compile-like overheads are left out of the clock
                self._clock_step, self._clock_time = step, now
            return None
        if step < self.warmup_steps:
            return None
        due = self.plan is None or (step - self._clock_step) % self.replan_every == 0
        if not due:
            return None
        step_s = self.step_time(step, now)
        if step_s is None:
            return None
        eval_s = self.eval_s if self.eval_s is not None else eval_batches * EVAL_STEPS_PER_BATCH * step_s + EVAL_FIXED_S
        seconds_left = self.time_left(now) - FINISH_RESERVE_S
        # Steps n with n * step_s + evals_for(step + n) * eval_s <= seconds_left (evals grow with n).
        steps = max(int(seconds_left / step_s), 0)
        for _ in range(8):
            evals = evals_for(step + steps)
            fitting = max(int(math.floor((seconds_left - evals * eval_s) / step_s)), 0)
            if fitting >= steps:
                break
            steps = fitting
        self.plan = BudgetPlan(step + steps, step_s, eval_s, evals_for(step + steps), seconds_left)
        self._window = (step, now, self._paused_s)
        return self.plan


class EvalCounter:
    """Evaluations a run does between step `done` and its end at `total` steps: one after every
    `eval_every`-th completed epoch (0: none in between) and always one at the end."""

    def __init__(self, done: int, steps_per_epoch: int, eval_every: int):
        self.done, self.steps_per_epoch, self.eval_every = done, steps_per_epoch, eval_every

    def __call__(self, total: int) -> int:
        count = 1
        if self.eval_every > 0:
            first = self.done // self.steps_per_epoch + 1
            last = (total - 1) // self.steps_per_epoch  # an evaluation at `total` itself is the final one
            count += sum(1 for epoch in range(first, last + 1) if epoch % self.eval_every == 0)
        return count
