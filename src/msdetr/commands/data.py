"""`msdetr data synth` and `msdetr data check`."""

from __future__ import annotations

import argparse
import time

from msdetr.errors import MsdetrError


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="create the synthetic dataset or check a dataset",
        description="Dataset tools: `synth` writes the built-in synthetic dataset, `check` finds problems "
                    "in a COCO-format dataset before training.",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 0)[1])
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")

    synth = actions.add_parser(
        "synth", help="write the synthetic shapes dataset (COCO layout)",
        description="Write a COCO-format dataset of coloured shapes (circle, square, triangle, star, "
                    "hexagon, cross) on textured or noisy backgrounds: "
                    "DIR/annotations/instances_{train,val}.json and PNG images in DIR/train, DIR/val. "
                    "The same seed gives the same dataset.",
    )
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier "
                       "synthetic dataset, which is replaced)")
    synth.add_argument("--train", type=_positive, default=1000, metavar="N", help="training images (1000)")
    synth.add_argument("--val", type=_positive, default=200, metavar="M", help="validation images (200)")
    synth.add_argument("--size", type=int, default=256, metavar="S", help="longer image side in pixels (256)")
    synth.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (0)")
    synth.add_argument("--layout", choices=["standard", "simple", "coloured"], default="standard",
                       help="standard: 1-12 shapes of 4-45%% of the shorter side, some empty or crowded images; "
                            "simple: 1-4 shapes of 10-40%%; coloured: as simple, one colour per class on grey "
                            "(the CPU demo's data)")
    synth.set_defaults(func=run_synth)

    check = actions.add_parser(
        "check", help="report every problem in a COCO-format dataset",
        description="Read a dataset folder in COCO layout (annotations/instances_<split>.json, images in "
                    "<split>/; every split found) or one json file with --images, and report each problem "
                    "with its image file and annotation id, then a summary. Exit status 1 when there are "
                    "errors.",
    )
    check.add_argument("path", metavar="DIR_OR_JSON", help="dataset folder, or an instances json")
    check.add_argument("--images", metavar="DIR", help="image folder (with a json file)")
    check.add_argument("--num-classes", type=int, metavar="N", help="check that the categories fit N classes")
    check.add_argument("--raw-category-ids", action="store_true",
                       help="category ids are used as class indices (official COCO checkpoints)")
    check.add_argument("--headers-only", action="store_true",
                       help="read image headers only (faster; truncated files go unnoticed)")
    check.add_argument("--all", action="store_true", help="list every problem (default: 20 per kind)")
    check.set_defaults(func=run_check)


def run_synth(args) -> int:
    from msdetr.data.synthetic import create_synthetic_dataset

    if args.size < 32:
        raise MsdetrError(f"--size: must be at least 32 pixels, got {args.size}")
    start = time.perf_counter()
    root = create_synthetic_dataset(args.out, train=args.train, val=args.val, size=args.size, seed=args.seed,
                                    layout=args.layout)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.train} train + {args.val} val images of {args.size} px to {root} in {elapsed:.1f} s")
    print(f"check it with: msdetr data check {root}")
    return 0


def run_check(args) -> int:
    from msdetr.data.doctor import check_dataset

    report = check_dataset(args.path, images=args.images, num_classes=args.num_classes,
                           raw_category_ids=args.raw_category_ids, decode_images=not args.headers_only)
    print(report.format(max_per_kind=None if args.all else 20))
    return 0 if report.ok else 1
