"""The pretrained-backbone protocol around `msdetr compare`: the paper's regime (a pretrained backbone,
a fresh transformer) at a size without ImageNet or COCO.

Phase 1 trains the baseline detector once on pre-training data (`--pretrain-set`, default the
`coloured` synthetic layout with data seed 100) for `--pretrain-steps` steps and keeps its `last.pt`
(a finished phase 1 is reused). Phase 2 is `msdetr compare` of the variants started from that
backbone (`--init-backbone`: backbone weights only, the neck, encoder, decoder and heads fresh) with
the recipe used for an ImageNet backbone (frozen BatchNorm, stem and layer1 frozen, backbone learning
rate 0.1 x the transformer's, as the official 2e-5 / 2e-4) on data the backbone did not see
(`--phase2-set`, default the `simple` layout with data seed 1: the same shape classes in random
colours, so a class must be told by its outline), several seeds, the same budget. Phase 2's
outputs are compare's: OUT/phase2/compare.{json,md} and plots.

    python benchmarks/convergence.py --seeds 0,1,2 --steps 780 --jobs 2 --out runs/bench_pretrained

Training from scratch needs no script: `msdetr compare tiny_ddetr tiny_ddetr+ms_detr --seeds 0,1,2
--steps 780 --out runs/bench_scratch` (docs/compare.md). Ablations of one method are YAML variants,
e.g. a file with `base: tiny_ddetr+ms_detr` and `supervision: {one_to_many: {k: 3}}`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PRETRAIN_SET = ["data.synthetic.layout=coloured", "data.synthetic.seed=100"]
PHASE2_SET = ["data.synthetic.layout=simple", "data.synthetic.seed=1"]
PRETRAINED_RECIPE = ["model.backbone.norm=frozen_bn", "model.backbone.freeze_at=layer1"]
BACKBONE_LR_RATIO = 0.1  # official: lr_backbone 2e-5 for lr 2e-4


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def phase1_checkpoint(args: argparse.Namespace) -> Path:
    """Train (or reuse) the phase-1 baseline; returns its last.pt."""
    from msdetr.cli import main as cli
    from msdetr.compare.plan import folder_name, variant_name

    out = Path(args.out) / "phase1"
    argv = ["compare", args.base, "--seeds", str(args.pretrain_seed), "--steps", str(args.pretrain_steps),
            "--device", args.device, "--out", str(out), *_sets([*args.set, *args.pretrain_set])]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    print(f"[convergence] phase 1: the baseline {args.base} on the pre-training data, {args.pretrain_steps} steps",
          flush=True)
    if cli(argv) != 0:
        raise SystemExit("phase 1 failed; see its run folder under " + str(out / "runs"))
    return out / "runs" / folder_name(variant_name(args.base)) / f"seed{args.pretrain_seed}" / "last.pt"


def phase2_argv(args: argparse.Namespace, checkpoint: Path) -> list[str]:
    from msdetr.config.loader import load_config

    lr = load_config(args.base, args.set).train.optimizer.lr
    if args.variants == "systems":
        from msdetr.compare.systems import system_variants

        variants = system_variants(args.base)
    else:
        variants = args.variants.split(",") if args.variants else [args.base, f"{args.base}+ms_detr"]
    budget = ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]
    argv = ["compare", *variants, "--seeds", args.seeds, *budget, "--jobs", str(args.jobs),
            "--device", args.device, "--init-backbone", str(checkpoint), "--out", str(Path(args.out) / "phase2"),
            *_sets([*args.set, *args.phase2_set, *PRETRAINED_RECIPE,
                    f"train.optimizer.lr_backbone={BACKBONE_LR_RATIO * lr}"])]
    return argv + (["--threads", str(args.threads)] if args.threads else [])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="tiny_ddetr", help="the baseline (phase 1 trains it; default: tiny_ddetr)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated phase-2 variants (default: BASE,BASE+ms_detr); 'systems': the "
                        "ten systems of the paper on BASE, alone and with MS-DETR (msdetr.compare.systems)")
    parser.add_argument("--seeds", default="0,1,2", help="phase-2 seeds (default: 0,1,2)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="phase-2 optimizer steps per run")
    budget.add_argument("--minutes", type=float, help="phase-2 wall-time budget per run")
    parser.add_argument("--pretrain-steps", type=int, default=780, help="phase-1 steps (default: 780)")
    parser.add_argument("--pretrain-seed", type=int, default=0, help="phase-1 training seed")
    parser.add_argument("--pretrain-set", action="append", default=None, metavar="KEY=VALUE",
                        help=f"phase-1 overrides (default: {' '.join(PRETRAIN_SET)})")
    parser.add_argument("--phase2-set", action="append", default=None, metavar="KEY=VALUE",
                        help=f"phase-2 data overrides (default: {' '.join(PHASE2_SET)})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for both phases")
    parser.add_argument("--init-backbone", default=None, metavar="CKPT", help="skip phase 1: start from CKPT")
    parser.add_argument("--jobs", type=int, default=1, help="phase-2 runs at a time")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--out", required=True, help="folder for phase1/ and phase2/")
    args = parser.parse_args(argv)
    args.pretrain_set = args.pretrain_set if args.pretrain_set is not None else list(PRETRAIN_SET)
    args.phase2_set = args.phase2_set if args.phase2_set is not None else list(PHASE2_SET)
    return args


def main(argv: list[str] | None = None) -> int:
    from msdetr.cli import main as cli

    args = parse_args(argv)
    checkpoint = Path(args.init_backbone) if args.init_backbone else phase1_checkpoint(args)
    print(f"[convergence] phase 2 from the backbone of {checkpoint}", flush=True)
    return cli(phase2_argv(args, checkpoint.resolve()))


if __name__ == "__main__":
    sys.exit(main())
