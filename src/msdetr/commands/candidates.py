"""`msdetr candidates`: the top-20 query boxes of each object, for one or two checkpoints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msdetr.errors import MsdetrError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "candidates",
        help="draw each object's top-20 candidate boxes (paper Fig. 1/7) and summarize their IoU",
        description="For each ground-truth object of the first N images of a split, rank a checkpoint's "
        "final-layer query boxes by IoU with the object and draw the best K (default 20), side by side for "
        "two checkpoints (e.g. a baseline and MS-DETR trained by the same recipe). Prints the mean IoU of "
        "the top-1/top-5/top-20 candidates per object for each checkpoint and writes it to "
        "DIR/summary.json.",
    )
    p.add_argument("--weights", required=True, metavar="CKPT", help="checkpoint (ours or official)")
    p.add_argument("--compare", metavar="CKPT", help="a second checkpoint, drawn to the right")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="names of the checkpoints in pictures and "
                   "summary (default: their file paths)")
    p.add_argument("--data", required=True, metavar="DIR_OR_JSON",
                   help="dataset folder in COCO layout, or an instances json")
    p.add_argument("--images-dir", metavar="DIR", help="image folder, when --data is a json file outside "
                   "COCO layout")
    p.add_argument("--split", default="val", help="split of DIR (default: val; a prefix such as 'val' finds "
                   "'val2017')")
    p.add_argument("--images", type=int, default=10, metavar="N",
                   help="first N annotated images (default 10)")
    p.add_argument("--top", type=int, default=20, metavar="K",
                   help="candidates drawn per object (default 20)")
    p.add_argument("--out", default="candidates", metavar="DIR", help="output folder (default: candidates)")
    p.add_argument("--no-draw", action="store_true", help="only print and write the summary")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch (default 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def summary_table(summaries: dict) -> str:
    """Aligned text table: one row per checkpoint, mean IoU of top-1/5/20 candidates."""
    width = max(len("checkpoint"), *(len(label) for label in summaries))
    ranks = next(iter(summaries.values())).ranks
    head = f"{'checkpoint':<{width}}  objects  " + "  ".join(f"top-{r:<3d}" for r in ranks)
    rows = [head]
    for label, summary in summaries.items():
        means = summary.means()
        rows.append(f"{label:<{width}}  {summary.objects:7d}  " + "  ".join(f"{means[f'top{r}']:.3f}"
                                                                           .ljust(7) for r in ranks))
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from msdetr.api import load
    from msdetr.data.layout import find_split, source_from_json
    from msdetr.inference.candidate_report import candidate_report, read_annotated_images
    from msdetr.inference.results import write_json

    for name, value, low in (("--images", args.images, 1), ("--top", args.top, 1),
                             ("--batch-size", args.batch_size, 1)):
        if value < low:
            raise MsdetrError(f"{name} must be >= {low}, got {value}")
    weights = [args.weights] + ([args.compare] if args.compare else [])
    labels = args.labels or weights
    if len(labels) != len(weights):
        raise MsdetrError(f"--labels: give one name per checkpoint ({len(weights)}), got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise MsdetrError(f"--labels: names must differ, got {labels}")
    data = Path(args.data)
    source = find_split(data, args.split) if data.is_dir() else source_from_json(data, args.images_dir)
    images = read_annotated_images(source, args.images)
    detectors = {label: load(path, device=args.device) for label, path in zip(labels, weights)}
    out_dir = Path(args.out)
    with tqdm(total=len(images), unit="img", desc="candidates", disable=args.quiet, file=sys.stderr) as bar:
        summaries = candidate_report(detectors, images, None if args.no_draw else out_dir, k=args.top,
                                     batch_size=args.batch_size, on_progress=bar.update)
    table = summary_table(summaries)
    print(f"Mean IoU of each object's best candidates (final-layer query boxes ranked by IoU), "
          f"{len(images)} images of {source.annotations}:")
    print(table)
    record = {
        "annotations": str(source.annotations),
        "images": len(images),
        "checkpoints": {label: {"weights": str(path), "objects": summaries[label].objects,
                                **summaries[label].means()}
                        for label, path in zip(labels, weights)},
    }
    write_json(out_dir / "summary.json", record)
    if args.no_draw:
        print(f"summary in {out_dir / 'summary.json'}")
    else:
        print(f"pictures and summary.json in {out_dir}")
    return 0
