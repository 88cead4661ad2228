"""Which aten operators a training step calls, per phase, and where two rows differ.

Builds the rows of `train_cost.py` (the same presets, overrides and random batches), runs
one warm-up step of each, then counts the aten operator calls of one step per phase
(forward, criterion, backward, optimizer) *by operator name* with torch.profiler. Prints,
per phase, the totals and the operators whose counts differ most between the last row and
the first (the reference). On a GPU each call is at least one kernel launch, so this shows
where a launch-bound step's extra launches come from, measured on any machine.

    python benchmarks/op_breakdown.py --preset msdetr_r50_300 --size 128 --batch-size 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_cost import OP_PHASES, ROWS, Trainee, build_trainee, make_batches  # noqa: E402

from msdetr.engine.amp import autocast  # noqa: E402
from msdetr.engine.device import resolve_device  # noqa: E402


def _names(profile) -> Counter:
    return Counter({e.key: e.count for e in profile.key_averages() if e.key.startswith("aten::")})


def op_names(trainee: Trainee, batch, device: torch.device) -> dict[str, Counter]:
    """Per phase, aten operator name -> number of calls in one training step."""
    cfg, counts = trainee.cfg, {}
    activities = [torch.profiler.ProfilerActivity.CPU]

    def profiled(phase, fn):
        with torch.profiler.profile(activities=activities) as profile:
            value = fn()
        counts[phase] = _names(profile)
        return value

    def forward():
        trainee.optimizer.zero_grad(set_to_none=True)
        with autocast(cfg.train.amp, device):
            return trainee.model(batch.images, batch.pixel_mask, targets=batch.targets)

    def optimizer_step():
        trainee.scaler.unscale_(trainee.optimizer)
        params = [p for g in trainee.optimizer.param_groups for p in g["params"] if p.grad is not None]
        max_norm = cfg.train.clip_max_norm if cfg.train.clip_max_norm > 0 else math.inf
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()

    output = profiled("forward", forward)
    result = profiled("criterion", lambda: trainee.criterion(output, batch.targets))
    profiled("backward", lambda: trainee.scaler.scale(result.total).backward())
    profiled("optimizer", optimizer_step)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--size", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--objects", type=int, default=7)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rows", default=None, help="comma-separated row indices (default: all)")
    parser.add_argument("--top", type=int, default=12, help="operators listed per phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-batches", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the per-operator counts here")
    args = parser.parse_args(argv)
    args.clock = "wall"  # (train_cost's strategy timer; unused here)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    trainees = [build_trainee(args, row, device) for row in rows]
    batch = make_batches(args, trainees[0].cfg, device)[0]
    counts = []
    for trainee in trainees:
        op_names(trainee, batch, device)  # warm-up (first-call allocations, optimizer state)
        counts.append(op_names(trainee, batch, device))
    reference, last = counts[0], counts[-1]
    totals = [{phase: sum(c[phase].values()) for phase in OP_PHASES} for c in counts]
    for trainee, total in zip(trainees, totals):
        print(f"{trainee.row.name}: " + ", ".join(f"{p} {n}" for p, n in total.items())
              + f", total {sum(total.values())}")
    if len(counts) > 1:
        ratio = sum(totals[-1].values()) / max(1, sum(totals[0].values()))
        print(f"total ratio {trainees[-1].row.name} / {trainees[0].row.name}: {ratio:.4f}")
        for phase in OP_PHASES:
            diff = last[phase].copy()
            diff.subtract(reference[phase])
            top = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[: args.top]
            print(f"\n{phase}: {totals[0][phase]} -> {totals[-1][phase]} ({totals[-1][phase] - totals[0][phase]:+d})")
            for name, delta in top:
                if delta:
                    print(f"  {delta:+6d}  {name}  ({reference[phase][name]} -> {last[phase][name]})")
    else:
        for phase in OP_PHASES:
            print(f"\n{phase}: {totals[0][phase]}")
            for name, n in reference[phase].most_common(args.top):
                print(f"  {n:6d}  {name}")
    if args.json:
        record = {"rows": [{"name": t.row.name, "ops": {p: dict(c[p]) for p in OP_PHASES}}
                           for t, c in zip(trainees, counts)]}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
