"""`msdetr eval`: COCO box (and, for mask models, mask) metrics of a checkpoint on a dataset split.

A mask model on a dataset without segmentations gets its box metrics and one line saying the
segm ones were left out. A progress bar (stderr, rank 0) shows the images evaluated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from msdetr.errors import MsdetrError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="COCO box metrics (12 numbers and per-class AP; mask models also segm) of a checkpoint on a dataset",
        description="Evaluate a checkpoint (ours or official) with faster-coco-eval. Without --data, the "
        "validation split the checkpoint was trained with is used. A mask model is also scored on masks "
        "(segm_*) when the ground truth has segmentations; on box-only data it gets box metrics. "
        "Works under torchrun too.",
    )
    p.add_argument(
        "--weights", required=True, metavar="CKPT", help="checkpoint: best.pt, last.pt, converted or official"
    )
    p.add_argument("--data", metavar="DIR_OR_JSON", help="dataset folder in COCO layout, or an instances json")
    p.add_argument("--images", metavar="DIR", help="image folder, when --data is a json file outside COCO layout")
    p.add_argument(
        "--split",
        default=None,
        help="split of DIR to evaluate (default: the config's val split, "
        "i.e. 'val'; a prefix such as 'val' finds 'val2017')",
    )
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (results do not depend on it)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--topk",
        type=int,
        default=None,
        help="detections per image (default: the checkpoint's eval.topk, else 100)",
    )
    p.add_argument("--num-workers", type=int, default=2, help="data loading processes (default 2)")
    p.add_argument("--output", metavar="JSON", help="also write the metrics to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from msdetr.config.data import DataConfig, SplitConfig
    from msdetr.config.loader import config_from_dict
    from msdetr.data.build import build_dataset
    from msdetr.engine import distributed
    from msdetr.engine.data_setup import build_val_loader
    from msdetr.engine.device import resolve_device
    from msdetr.evaluation.coco_eval import CocoEvaluator
    from msdetr.evaluation.evaluate import evaluate
    from msdetr.model_io import build_from_file

    if args.batch_size is not None and args.batch_size < 1:
        raise MsdetrError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, model_file = build_from_file(args.weights)
    saved = (model_file.extra or {}).get("run_config")
    cfg = config_from_dict(saved, where=f"{args.weights} (saved config)") if saved else None
    num_classes = model_file.config.num_classes
    if cfg is not None:
        data_cfg = cfg.data
    else:  # an official or converted checkpoint: COCO conventions (category ids are class indices)
        data_cfg = DataConfig(raw_category_ids=True)
    topk = args.topk or (cfg.eval.topk if cfg is not None else 100)
    nms_iou = cfg.eval.nms_iou if cfg is not None else None
    batch_size = args.batch_size or ((cfg.eval.batch_size or cfg.train.batch_size) if cfg is not None else 2)

    if args.data:
        data_path = Path(args.data)
        if data_path.is_dir() and args.images is None:
            data_cfg = replace(
                data_cfg, root=str(data_path), val_split=args.split or data_cfg.val_split, val=SplitConfig()
            )
        else:
            data_cfg = replace(data_cfg, root=None, val=SplitConfig(str(data_path), args.images))
    elif cfg is None:
        raise MsdetrError(f"{args.weights}: holds no training config to find its data; pass --data DIR")
    if data_cfg.raw_category_ids:
        data_cfg = replace(data_cfg, num_classes=num_classes)
    # the loader never needs ground-truth masks (COCO scoring reads the json): box-only data works
    data_cfg = replace(data_cfg, masks=False)

    device = resolve_device(args.device)
    info = distributed.init_from_env(device.type)
    if info.enabled and device.type == "cuda":
        device = resolve_device("cuda", info.local_rank)
    model.to(device)
    dataset = build_dataset(data_cfg, "val")
    category_ids = list(model_file.category_ids or dataset.label_to_category_id)
    category_ids += [-1] * (num_classes - len(category_ids))
    loader = build_val_loader(dataset, batch_size, args.num_workers)
    evaluator = CocoEvaluator(dataset.annotation_file, category_ids)
    metrics = evaluate(model, loader, evaluator, device, "none", topk, nms_iou, progress=not args.no_progress)
    if info.is_main:
        print(f"{args.weights} on {dataset.annotation_file} ({metrics.num_images} images):")
        for note in metrics.notes:
            print(f"note: {note}")
        print(metrics.table())
        if args.output:
            out = Path(args.output)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(
                json.dumps(
                    {
                        "weights": str(args.weights),
                        "annotations": str(dataset.annotation_file),
                        **metrics.as_record(),
                    },
                    indent=2,
                )
            )
    distributed.shutdown()
    return 0
