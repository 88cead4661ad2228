"""`msdetr average-checkpoints A B ... --weights ... -o OUT`: weighted average of checkpoints of one run
(Mr. DETR's README recipe; `msdetr.methods.mr_detr.averaging`)."""

from __future__ import annotations

import argparse

from msdetr.methods.mr_detr.averaging import RELEASED_WEIGHTS_12EP, average_model_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average-checkpoints",
        help="weighted average of checkpoints of one run (Mr. DETR's model mean)",
        description="Average the weights of msdetr checkpoints of the same model, entry by entry. Mr. DETR's "
        "release (12 epochs): the final checkpoint 0.8, the one at 1/3 of training 0.15, at 2/3 0.05, in that "
        "order: --weights 0.8 0.15 0.05 (24 epochs: final 0.8, 5/6 0.1, 2/3 0.05, 1/2 0.05).",
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoints (.pt), the first one's config and classes are kept")
    p.add_argument("--weights", type=float, nargs="+", default=None,
                   help=f"one weight per checkpoint, summing to 1 (default: {RELEASED_WEIGHTS_12EP} for 3 files, "
                   "else equal weights)")
    p.add_argument("-o", "--output", required=True, help="the averaged model file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    weights = args.weights
    if weights is None:
        weights = list(RELEASED_WEIGHTS_12EP) if len(args.checkpoints) == 3 else [1.0 / len(args.checkpoints)] * len(
            args.checkpoints)
    average_model_files(args.checkpoints, weights, args.output)
    print(f"wrote {args.output}: " + " + ".join(f"{w:g} x {p}" for p, w in zip(args.checkpoints, weights)))
    return 0
