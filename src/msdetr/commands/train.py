"""`msdetr train`: train a detector from a preset or YAML config (single process or torchrun)."""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

from msdetr.config.loader import (
    DEFAULT_PRESET,
    apply_overrides,
    config_from_dict,
    list_presets,
    load_config,
)
from msdetr.config.origins import Origins
from msdetr.engine.checkpoint import load_training_checkpoint, resolve_resume_path
from msdetr.engine.resume_config import check_config_not_edited
from msdetr.engine.run_dir import new_run_dir
from msdetr.errors import MsdetrError


def _presets_epilog() -> str:
    lines = ["presets (--config NAME):"]
    presets = list_presets()
    width = max([20, *(len(name) + 1 for name in presets)])
    for name, description in presets.items():
        lines += textwrap.wrap(description, width=70 + width, initial_indent=f"  {name:<{width}s}",
                               subsequent_indent=" " * (width + 2))
    lines += [
        "",
        "examples:",
        "  msdetr train                                   # tiny MS-DETR on synthetic data, CPU, minutes",
        "  msdetr train --config msdetr_r50_300 --set data.root=data/coco",
        "  msdetr train --config ddetr_pp_r50_300+hybrid+ms_detr --set data.root=data/coco",
        "  torchrun --nproc_per_node 8 -m msdetr train --config msdetr_pp_r50_300",
        "  msdetr train --resume runs/tiny                # continue an interrupted run",
        "  msdetr train --config my.yaml --init-weights runs/tiny/best.pt",
        "  msdetr train --init-backbone runs/tiny/best.pt --set model.backbone.norm=frozen_bn",
    ]
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a detector (default: the tiny MS-DETR preset on built-in synthetic data)",
        description="Train a detector. The run folder gets the resolved config.yaml, last.pt (resumable), "
        "best.pt (best train.best_metric: segm mAP for mask models, bbox mAP otherwise), metrics.jsonl, "
        "train.log, loss/mAP curves and validation images with "
        "predicted boxes. Under torchrun every process trains a share of each batch (DDP).",
        epilog=_presets_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="PRESET_OR_YAML",
                   help=f"preset name or YAML file (default: {DEFAULT_PRESET}), optionally with training methods "
                   "as overlays: BASE+METHOD+..., e.g. tiny_ddetr+hybrid+ms_detr (docs/compare.md)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.num_queries=900 (repeatable)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_OR_CKPT",
        help="continue a run from its folder (last.pt) or a last.pt file with the checkpoint's config; --set "
        "may change training settings such as train.epochs (an edited config.yaml in the run folder is not "
        "read: resuming stops and names the --set that applies the edit)",
    )
    p.add_argument(
        "--init-weights",
        metavar="CKPT",
        help="start from the weights of any checkpoint (ours or official); class heads are "
        "re-initialized when the number of classes differs",
    )
    p.add_argument(
        "--init-backbone",
        metavar="CKPT",
        help="start the backbone from CKPT (one of our checkpoints, an official one, or a torchvision "
        "ResNet state dict); encoder, decoder and heads start fresh. Pair with frozen BatchNorm and a "
        "lower backbone lr, e.g. --set model.backbone.norm=frozen_bn --set train.optimizer.lr_backbone=1e-4",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="run folder (default: runs/<config name>; an existing run is never overwritten, a suffix is added)",
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps (same as --set train.device=...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, less output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from msdetr.engine import distributed
    from msdetr.engine.time_budget import process_start_time
    from msdetr.engine.trainer import Trainer

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    resume = None
    if args.resume:
        if args.config:
            raise MsdetrError(
                "--resume continues the run's saved config; drop --config (use --set to change training settings)"
            )
        if args.init_weights:
            raise MsdetrError("--resume and --init-weights exclude each other; --resume already restores weights")
        if args.init_backbone:
            raise MsdetrError("--resume and --init-backbone exclude each other; --resume already restores weights")
        path = resolve_resume_path(args.resume)
        resume = load_training_checkpoint(path)
        saved = config_from_dict(resume["run_config"], where=f"{path} (saved config)")
        origins = Origins(f"{path} (saved config)")
        origins.record(resume["run_config"], f"{path} (saved config)")
        merged = apply_overrides(resume["run_config"], overrides, origins)
        cfg = config_from_dict(merged, where=f"{path} (saved config)", origins=origins)
        if cfg.model != saved.model:
            raise MsdetrError(f"--set: a resumed run keeps its model; {path} cannot change model.* settings")
        run_dir = Path(args.output) if args.output else path.parent
        check_config_not_edited(run_dir, path, saved, cfg)
    else:
        cfg = load_config(args.config, overrides)
        run_dir = new_run_dir(args.output, cfg.name)
    try:
        result = Trainer(
            cfg,
            run_dir,
            resume=resume,
            init_weights=args.init_weights,
            init_backbone=args.init_backbone,
            verbose=not args.quiet,
            started_at=process_start_time(),
        ).fit()
    finally:
        distributed.shutdown()
    if result.is_main and result.metrics:
        print(
            f"bbox mAP {result.metrics['bbox_mAP']:.4f}, mAP@0.5 {result.metrics['bbox_mAP_50']:.4f} after "
            f"{result.steps} steps in {result.wall_s:.0f} s ({time.time() - process_start_time():.0f} s since "
            f"the process started); run folder: {result.run_dir}"
        )
    return 0
