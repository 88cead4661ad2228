"""What mixed supervision costs: training-step time and peak memory, baseline vs MS-DETR.

Every row is a training configuration: a preset plus dotted overrides (`--set` syntax).
All rows train on the same random batches (random weights, `--objects` random boxes per
image) and are timed *interleaved in one process*: after `--warmup` steps each, every
round runs one step of each row, in alternating order, for `--steps` rounds. Reported:
the median step time with its inter-quartile range, the ratio to the first row (median of
the per-round paired ratios, with its IQR), and the share of the step spent computing the
assignments (Hungarian on every layer, top-K, encoder proposals).

The timed step is the library's own `msdetr.engine.step.train_step` (forward under the
configured autocast, assignment, loss, backward, gradient clipping, AdamW). `--phases`
instead runs an instrumented copy of it that synchronizes the device between forward,
assignment, loss, backward and optimizer, and reports each phase.

Peak memory:
  * CUDA: per timed step, `torch.cuda.max_memory_allocated` minus what was allocated
    before the step, plus the row's own parameters, buffers and optimizer state: the
    tensor memory a process training only this row would hold at its peak (without the
    CUDA context and the caching allocator's reserve).
  * CPU: each row is run again alone in a fresh subprocess (`--memory-runs` times,
    alternating rows). Once its model, optimizer and batches exist, the RSS high-water
    mark is reset (Linux /proc/self/clear_refs) and `--memory-steps` training steps run;
    the table gives the peak resident set size during those steps (VmHWM) and its growth
    over the RSS before them. tracemalloc does not see torch's allocations, and RSS is
    what the operating system charges (and what runs out).

Examples (see docs/benchmarks_training.md for the measured tables):

    python benchmarks/train_cost.py --preset tiny
    python benchmarks/train_cost.py --preset msdetr_r50_300 --size 384 --batch-size 1 --steps 12
    python benchmarks/train_cost.py --preset msdetr_r50_300 --device cuda --amp bf16 --warmup 10 --steps 40
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Spread,
    Stopwatch,
    command_line,
    current_rss_bytes,
    machine_description,
    markdown_table,
    parse_size,
    peak_rss_bytes,
    random_batch,
    reset_peak_rss,
)

from msdetr.config.loader import load_config  # noqa: E402
from msdetr.config.schema import Config  # noqa: E402
from msdetr.data.collate import Batch  # noqa: E402
from msdetr.data.synthetic import CATEGORIES  # noqa: E402
from msdetr.engine.amp import autocast, check_amp, make_scaler  # noqa: E402
from msdetr.engine.compile import compile_criterion, compile_model  # noqa: E402
from msdetr.engine.device import resolve_device  # noqa: E402
from msdetr.engine.optim import build_optimizer  # noqa: E402
from msdetr.engine.step import train_step  # noqa: E402
from msdetr.losses import Criterion, build_criterion  # noqa: E402
from msdetr.modeling.build import build_model  # noqa: E402


@dataclass
class CostRow:
    """One training configuration of the comparison: `overrides` apply on top of the preset."""

    name: str
    overrides: list[str] = field(default_factory=list)


# Later strategies (H-DETR, Group DETR) add rows here; the first row is the reference.
ROWS = [
    CostRow(
        "one-to-one (baseline)", ["supervision.strategy=one_to_one", "model.mixed_supervision.enabled=false"]
    ),
    CostRow("MS-DETR", ["supervision.strategy=mixed", "model.mixed_supervision.enabled=true"]),
    # paper Table 3: 1500 extra queries next to 300 (run on a 300-query preset, images large
    # enough for 1800 two-stage proposals)
    *[
        CostRow(f"{prefix}{method}", [*base, *extra])
        for prefix, base in [
            ("", ["supervision.strategy=one_to_one", "model.mixed_supervision.enabled=false"]),
            ("MS-DETR + ", ["supervision.strategy=mixed", "model.mixed_supervision.enabled=true"]),
        ]
        for method, extra in [
            ("H-DETR", ["model.hybrid.num_queries=1500", "supervision.hybrid.enabled=true"]),
            ("Group DETR", ["model.group.num_groups=6", "supervision.group.enabled=true"]),
        ]
    ],
    # Align-DETR / DAC-DETR (issue 17): the IoU-aware loss with mixed matching; the divide-and-conquer
    # branch (a second decoder pass without self-attention), alone and with MS-DETR.
    CostRow(
        "Align-DETR",
        ["supervision.strategy=one_to_one", "model.mixed_supervision.enabled=false",
         "supervision.many_to_one.enabled=true", "supervision.classification_loss.one_to_one=iou_aware"],
    ),
    CostRow(
        "MS-DETR + Align-DETR",
        ["supervision.strategy=mixed", "model.mixed_supervision.enabled=true",
         "supervision.many_to_one.enabled=true", "supervision.classification_loss.one_to_one=iou_aware",
         "supervision.classification_loss.one_to_many=iou_aware"],
    ),
    CostRow(
        "DAC-DETR",
        ["supervision.strategy=one_to_one", "model.mixed_supervision.enabled=false", "model.dac.enabled=true",
         "supervision.dac.enabled=true", "supervision.classification_loss.dac=iou_aware"],
    ),
    CostRow(
        "MS-DETR + DAC-DETR",
        ["supervision.strategy=mixed", "model.mixed_supervision.enabled=true", "model.dac.enabled=true",
         "model.dac.first_layer_self_attention=false", "supervision.dac.enabled=true",
         "supervision.classification_loss.dac=iou_aware"],
    ),
    # Mr. DETR (issue 24): two more decoder passes (instructive route with its own proposals, sep route) and a
    # second encoder head, alone and with MS-DETR. Its instructive route takes learned content queries:
    # mixed query selection is on in these rows (a content embedding in place of a split: no cost difference)
    *[
        CostRow(f"{prefix}Mr. DETR", [*base, "model.mixed_selection=true", "model.mr_detr.enabled=true",
                                      "supervision.mr_detr.enabled=true"])
        for prefix, base in [
            ("", ["supervision.strategy=one_to_one", "model.mixed_supervision.enabled=false"]),
            ("MS-DETR + ", ["supervision.strategy=mixed", "model.mixed_supervision.enabled=true"]),
        ]
    ],
]

PHASES = ("forward", "assign", "loss", "backward", "optimizer")


class TimedStrategy:
    """Wraps a criterion's supervision strategy and records the wall time of its `plan`
    (all assignments of a step), synchronizing the device around it."""

    def __init__(self, inner, device: torch.device, clock: str) -> None:
        self.inner = inner
        self.device = device
        self.clock = clock
        self.seconds = 0.0

    def plan(self, output, targets):
        with Stopwatch(self.device, self.clock) as watch:
            tasks = self.inner.plan(output, targets)
        self.seconds += watch.seconds
        return tasks


@dataclass
class Trainee:
    """A row made concrete: its model, criterion, optimizer and the step timings it collected."""

    row: CostRow
    cfg: Config
    model: torch.nn.Module
    criterion: Criterion
    timed: TimedStrategy
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step_seconds: list[float] = field(default_factory=list)
    assign_seconds: list[float] = field(default_factory=list)
    phase_seconds: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    peak_bytes: list[int] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)


def row_config(args: argparse.Namespace, row: CostRow) -> Config:
    """The preset + the row's overrides + the command line's `--set`, with random backbone weights."""
    overrides = [*row.overrides, *args.set, "model.backbone.weights=null"]
    cfg = load_config(args.preset, overrides)
    synthetic = cfg.data.root is None and cfg.data.train.annotations is None
    num_classes = args.num_classes or (len(CATEGORIES) if synthetic else cfg.model.num_classes)
    train = replace(cfg.train, amp=args.amp, batch_size=args.batch_size or cfg.train.batch_size)
    return replace(cfg, model=replace(cfg.model, num_classes=num_classes), train=train)


def build_trainee(args: argparse.Namespace, row: CostRow, device: torch.device) -> Trainee:
    cfg = row_config(args, row)
    torch.manual_seed(args.seed)
    model = build_model(cfg.model).to(device).train()
    criterion = build_criterion(cfg.supervision, cfg.model.num_classes)
    if cfg.train.compile:  # --set train.compile=true: as `msdetr train` does
        model = compile_model(model, cfg.train.compile_backend)
        compile_criterion(criterion, cfg.train.compile_backend)
    timed = TimedStrategy(criterion.strategy, device, args.clock)
    criterion.strategy = timed
    optimizer = build_optimizer(model, cfg.train)
    return Trainee(row, cfg, model, criterion, timed, optimizer, make_scaler(args.amp, device))


def phased_step(trainee: Trainee, batch: Batch, device: torch.device, clock: str) -> dict[str, float]:
    """`train_step` for one micro-batch, with the device synchronized between the phases."""
    cfg, times = trainee.cfg, {}
    with Stopwatch(device, clock) as watch:
        trainee.optimizer.zero_grad(set_to_none=True)
        with autocast(cfg.train.amp, device):
            output = trainee.model(batch.images, batch.pixel_mask, targets=batch.targets)
    times["forward"] = watch.seconds
    before = trainee.timed.seconds
    with Stopwatch(device, clock) as watch:
        result = trainee.criterion(output, batch.targets)
    times["assign"] = trainee.timed.seconds - before
    times["loss"] = watch.seconds - times["assign"]
    with Stopwatch(device, clock) as watch:
        trainee.scaler.scale(result.total).backward()
    times["backward"] = watch.seconds
    with Stopwatch(device, clock) as watch:
        trainee.scaler.unscale_(trainee.optimizer)
        params = [p for g in trainee.optimizer.param_groups for p in g["params"] if p.grad is not None]
        max_norm = cfg.train.clip_max_norm if cfg.train.clip_max_norm > 0 else math.inf
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
    times["optimizer"] = watch.seconds
    return times


class OpCounter:
    """Number of aten operator calls in a block (nested calls included), from torch.profiler.

    On a GPU each call is at least one kernel launch, so this shows where a launch-bound
    step spends its time even when measured on the CPU."""

    def __enter__(self) -> OpCounter:
        self._profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self._profile.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._profile.__exit__(*exc)
        self.count = sum(e.count for e in self._profile.key_averages() if e.key.startswith("aten::"))


OP_PHASES = ("forward", "criterion", "backward", "optimizer")


def count_ops(trainee: Trainee, batch: Batch, device: torch.device) -> dict[str, int]:
    """Aten operator calls per phase of one training step (forward, criterion = assignment + loss,
    backward, optimizer with clipping)."""
    cfg, counts = trainee.cfg, {}
    with OpCounter() as counter:
        trainee.optimizer.zero_grad(set_to_none=True)
        with autocast(cfg.train.amp, device):
            output = trainee.model(batch.images, batch.pixel_mask, targets=batch.targets)
    counts["forward"] = counter.count
    with OpCounter() as counter:
        result = trainee.criterion(output, batch.targets)
    counts["criterion"] = counter.count
    with OpCounter() as counter:
        trainee.scaler.scale(result.total).backward()
    counts["backward"] = counter.count
    with OpCounter() as counter:
        trainee.scaler.unscale_(trainee.optimizer)
        params = [p for g in trainee.optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(
            params, cfg.train.clip_max_norm if cfg.train.clip_max_norm > 0 else math.inf
        )
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
    counts["optimizer"] = counter.count
    return counts


def static_bytes(trainee: Trainee) -> int:
    """Bytes of the row's parameters, buffers and optimizer state (what persists between steps)."""
    tensors = [*trainee.model.parameters(), *trainee.model.buffers()]
    tensors += [v for state in trainee.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)


def run_step(
    trainee: Trainee, batch: Batch, device: torch.device, args: argparse.Namespace, record: bool
) -> None:
    """One training step of `trainee`; when `record`, keep its timings (and CUDA peak memory)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        allocated_before = torch.cuda.memory_allocated(device)
    assign_before = trainee.timed.seconds
    if args.phases:
        phases = phased_step(trainee, batch, device, args.clock)
        seconds = sum(phases.values())
    else:
        with Stopwatch(device, args.clock) as watch:
            train_step(
                trainee.model,
                trainee.criterion,
                [batch],
                trainee.optimizer,
                trainee.scaler,
                device,
                trainee.cfg.train.amp,
                trainee.cfg.train.clip_max_norm,
            )
        seconds, phases = watch.seconds, {}
    if not record:
        return
    trainee.step_seconds.append(seconds)
    trainee.assign_seconds.append(trainee.timed.seconds - assign_before)
    for name, value in phases.items():
        trainee.phase_seconds[name].append(value)
    if device.type == "cuda":
        step_peak = torch.cuda.max_memory_allocated(device) - allocated_before
        trainee.peak_bytes.append(static_bytes(trainee) + step_peak)


def make_batches(args: argparse.Namespace, cfg: Config, device: torch.device) -> list[Batch]:
    size = parse_size(args.size) if args.size else (cfg.data.transforms.eval_min_size,) * 2
    generator = torch.Generator().manual_seed(args.seed)
    return [
        random_batch(cfg.train.batch_size, size, args.objects, cfg.model.num_classes, generator).to(device)
        for _ in range(args.num_batches)
    ]


def interleaved_timing(args: argparse.Namespace, rows: list[CostRow], device: torch.device) -> list[Trainee]:
    trainees = [build_trainee(args, row, device) for row in rows]
    batches = make_batches(args, trainees[0].cfg, device)
    for i in range(args.warmup):
        for trainee in trainees:
            run_step(trainee, batches[i % len(batches)], device, args, record=False)
    for i in range(args.steps):
        order = trainees if i % 2 == 0 else trainees[::-1]
        for trainee in order:
            run_step(trainee, batches[i % len(batches)], device, args, record=True)
    if args.count_ops:
        for trainee in trainees:
            trainee.op_counts = count_ops(trainee, batches[0], device)
    return trainees


def memory_probe(args: argparse.Namespace, row: CostRow, device: torch.device) -> dict[str, int]:
    """Run one row alone (called in a fresh subprocess): peak RSS before and after training steps."""
    trainee = build_trainee(args, row, device)
    batches = make_batches(args, trainee.cfg, device)
    reset_peak_rss()
    rss_ready = current_rss_bytes()
    for i in range(args.memory_steps):
        run_step(trainee, batches[i % len(batches)], device, args, record=False)
    return {"rss_ready": rss_ready, "rss_peak": peak_rss_bytes()}


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE`."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def subprocess_memory(args: argparse.Namespace, rows: list[CostRow]) -> list[list[dict[str, int]]]:
    """Peak RSS of each row, each measured `--memory-runs` times in fresh processes (rows alternate)."""
    results: list[list[dict[str, int]]] = [[] for _ in rows]
    forwarded = without_option(sys.argv[1:], "--json")
    for run in range(args.memory_runs):
        indices = range(len(rows)) if run % 2 == 0 else reversed(range(len(rows)))
        for index in indices:
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                *forwarded,
                "--memory-probe",
                str(index),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"memory probe of row {rows[index].name!r} failed:\n{done.stderr[-2000:]}")
            results[index].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def ratio_or_nan(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def paired_ratios(numerator: list[float], denominator: list[float]) -> Spread:
    return Spread.of([n / d for n, d in zip(numerator, denominator)])


def summarize(args, trainees: list[Trainee], memory: list[list[dict[str, int]]] | None, device) -> dict:
    """The result record: per row the step time, ratios, assignment share, phases and memory."""
    reference = trainees[0]
    rows = []
    for index, trainee in enumerate(trainees):
        record = {
            "name": trainee.row.name,
            "overrides": trainee.row.overrides,
            "step_seconds": Spread.of(trainee.step_seconds).as_dict(),
            "time_ratio": paired_ratios(trainee.step_seconds, reference.step_seconds).as_dict(),
            "assign_seconds": Spread.of(trainee.assign_seconds).as_dict(),
            "assign_share": Spread.of(
                [a / s for a, s in zip(trainee.assign_seconds, trainee.step_seconds)]
            ).as_dict(),
            "parameters": sum(p.numel() for p in trainee.model.parameters()),
        }
        if trainee.op_counts:
            record["aten_ops"] = trainee.op_counts
        if args.phases:
            record["phases"] = {
                name: Spread.of(values).as_dict() for name, values in trainee.phase_seconds.items()
            }
        if device.type == "cuda":
            record["peak_bytes"] = Spread.of([float(b) for b in trainee.peak_bytes]).as_dict()
            record["memory_ratio"] = paired_ratios(trainee.peak_bytes, reference.peak_bytes).as_dict()
        elif memory is not None:
            peaks = [float(m["rss_peak"]) for m in memory[index]]
            growth = [float(m["rss_peak"] - m["rss_ready"]) for m in memory[index]]
            ref_peaks = [float(m["rss_peak"]) for m in memory[0]]
            ref_growth = [float(m["rss_peak"] - m["rss_ready"]) for m in memory[0]]
            record["peak_rss_bytes"] = Spread.of(peaks).as_dict()
            record["rss_growth_bytes"] = Spread.of(growth).as_dict()
            record["memory_ratio"] = ratio_or_nan(statistics.median(peaks), statistics.median(ref_peaks))
            record["growth_ratio"] = ratio_or_nan(statistics.median(growth), statistics.median(ref_growth))
        rows.append(record)
    cfg = reference.cfg
    size = parse_size(args.size) if args.size else (cfg.data.transforms.eval_min_size,) * 2
    return {
        "benchmark": "train_cost",
        "command": command_line(),
        "machine": machine_description(device),
        "preset": args.preset,
        "image_size": list(size),
        "batch_size": cfg.train.batch_size,
        "objects_per_image": args.objects,
        "num_classes": cfg.model.num_classes,
        "amp": args.amp,
        "warmup": args.warmup,
        "steps": args.steps,
        "clock": args.clock,
        "step": "phased" if args.phases else "msdetr.engine.step.train_step",
        "rows": rows,
    }


def render(result: dict) -> str:
    """The compact markdown table of a result record."""
    mib = 1 / 2**20
    headers = ["row", "step ms, median [IQR]", "time ratio [IQR]", "assignment ms (share)"]
    first = result["rows"][0]
    if "phases" in first:
        headers += [f"{p} ms" for p in PHASES]
    if "aten_ops" in first:
        headers += [f"{p} ops" for p in OP_PHASES]
    if "peak_bytes" in first:
        headers += ["peak MiB", "memory ratio"]
    elif "peak_rss_bytes" in first:
        headers += ["peak RSS MiB", "ratio", "RSS growth MiB", "ratio"]
    lines = []
    for row in result["rows"]:
        step, ratio, assign = (Spread(**row[k]) for k in ("step_seconds", "time_ratio", "assign_seconds"))
        share = row["assign_share"]["median"]
        cells = [
            row["name"],
            step.format(1000, 1),
            ratio.format(1, 3),
            f"{assign.median * 1000:.1f} ({share:.1%})",
        ]
        if "phases" in row:
            cells += [f"{row['phases'][p]['median'] * 1000:.1f}" for p in PHASES]
        if "aten_ops" in row:
            cells += [str(row["aten_ops"][p]) for p in OP_PHASES]
        if "peak_bytes" in row:
            cells += [f"{row['peak_bytes']['median'] * mib:.0f}", f"{row['memory_ratio']['median']:.3f}"]
        elif "peak_rss_bytes" in row:
            cells += [
                f"{row['peak_rss_bytes']['median'] * mib:.0f}",
                f"{row['memory_ratio']:.3f}",
                f"{row['rss_growth_bytes']['median'] * mib:.0f}",
                f"{row['growth_ratio']:.3f}",
            ]
        lines.append(cells)
    m = result["machine"]
    where = m.get("gpu") or f"{m['cpu']}, {m['torch_threads']} threads"
    header = (
        f"preset {result['preset']}, image {result['image_size'][0]}x{result['image_size'][1]}, "
        f"batch {result['batch_size']}, {result['objects_per_image']} objects/image, amp {result['amp']}, "
        f"{result['steps']} interleaved steps after {result['warmup']} warm-up, "
        f"{result.get('clock', 'wall')} clock; {where}; torch {m['torch']}"
    )
    return header + "\n\n" + markdown_table(headers, lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="preset name or YAML path (default: tiny)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--size", default=None, help="image size N or HxW (default: preset's eval_min_size)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: preset's)")
    parser.add_argument("--objects", type=int, default=7, help="objects per image (COCO averages 7.3)")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="default: 6 on synthetic data, else preset's"
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps | auto")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: process CPU time, robust to other processes' load (use with --threads 1)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row first")
    parser.add_argument("--steps", type=int, default=20, help="timed interleaved rounds")
    parser.add_argument("--num-batches", type=int, default=4, help="distinct random batches cycled through")
    parser.add_argument(
        "--phases", action="store_true", help="time forward/assign/loss/backward/optimizer apart"
    )
    parser.add_argument("--count-ops", action="store_true", help="also count aten operator calls per phase")
    parser.add_argument(
        "--memory-runs", type=int, default=2, help="CPU: fresh-process memory runs per row (0: skip)"
    )
    parser.add_argument("--memory-steps", type=int, default=3, help="CPU: training steps per memory run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default=None, help="comma-separated row indices to run (default: all)")
    parser.add_argument("--json", default=None, help="also write the result record here")
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    check_amp(args.amp, device)
    rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    if args.memory_probe is not None:
        print(json.dumps(memory_probe(args, rows[args.memory_probe], device)))
        return 0
    trainees = interleaved_timing(args, rows, device)
    memory = None
    if device.type == "cpu" and args.memory_runs > 0:
        memory = subprocess_memory(args, rows)
    result = summarize(args, trainees, memory, device)
    print(render(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
