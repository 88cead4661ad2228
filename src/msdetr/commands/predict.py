"""`msdetr predict`: detect objects in image files, write a results json and drawings."""

from __future__ import annotations

import argparse
import sys

from msdetr.errors import MsdetrError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="detect objects in images: results json plus each image with boxes drawn",
        description="Run a checkpoint (ours or official) on image files, folders (searched recursively) or "
        "glob patterns, with the checkpoint's evaluation preprocessing. Writes DIR/predictions.json (COCO "
        "results format plus file_name and category_name; boxes [x, y, w, h] in pixels) and, unless "
        "--no-draw, DIR/<image>.png with boxes, class names and scores. Unreadable files are reported and "
        "skipped; the exit status is 1 when any input failed.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns "
                   "(quote patterns with ** so the shell leaves them alone)")
    p.add_argument("--weights", required=True, metavar="CKPT", help="checkpoint: best.pt, last.pt, converted "
                   "or official")
    p.add_argument("--out", default="predictions", metavar="DIR", help="output folder (default: predictions)")
    p.add_argument("--score", type=float, default=0.3, help="keep detections with at least this score "
                   "(default 0.3)")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch (default 4)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--topk", type=int, default=None, help="detections per image before the score threshold "
                   "(default: the checkpoint's eval.topk, else 100)")
    p.add_argument("--no-draw", action="store_true", help="only write the results json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from msdetr.api import load
    from msdetr.inference.image_inputs import find_images
    from msdetr.inference.predict_files import predict_files

    if args.batch_size < 1:
        raise MsdetrError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0.0 <= args.score <= 1.0:
        raise MsdetrError(f"--score must be in [0, 1], got {args.score}")
    if args.topk is not None and args.topk < 1:
        raise MsdetrError(f"--topk must be >= 1, got {args.topk}")
    found = find_images(args.inputs)
    for item, reason in found.problems:
        print(f"msdetr predict: {item}: {reason}", file=sys.stderr)
    if not found.files:
        raise MsdetrError("no image files found in the inputs; pass image files, folders or glob patterns")
    detector = load(args.weights, device=args.device)
    if args.topk is not None:
        detector.settings.topk = args.topk

    with tqdm(total=len(found.files), unit="img", desc="predict", disable=args.quiet, file=sys.stderr) as bar:
        def failed(path: str, reason: str) -> None:
            bar.write(f"msdetr predict: {path}: {reason}; skipped", file=sys.stderr)

        summary = predict_files(detector, found.files, args.out, score=args.score, batch_size=args.batch_size,
                                draw=not args.no_draw, on_progress=bar.update, on_failure=failed)
    failed_count = len(summary.failures) + len(found.problems)
    drawn = f", drawings in {args.out}" if summary.drawings else ""
    print(f"{summary.images} image(s), {summary.detections} detection(s) with score >= {args.score} -> "
          f"{summary.results_path}{drawn}" + (f"; {failed_count} input(s) failed" if failed_count else ""))
    return 1 if failed_count else 0
