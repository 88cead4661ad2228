"""Does mixed supervision converge faster? Baseline vs MS-DETR at the same budget, several seeds.

Each variant is a preset plus dotted overrides, trained by the library's own trainer
(`msdetr.engine.trainer.Trainer`) on the preset's data (the `tiny` preset: the built-in
synthetic shapes dataset) for the same epochs, once per seed. Every run is a fresh
subprocess (`--jobs` at a time, `--threads` torch threads each) writing its run folder
under `--output`; finished runs are reused, so an interrupted benchmark continues.

Recorded per run and epoch: the one-to-one loss of the final decoder layer (the layer used
at inference), on the training data, weighted with the *same* weights for both variants
(`--loss-weights`, default the baseline's cls 2 / bbox 5 / giou 2), and the validation
bbox mAP and mAP@0.5. Written: a JSON with every run and the mean / std / min / max over
seeds per epoch, and two plots like the paper's Fig. 2 (loss curves) and Fig. 6 (mAP
curves): the seed mean as a line, min-max over seeds as a band.

    python benchmarks/convergence.py --preset tiny --seeds 0,1,2 --jobs 2 --threads 1 \\
        --output runs/bench_convergence --json docs/convergence_tiny.json --plots docs/img

The pretrained-backbone protocol (`--protocol pretrained`), the paper's regime at a small
scale: phase 1 trains the baseline detector once (`--pretrain-set`, default the `coloured`
synthetic layout, data seed 100, `--pretrain-epochs` epochs) and keeps its `last.pt`; phase 2
trains every variant from that backbone (`--init-backbone`) with a fresh neck, encoder,
decoder and heads, frozen BatchNorm, stem and layer1 frozen and the official backbone /
transformer learning-rate ratio (2e-5 / 2e-4 = 0.1), on data the backbone did not see
(`--phase2-set`, default the `simple` layout with data seed 1: the same shape classes in
random colours, so the class must be told by its outline), several seeds each, the same step
budget:

    python benchmarks/convergence.py --protocol pretrained --preset tiny --seeds 0,1,2 --threads 2 \\
        --output runs/bench_pretrained --json docs/convergence_pretrained.json --plots docs/img
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, machine_description  # noqa: E402

RESULT_FILE = "convergence_run.json"


@dataclass
class Variant:
    """One training recipe of the comparison: `overrides` apply on top of the preset."""

    name: str
    label: str
    overrides: list[str] = field(default_factory=list)


# The baseline is the Deformable DETR recipe (one-to-one only, class loss weight 2); MS-DETR
# adds the one-to-many stream (official recipe: one-to-one class weight 1, one-to-many 2).
_BASELINE = [
    "supervision.strategy=one_to_one",
    "model.mixed_supervision.enabled=false",
    "supervision.loss_weights.one_to_one.cls=2.0",
]
_MSDETR = [  # the paper's recipe, whatever the preset sets
    "supervision.strategy=mixed",
    "model.mixed_supervision.enabled=true",
    "model.mixed_supervision.tap=c",
    "supervision.loss_weights.one_to_one.cls=1.0",
    "supervision.loss_weights.one_to_many.cls=2.0",
    "supervision.one_to_many.k=6",
    "supervision.one_to_many.threshold=0.4",
]


def _msdetr_with(name: str, label: str, *changes: str) -> Variant:
    """An MS-DETR ablation: the MS-DETR recipe with `changes` on top."""
    return Variant(name, f"MS-DETR, {label}", [*_MSDETR, *changes])


VARIANTS = [
    Variant("baseline", "Deformable DETR (one-to-one)", _BASELINE),
    Variant("msdetr", "MS-DETR", _MSDETR),
    # Ablations of the investigation (paper Fig. 4 placements, Table 5 K, loss weights, threshold);
    # not run by default: pick them with --variants.
    _msdetr_with("tap_a", "placement a (self-cross-FFN, tap after FFN)", "model.mixed_supervision.tap=a"),
    _msdetr_with("tap_b", "placement b (cross-self-FFN, tap after FFN)", "model.mixed_supervision.tap=b"),
    _msdetr_with("tap_d", "placement d (self-cross-FFN, tap after self-attn)", "model.mixed_supervision.tap=d"),
    _msdetr_with("k3", "K=3", "supervision.one_to_many.k=3"),
    _msdetr_with("k12", "K=12", "supervision.one_to_many.k=12"),
    _msdetr_with("thr03", "threshold 0.3", "supervision.one_to_many.threshold=0.3"),
    _msdetr_with("thr05", "threshold 0.5", "supervision.one_to_many.threshold=0.5"),
    _msdetr_with("o2m_w1", "one-to-many weights x0.5", "supervision.loss_weights.one_to_many.cls=1.0",
                 "supervision.loss_weights.one_to_many.bbox=2.5", "supervision.loss_weights.one_to_many.giou=1.0"),
    _msdetr_with("o2o_w2", "one-to-one class weight 2", "supervision.loss_weights.one_to_one.cls=2.0"),
]
DEFAULT_VARIANTS = ("baseline", "msdetr")

# The pretrained-backbone protocol. Phase 1: the baseline on other data (layout and seed);
# phase 2: what the paper's recipe does to an ImageNet backbone (frozen BatchNorm, stem and
# layer1 frozen, backbone lr = 0.1 x transformer lr), on data the backbone did not see.
PRETRAIN_SET = ["data.synthetic.layout=coloured", "data.synthetic.seed=100"]
PHASE2_SET = ["data.synthetic.layout=simple", "data.synthetic.seed=1"]
PRETRAINED_RECIPE = ["model.backbone.norm=frozen_bn", "model.backbone.freeze_at=layer1"]
BACKBONE_LR_RATIO = 0.1  # official: lr_backbone 2e-5 for lr 2e-4
PRETRAIN_DIR = "pretrain"


def final_layer_loss(terms: dict, weights: tuple[float, float, float]) -> float | None:
    """Weighted one-to-one loss of the last decoder layer from an epoch record's mean terms."""
    layers = sorted(
        int(k.split(".")[1].removeprefix("layer"))
        for k in terms
        if k.startswith("one_to_one.layer") and k.endswith(".cls")
    )
    if not layers:
        return None
    prefix = f"one_to_one.layer{layers[-1]}"
    parts = [terms.get(f"{prefix}.{t}") for t in ("cls", "bbox", "giou")]
    if any(not isinstance(p, (int, float)) for p in parts):
        return None
    return sum(w * p for w, p in zip(weights, parts))


def read_run(run_dir: Path, variant: str, seed: int, loss_weights: str) -> dict:
    """Per-epoch one-to-one loss, mAP and mAP@0.5 of a run folder (finished or still running)."""
    from msdetr.engine.metrics_log import read_metrics

    weights = tuple(float(w) for w in loss_weights.split(","))
    epochs: dict[int, dict] = {}
    for record in read_metrics(run_dir):
        if record["kind"] == "epoch":
            epochs.setdefault(record["epoch"], {})["one_to_one_loss"] = final_layer_loss(record, weights)
        elif record["kind"] == "eval":
            entry = epochs.setdefault(record["epoch"], {})
            entry["bbox_mAP"] = record.get("bbox_mAP")
            entry["bbox_mAP_50"] = record.get("bbox_mAP_50")
    return {
        "variant": variant,
        "seed": seed,
        "epochs": [{"epoch": e, **values} for e, values in sorted(epochs.items())],  # 1-based in metrics.jsonl
    }


def train_one(args: argparse.Namespace) -> int:
    """Train one (variant, seed) in this process and write its per-epoch record."""
    import torch

    from msdetr.config.loader import load_config
    from msdetr.engine.trainer import Trainer

    variant = next(v for v in VARIANTS if v.name == args.variant)
    overrides = [
        *variant.overrides,
        *args.set,
        f"train.seed={args.seed}",
        "train.progress=false",
        "train.vis_images=0",
        "train.eval_every=1",
        "train.time_limit_minutes=null",  # every run the same steps, whatever the preset's time budget
        "train.device=" + args.device,
    ]
    if args.threads:
        overrides.append(f"train.num_threads={args.threads}")
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, overrides)
    if args.backbone_lr_ratio is not None:  # the backbone's lr as a fixed ratio of the preset's lr
        lr_backbone = args.backbone_lr_ratio * cfg.train.optimizer.lr
        cfg = load_config(args.preset, [*overrides, f"train.optimizer.lr_backbone={lr_backbone}"])
    run_dir = Path(args.run_dir)
    start = time.time()
    Trainer(cfg, run_dir, verbose=False, init_backbone=args.init_backbone).fit()
    wall = time.time() - start
    result = read_run(run_dir, variant.name, args.seed, args.loss_weights)
    result["wall_s"] = wall
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def run_all(args: argparse.Namespace, variants: list[Variant], seeds: list[int]) -> list[dict]:
    """Every (seed, variant) run, `--jobs` subprocesses at a time; finished runs are reused."""
    output = Path(args.output)
    jobs = [(seed, v) for seed in seeds for v in variants]

    def run(job: tuple[int, Variant]) -> dict:
        seed, variant = job
        run_dir = output / f"{variant.name}_seed{seed}"
        done = run_dir / RESULT_FILE
        if done.is_file():
            return json.loads(done.read_text(encoding="utf-8"))
        if args.partial:  # report what a still running (or stopped) benchmark has so far
            return {**read_run(run_dir, variant.name, seed, args.loss_weights), "partial": True}
        if run_dir.exists():  # an interrupted run: start it again
            for path in sorted(run_dir.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--preset",
            args.preset,
            "--run-one",
            "--variant",
            variant.name,
            "--seed",
            str(seed),
            "--run-dir",
            str(run_dir),
            "--device",
            args.device,
            "--loss-weights",
            args.loss_weights,
        ]
        command += [f"--set={s}" for s in args.set]
        if args.init_backbone:
            command += ["--init-backbone", str(args.init_backbone)]
        if args.backbone_lr_ratio is not None:
            command += ["--backbone-lr-ratio", str(args.backbone_lr_ratio)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        print(f"[convergence] start {variant.name} seed {seed}", flush=True)
        done_proc = subprocess.run(
            command, capture_output=True, text=True, check=False, env=os.environ.copy()
        )
        if done_proc.returncode != 0:
            raise RuntimeError(f"run {variant.name} seed {seed} failed:\n{done_proc.stderr[-3000:]}")
        result = json.loads(done.read_text(encoding="utf-8"))
        print(f"[convergence] done {variant.name} seed {seed} in {result['wall_s']:.0f} s", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return list(pool.map(run, jobs))


def pretrain(args: argparse.Namespace) -> Path:
    """Phase 1 of the pretrained protocol: the baseline trained once on the pre-training data;
    returns its `last.pt` (reused when it exists)."""
    run_dir = Path(args.output) / PRETRAIN_DIR
    checkpoint = run_dir / "last.pt"
    if (run_dir / RESULT_FILE).is_file() and checkpoint.is_file():
        return checkpoint
    if run_dir.exists():
        for path in sorted(run_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--preset",
        args.preset,
        "--run-one",
        "--variant",
        "baseline",
        "--seed",
        str(args.pretrain_seed),
        "--run-dir",
        str(run_dir),
        "--device",
        args.device,
        "--loss-weights",
        args.loss_weights,
    ]
    command += [f"--set={s}" for s in [*args.set_common, *args.pretrain_set, f"train.epochs={args.pretrain_epochs}"]]
    if args.threads:
        command += ["--threads", str(args.threads)]
    print(f"[convergence] phase 1: pre-training the backbone ({args.pretrain_epochs} epochs)", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"phase 1 failed:\n{done.stderr[-3000:]}")
    result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    print(f"[convergence] phase 1 done in {result['wall_s']:.0f} s", flush=True)
    return checkpoint


def aggregate(values: list[float]) -> dict[str, float]:
    """Mean, sample std, min and max over seeds."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


METRICS = ("one_to_one_loss", "bbox_mAP", "bbox_mAP_50")


def summarize(runs: list[dict], variants: list[Variant]) -> dict[str, dict]:
    """Per variant and metric, per epoch: mean / std / min / max over the seeds."""
    summary = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant.name]
        per_metric = {}
        for metric in METRICS:
            by_epoch: dict[int, list[float]] = {}
            for run in mine:
                for entry in run["epochs"]:
                    if isinstance(entry.get(metric), (int, float)):
                        by_epoch.setdefault(entry["epoch"], []).append(float(entry[metric]))
            per_metric[metric] = [{"epoch": e, **aggregate(v)} for e, v in sorted(by_epoch.items())]
        # The last epoch every seed reached (runs of a `--partial` summary may be at different epochs).
        final = {m: next((p for p in reversed(per_metric[m]) if p["n"] == len(mine)), None) for m in METRICS}
        summary[variant.name] = {
            "label": variant.label,
            "per_epoch": per_metric,
            "final": final,
            "seeds": sorted(r["seed"] for r in mine),
        }
    return summary


def plot(summary: dict, plots: Path, tag: str) -> list[Path]:
    """Loss curves (paper Fig. 2) and mAP / mAP@0.5 curves (paper Fig. 6): seed mean, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plots.mkdir(parents=True, exist_ok=True)

    def draw(ax, metric: str, ylabel: str, scale: float = 1.0) -> None:
        for entry in summary.values():
            points = entry["per_epoch"][metric]
            if not points:
                continue
            x = [p["epoch"] for p in points]
            line = ax.plot(x, [p["mean"] * scale for p in points], marker="o", label=entry["label"])[0]
            ax.fill_between(
                x,
                [p["min"] * scale for p in points],
                [p["max"] * scale for p in points],
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()

    written = []
    fig, ax = plt.subplots(figsize=(5.5, 4))
    draw(ax, "one_to_one_loss", "one-to-one loss, final decoder layer (train)")
    ax.set_title("One-to-one training loss (mean, min-max over seeds)")
    fig.tight_layout()
    written.append(plots / f"convergence_{tag}_loss.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    draw(axes[0], "bbox_mAP", "val bbox mAP (%)", 100)
    draw(axes[1], "bbox_mAP_50", "val bbox mAP@0.5 (%)", 100)
    fig.suptitle("Validation mAP (mean, min-max over seeds)")
    fig.tight_layout()
    written.append(plots / f"convergence_{tag}_map.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def render(summary: dict) -> str:
    """A markdown table of the final epoch: mean +- std [min, max] over seeds."""
    lines = [
        "| variant | seeds | final one-to-one loss | final mAP (%) | final mAP@0.5 (%) |",
        "|---|---|---|---|---|",
    ]

    def cell(final: dict, metric: str, scale: float, digits: int) -> str:
        f = final[metric]
        if f is None:
            return "n/a"
        return (
            f"{f['mean'] * scale:.{digits}f} ± {f['std'] * scale:.{digits}f} "
            f"[{f['min'] * scale:.{digits}f}, {f['max'] * scale:.{digits}f}]"
        )

    for entry in summary.values():
        final = entry["final"]
        lines.append(
            f"| {entry['label']} | {len(entry['seeds'])} | {cell(final, 'one_to_one_loss', 1, 3)} | "
            f"{cell(final, 'bbox_mAP', 100, 1)} | {cell(final, 'bbox_mAP_50', 100, 1)} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="preset name or YAML path (default: tiny)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument(
        "--variants", default=None, help=f"comma-separated variant names (default: {','.join(DEFAULT_VARIANTS)}; "
        f"all: {','.join(v.name for v in VARIANTS)})"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each its own process)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: preset's)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--loss-weights", default="2,5,2", help="cls,bbox,giou weights of the plotted loss")
    parser.add_argument("--output", default="runs/bench_convergence", help="folder of the run folders")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--plots", default=None, help="folder for the two PNG plots")
    parser.add_argument("--tag", default=None, help="plot file name tag (default: the preset name)")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="train nothing: summarize the epochs the run folders hold so far (of a running benchmark)",
    )
    parser.add_argument(
        "--protocol",
        choices=["scratch", "pretrained"],
        default="scratch",
        help="scratch: every run trains the whole detector from random weights (default); pretrained: "
        "phase 1 pre-trains a backbone once, phase 2 trains every variant from it (module doc)",
    )
    parser.add_argument("--pretrain-epochs", type=int, default=6, help="phase 1 epochs (pretrained protocol)")
    parser.add_argument("--pretrain-seed", type=int, default=0, help="phase 1 training seed")
    parser.add_argument(
        "--pretrain-set", action="append", default=None, metavar="KEY=VALUE",
        help=f"phase 1 overrides (default: {' '.join(PRETRAIN_SET)})",
    )
    parser.add_argument(
        "--phase2-set", action="append", default=None, metavar="KEY=VALUE",
        help=f"phase 2 data overrides (default: {' '.join(PHASE2_SET)})",
    )
    parser.add_argument(
        "--init-backbone", default=None, metavar="CKPT",
        help="start every run's backbone from CKPT (the pretrained protocol sets it to phase 1's last.pt)",
    )
    parser.add_argument("--backbone-lr-ratio", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_one:
        return train_one(args)
    variants = (
        [v for v in VARIANTS if v.name in (args.variants.split(",") if args.variants else DEFAULT_VARIANTS)]
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()
    if args.protocol == "pretrained":
        args.pretrain_set = args.pretrain_set if args.pretrain_set is not None else list(PRETRAIN_SET)
        args.phase2_set = args.phase2_set if args.phase2_set is not None else list(PHASE2_SET)
        args.set_common = list(args.set)
        if not args.init_backbone:
            args.init_backbone = str(pretrain(args).resolve())
        args.set = [*args.set, *args.phase2_set, *PRETRAINED_RECIPE]
        args.backbone_lr_ratio = BACKBONE_LR_RATIO
    runs = run_all(args, variants, seeds)
    summary = summarize(runs, variants)
    import torch

    result = {
        "benchmark": "convergence",
        "command": command_line(),
        "machine": machine_description(torch.device(args.device if args.device != "auto" else "cpu")),
        "preset": args.preset,
        "protocol": args.protocol,
        "overrides": args.set,
        "variants": {v.name: v.overrides for v in variants},
        "seeds": seeds,
        "loss_weights": args.loss_weights,
        "wall_s": time.time() - start,
        "summary": summary,
        "runs": runs,
    }
    if args.protocol == "pretrained":
        phase1 = Path(args.output) / PRETRAIN_DIR / RESULT_FILE
        result["pretrained"] = {
            "phase1_overrides": [*args.set_common, *args.pretrain_set, f"train.epochs={args.pretrain_epochs}"],
            "phase1_result": json.loads(phase1.read_text(encoding="utf-8")) if phase1.is_file() else None,
            "backbone": args.init_backbone,
            "phase2_overrides": [*args.phase2_set, *PRETRAINED_RECIPE],
            "backbone_lr_ratio": BACKBONE_LR_RATIO,
        }
    print(render(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.plots:
        for path in plot(summary, Path(args.plots), args.tag or Path(args.preset).stem):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
