"""`msdetr compare`: train variants (`BASE+METHOD...`) side by side under one budget and report them."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import time
from pathlib import Path

from msdetr.config.overlays import METHOD_ORDER
from msdetr.errors import MsdetrError

EPILOG = f"""\
A variant is BASE[+METHOD...]: BASE a preset name or YAML file, METHOD one of
{', '.join(METHOD_ORDER)} (docs/compare.md). Every (variant, seed) trains in its own process
and folder OUT/runs/<variant>/seed<k>/; rerunning reuses the finished runs with the same config.
Written: OUT/compare.json, OUT/compare.md, OUT/compare_map.png, OUT/compare_losses.png.

examples:
  msdetr compare tiny_ddetr tiny_ddetr+ms_detr --seeds 0,1,2 --steps 300 --jobs 2 --out runs/cmp
  msdetr compare ddetr_pp_r50_300 ddetr_pp_r50_300+ms_detr --minutes 60 --device cuda --jobs 2 \\
      --set data.root=data/coco --out runs/cmp_r50
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="train several variants (BASE+METHOD...) with the same data, budget and seeds, and compare them",
        description="Train every (variant, seed) with the same data, step or time budget and seeds, JOBS at a "
        "time (side by side on one GPU too), and write a comparison: AP table with mean ± std over seeds, "
        "gains over the first variant, step time and peak memory ratios, mAP and loss plots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("variants", nargs="+", metavar="VARIANT", help="BASE[+METHOD...]; the first is the reference")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="optimizer steps per run (the lr schedule is fitted to them)")
    budget.add_argument("--minutes", type=float, help="wall-time budget per run (train.time_limit_minutes)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each its own process (default: 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: the cores divided by --jobs)")
    p.add_argument("--init-backbone", metavar="CKPT", help="start every run's backbone from CKPT (msdetr train)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every variant (repeatable), e.g. --set data.root=data/coco")
    p.add_argument("--out", required=True, metavar="DIR", help="study folder (run folders, reports, plots)")
    p.add_argument("--report-every", type=float, default=30.0, metavar="S",
                   help="seconds between progress lines (default: 30)")
    p.set_defaults(func=run)


def _machine(device: str) -> str:
    import torch

    text = f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}"
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    return text


def _data_note(runs) -> str | None:
    """A warning when the variants do not train on the same data (masks aside)."""
    data = {}
    for plan in runs:
        section = dict(plan.request["config"]["data"])
        section.pop("masks", None)
        data.setdefault(repr(sorted(section.items())), []).append(plan.variant)
    if len(data) > 1:
        groups = "; ".join(", ".join(sorted(set(v))) for v in data.values())
        return f"[compare] warning: the variants do not share their data settings ({groups})"
    return None


def command_line(args: argparse.Namespace) -> str:
    """The study as one `msdetr compare` command (whoever called it: the CLI or a script)."""
    parts = ["msdetr", "compare", *args.variants, "--seeds", args.seeds]
    parts += ["--steps", str(args.steps)] if args.steps is not None else ["--minutes", str(args.minutes)]
    parts += ["--jobs", str(args.jobs), "--device", args.device]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.init_backbone:
        parts += ["--init-backbone", args.init_backbone]
    for item in args.overrides:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in [*parts, "--out", args.out])


def run(args: argparse.Namespace) -> int:
    from msdetr.compare.plan import Budget, parse_seeds, plan_runs
    from msdetr.compare.plots import write_plots
    from msdetr.compare.report import build_result, write_outputs
    from msdetr.compare.runner import run_all

    if args.jobs < 1:
        raise MsdetrError(f"--jobs: got {args.jobs}; it must be >= 1")
    budget = Budget(steps=args.steps, minutes=args.minutes)
    seeds = parse_seeds(args.seeds)
    threads = args.threads
    if threads is None:  # the cores shared between the runs (data loading and CPU-side work on a GPU too)
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
    out = Path(args.out)
    runs = plan_runs(args.variants, seeds, budget, out, args.overrides, args.device, threads, args.init_backbone)
    note = _data_note(runs)
    if note:
        print(note, flush=True)
    print(f"[compare] {len(runs)} runs ({len(args.variants)} variants x {len(seeds)} seeds), "
          f"{args.jobs} at a time, into {out}", flush=True)
    start = time.time()
    outcomes = run_all(runs, args.jobs, log=lambda line: print(line, flush=True), report_every_s=args.report_every)
    header = {
        "command": command_line(args),
        "machine": _machine(args.device),
        "device": args.device,
        "budget": budget.as_dict(),
        "seeds": seeds,
        "jobs": args.jobs,
        "threads_per_run": threads,
        "overrides": args.overrides,
        "init_backbone": args.init_backbone,
        "wall_s": time.time() - start,
    }
    result = build_result(outcomes, header)
    written = write_outputs(result, out) + write_plots(result, out)
    print((out / "compare.md").read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in written))
    failed = [o.error for o in outcomes if o.error]
    if failed:
        raise MsdetrError(f"{len(failed)} of {len(outcomes)} runs failed; first: {failed[0]}")
    return 0
