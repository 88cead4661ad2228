"""Run the planned (variant, seed) runs, `jobs` worker processes at a time, with progress and an ETA.

A run folder whose `result.json` holds the same request is reused; any other content of the
folder (an interrupted or differently configured run) is removed and the run trained again.
Each run is its own process (`python -m msdetr.compare.worker`), so its peak memory is its own;
its output goes to `worker.log` in its folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msdetr.compare.plan import RunPlan
from msdetr.compare.worker import PROGRESS_FILE, REQUEST_FILE, RESULT_FILE, write_json

LOG_FILE = "worker.log"


@dataclass
class RunOutcome:
    plan: RunPlan
    result: dict[str, Any] | None  # the worker's result.json; None when the run failed
    reused: bool = False
    error: str | None = None


def finished_result(plan: RunPlan) -> dict[str, Any] | None:
    """The run's result when its folder holds a finished run of the same request, else None."""
    path = plan.run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return result if result.get("request") == plan.request else None


def _format_s(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Fraction of the study done (finished runs count 1, running runs their share of the budget),
    and an ETA from the elapsed time of the runs trained in this invocation."""

    def __init__(self, runs: list[RunPlan], log: Callable[[str], None]):
        self.runs, self.log = runs, log
        self.state: dict[Path, str] = {r.run_dir: "waiting" for r in runs}
        self.start = time.time()
        self.lock = threading.Lock()

    def set(self, plan: RunPlan, state: str) -> None:
        with self.lock:
            self.state[plan.run_dir] = state

    def _fraction(self, plan: RunPlan) -> float:
        state = self.state[plan.run_dir]
        if state in ("done", "failed"):
            return 1.0
        if state != "running":
            return 0.0
        try:
            progress = json.loads((plan.run_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return 0.0
        budget = plan.request["budget"]
        if "minutes" in budget:
            return min(progress["elapsed_s"] / (60.0 * budget["minutes"]), 0.99)
        return min(progress["step"] / max(budget["steps"], 1), 0.99)

    def line(self) -> str:
        with self.lock:
            todo = [r for r in self.runs if self.state[r.run_dir] != "reused"]
            counts = {s: sum(1 for v in self.state.values() if v == s) for s in ("done", "reused", "running", "failed")}
            fraction = sum(self._fraction(r) for r in todo) / len(todo) if todo else 1.0
        elapsed = time.time() - self.start
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.005 else None
        parts = [f"{100 * fraction:.0f}%", f"runs {counts['done'] + counts['reused']}/{len(self.runs)} done"]
        if counts["reused"]:
            parts[-1] += f" ({counts['reused']} reused)"
        if counts["running"]:
            parts.append(f"{counts['running']} running")
        if counts["failed"]:
            parts.append(f"{counts['failed']} failed")
        parts.append(f"elapsed {_format_s(elapsed)}")
        parts.append(f"ETA {_format_s(eta)}" if eta is not None else "ETA --")
        return "[compare] " + " | ".join(parts)


def _train(plan: RunPlan, env: dict[str, str]) -> RunOutcome:
    if plan.run_dir.exists():
        shutil.rmtree(plan.run_dir)
    plan.run_dir.mkdir(parents=True)
    request_path = plan.run_dir / REQUEST_FILE
    write_json(request_path, plan.request)
    with (plan.run_dir / LOG_FILE).open("w") as log:
        done = subprocess.run([sys.executable, "-m", "msdetr.compare.worker", str(request_path)],
                              stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    result = finished_result(plan)
    if done.returncode != 0 or result is None:
        lines = (plan.run_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no output"
        return RunOutcome(plan, None, error=f"{plan.variant} seed {plan.seed} failed (exit {done.returncode}): "
                          f"{last}; see {plan.run_dir / LOG_FILE}")
    return RunOutcome(plan, result)


def run_all(runs: list[RunPlan], jobs: int = 1, log: Callable[[str], None] = print,
            report_every_s: float = 30.0) -> list[RunOutcome]:
    """Train (or reuse) every run, `jobs` at a time; outcomes in the order of `runs`."""
    progress = Progress(runs, log)
    outcomes: dict[Path, RunOutcome] = {}
    pending = []
    for plan in runs:
        result = finished_result(plan)
        if result is not None:
            outcomes[plan.run_dir] = RunOutcome(plan, result, reused=True)
            progress.set(plan, "reused")
        else:
            pending.append(plan)
    if len(pending) < len(runs):
        log(f"[compare] reusing {len(runs) - len(pending)} finished run(s)")
    env = os.environ.copy()
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(report_every_s):
            log(progress.line())

    def one(plan: RunPlan) -> RunOutcome:
        progress.set(plan, "running")
        log(f"[compare] start {plan.variant} seed {plan.seed}")
        outcome = _train(plan, env)
        progress.set(plan, "failed" if outcome.error else "done")
        if outcome.error:
            log(f"[compare] FAILED {outcome.error}")
        else:
            log(f"[compare] done {plan.variant} seed {plan.seed} in {_format_s(outcome.result['wall_s'])}; "
                + progress.line().removeprefix("[compare] "))
        return outcome

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for outcome in pool.map(one, pending):
                outcomes[outcome.plan.run_dir] = outcome
    finally:
        stop.set()
    return [outcomes[plan.run_dir] for plan in runs]
