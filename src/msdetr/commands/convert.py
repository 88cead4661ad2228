"""`msdetr convert SRC DST`: an official MS-DETR / Deformable DETR checkpoint to ours."""

from __future__ import annotations

import argparse

from msdetr.compat.coco_classes import coco_raw_class_names
from msdetr.compat.official import load_official_checkpoint
from msdetr.errors import MsdetrError
from msdetr.model_io import save_model_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an official checkpoint ({'model', 'args'}) to an msdetr checkpoint",
        description="Convert a checkpoint in the official MS-DETR format. The architecture is derived "
        "from its 'args'; keys that cannot be placed are reported (and stop the conversion unless "
        "--allow-unplaced).",
    )
    p.add_argument("src", help="official checkpoint (.pth)")
    p.add_argument("dst", help="output msdetr checkpoint")
    p.add_argument("--allow-unplaced", action="store_true", help="write the file even if some keys were not placed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, state, report, _ = load_official_checkpoint(args.src)
    print(f"architecture: {cfg.backbone.name}, hidden {cfg.hidden_dim}, {cfg.enc_layers}+{cfg.dec_layers} layers, "
          f"{cfg.num_queries} queries, {cfg.num_classes} classes, two_stage={cfg.two_stage}, "
          f"box_refine={cfg.with_box_refine}, mixed_selection={cfg.mixed_selection}, "
          f"look_forward_twice={cfg.look_forward_twice}, ms_detr={cfg.mixed_supervision.enabled} "
          f"(aux_ffn={cfg.mixed_supervision.aux_ffn})")
    print(f"converted {len(state)} tensors; dropped {len(report.dropped_duplicates)} duplicated head tensors")
    if report.unplaced:
        print(f"could not place {len(report.unplaced)} keys:")
        for key in report.unplaced:
            print(f"  {key}")
        if not args.allow_unplaced:
            raise MsdetrError(f"{args.src}: {len(report.unplaced)} keys could not be placed; "
                              "rerun with --allow-unplaced to write the rest anyway")
    # build once so a file we write always loads
    from msdetr.modeling.build import build_model

    model = build_model(cfg)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise MsdetrError(f"{args.src}: the converted weights miss {len(result.missing_keys)} parameters "
                          f"(e.g. {result.missing_keys[:3]}); is this a Deformable DETR checkpoint?")
    names = coco_raw_class_names(cfg.num_classes) if cfg.num_classes == 91 else None
    save_model_file(args.dst, cfg, model.state_dict(), class_names=names,
                    category_ids=list(range(cfg.num_classes)), converted_from=str(args.src))
    print(f"wrote {args.dst}")
    return 0
