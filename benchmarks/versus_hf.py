"""msdetr vs Hugging Face transformers: the same Deformable DETR, side by side on the CPU.

Both sides build Deformable DETR with two-stage proposals, iterative box refinement,
ResNet-50, 300 queries and random weights, with the sizes of the `ddetr_r50_300` preset
(6 + 6 layers, hidden 256, 8 heads, 4 levels, 4 points, FFN 2048, 91 classes), and run
the same random batch. Measured interleaved in one process (the order alternates every
round, after warm-up): inference time per image (eval mode, no gradient) and the time of
one training step (forward, Hungarian matching, losses with auxiliary layers, backward,
gradient clipping 0.1, AdamW).

Kept equal on purpose (see docs/benchmarks_training.md):
  * HF's deformable attention runs its pure-PyTorch path (`disable_custom_kernels=True`),
    as msdetr's default backend does;
  * HF's backbone is its own ResNet-50 (`use_timm_backbone=False`, no pretrained weights,
    nothing downloaded); HF freezes all of it (its freeze rule looks for "stage.1" in
    names that read "stages.1"), msdetr trains layer2-4 as the official recipe does, so
    this benchmark unfreezes HF's stages 1-3 to train the same parameters;
  * HF computes no loss on the two-stage encoder proposals; the row "msdetr, same losses"
    leaves them out too, the row "msdetr, full recipe" keeps them (the official recipe).

Needs `pip install transformers` (the `bench` extra).

    python benchmarks/versus_hf.py --size 512 --batch-size 2 --steps 5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Spread,
    Stopwatch,
    command_line,
    machine_description,
    markdown_table,
    parse_size,
    random_batch,  # noqa: E402
)

from msdetr.config.loader import load_config  # noqa: E402
from msdetr.config.schema import Config  # noqa: E402
from msdetr.data.collate import Batch  # noqa: E402
from msdetr.engine.optim import build_optimizer  # noqa: E402
from msdetr.losses import Criterion, build_criterion  # noqa: E402
from msdetr.modeling.build import build_model  # noqa: E402
from msdetr.supervision import ComposedSupervision, HungarianAssigner, OneToOneSupervision  # noqa: E402


@dataclass
class Contender:
    """One side of the comparison: how to infer and how to take a training step on a batch."""

    name: str
    model: torch.nn.Module
    infer: callable
    train: callable
    infer_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)


def count(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    params = [p for p in model.parameters() if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)
    optimizer.step()


def ours_config(args: argparse.Namespace) -> Config:
    return load_config(args.preset, ["model.backbone.weights=null", *args.set])


def one_to_one_only(cfg: Config) -> Criterion:
    """The criterion of the preset without the encoder proposal loss (what HF computes)."""
    sup = cfg.supervision
    hungarian = HungarianAssigner(
        cost_class=sup.matcher.cls,
        cost_bbox=sup.matcher.bbox,
        cost_giou=sup.matcher.giou,
        focal_alpha=sup.focal_alpha,
        focal_gamma=sup.focal_gamma,
    )
    return Criterion(
        ComposedSupervision([OneToOneSupervision(hungarian)]),
        weights=sup.loss_weights.as_dict(),
        num_classes=cfg.model.num_classes,
        focal_alpha=sup.focal_alpha,
        focal_gamma=sup.focal_gamma,
    )


def build_ours(cfg: Config, name: str, encoder_loss: bool, seed: int) -> Contender:
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    criterion = (
        build_criterion(cfg.supervision, cfg.model.num_classes) if encoder_loss else one_to_one_only(cfg)
    )
    optimizer = build_optimizer(model, cfg.train)

    def infer(batch: Batch) -> None:
        model.eval()
        with torch.no_grad():
            model(batch.images, batch.pixel_mask)

    def train(batch: Batch) -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        result = criterion(model(batch.images, batch.pixel_mask), batch.targets)
        result.total.backward()
        clip_and_step(model, optimizer, cfg.train.clip_max_norm)

    return Contender(name, model, infer, train)


def build_hf(cfg: Config, seed: int) -> Contender:
    """transformers' DeformableDetrForObjectDetection with the same sizes as `cfg.model`."""
    try:
        import transformers
        from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection, ResNetConfig
    except ImportError:
        raise SystemExit(
            "versus_hf.py needs Hugging Face transformers: pip install transformers "
            "(or pip install 'msdetr[bench]')"
        ) from None
    transformers.logging.set_verbosity_error()
    m, sup = cfg.model, cfg.supervision
    if m.backbone.name != "resnet50":
        raise SystemExit(f"versus_hf.py compares ResNet-50 models; the preset has {m.backbone.name}")
    backbone = ResNetConfig(
        layer_type="bottleneck",
        depths=[3, 4, 6, 3],
        hidden_sizes=[256, 512, 1024, 2048],
        out_features=["stage2", "stage3", "stage4"],
    )
    hf_cfg = DeformableDetrConfig(
        use_timm_backbone=False,
        backbone_config=backbone,
        use_pretrained_backbone=False,
        disable_custom_kernels=True,
        two_stage=m.two_stage,
        with_box_refine=m.with_box_refine,
        num_queries=m.num_queries,
        two_stage_num_proposals=m.num_queries,
        num_labels=m.num_classes,
        d_model=m.hidden_dim,
        encoder_layers=m.enc_layers,
        decoder_layers=m.dec_layers,
        encoder_attention_heads=m.nheads,
        decoder_attention_heads=m.nheads,
        encoder_ffn_dim=m.dim_feedforward,
        decoder_ffn_dim=m.dim_feedforward,
        dropout=m.dropout,
        num_feature_levels=m.num_feature_levels,
        encoder_n_points=m.enc_n_points,
        decoder_n_points=m.dec_n_points,
        # HF's config takes integer cost and loss weights (its loss is otherwise the same formula).
        auxiliary_loss=True,
        class_cost=round(sup.matcher.cls),
        bbox_cost=round(sup.matcher.bbox),
        giou_cost=round(sup.matcher.giou),
        bbox_loss_coefficient=round(sup.loss_weights.one_to_one.bbox),
        giou_loss_coefficient=round(sup.loss_weights.one_to_one.giou),
        focal_alpha=sup.focal_alpha,
    )
    torch.manual_seed(seed)
    model = DeformableDetrForObjectDetection(hf_cfg)
    for name, param in model.model.backbone.named_parameters():  # train layer2-4 like msdetr (see docstring)
        if any(f"stages.{i}." in name for i in (1, 2, 3)):
            param.requires_grad_(True)
    opt = cfg.train.optimizer
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=opt.lr, weight_decay=opt.weight_decay
    )

    def inputs(batch: Batch) -> dict:
        return {"pixel_values": batch.images, "pixel_mask": (~batch.pixel_mask).long()}

    def infer(batch: Batch) -> None:
        model.eval()
        with torch.no_grad():
            model(**inputs(batch))

    def train(batch: Batch) -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        labels = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in batch.targets]
        model(**inputs(batch), labels=labels).loss.backward()
        clip_and_step(model, optimizer, cfg.train.clip_max_norm)

    return Contender(f"HF transformers {transformers.__version__}", model, infer, train)


def interleave(
    contenders: list[Contender], batch: Batch, phase: str, warmup: int, steps: int, clock: str = "wall"
) -> None:
    """Warm up each contender, then `steps` rounds of one call each, order alternating by round."""
    device = torch.device("cpu")
    for _ in range(warmup):
        for c in contenders:
            getattr(c, phase)(batch)
    for i in range(steps):
        for c in contenders if i % 2 == 0 else contenders[::-1]:
            with Stopwatch(device, clock) as watch:
                getattr(c, phase)(batch)
            getattr(c, f"{phase}_seconds").append(watch.seconds)


def summarize(args: argparse.Namespace, contenders: list[Contender], batch_size: int, size) -> dict:
    hf = contenders[0]
    rows = []
    for c in contenders:
        total, trainable = count(c.model)
        rows.append(
            {
                "name": c.name,
                "parameters": total,
                "trainable_parameters": trainable,
                "infer_seconds_per_image": Spread.of([s / batch_size for s in c.infer_seconds]).as_dict(),
                "train_step_seconds": Spread.of(c.train_seconds).as_dict(),
                "infer_ratio_to_hf": Spread.of(
                    [a / b for a, b in zip(c.infer_seconds, hf.infer_seconds)]
                ).as_dict(),
                "train_ratio_to_hf": Spread.of(
                    [a / b for a, b in zip(c.train_seconds, hf.train_seconds)]
                ).as_dict(),
            }
        )
    return {
        "benchmark": "versus_hf",
        "command": command_line(),
        "machine": machine_description(torch.device("cpu")),
        "preset": args.preset,
        "image_size": list(size),
        "batch_size": batch_size,
        "objects_per_image": args.objects,
        "warmup": args.warmup,
        "steps": args.steps,
        "clock": args.clock,
        "rows": rows,
    }


def render(result: dict) -> str:
    headers = [
        "implementation",
        "params (trainable)",
        "inference ms/image [IQR]",
        "ratio to HF",
        "train step ms [IQR]",
        "ratio to HF",
    ]
    lines = []
    for row in result["rows"]:
        infer, train = Spread(**row["infer_seconds_per_image"]), Spread(**row["train_step_seconds"])
        lines.append(
            [
                row["name"],
                f"{row['parameters'] / 1e6:.1f}M ({row['trainable_parameters'] / 1e6:.1f}M)",
                infer.format(1000),
                f"{row['infer_ratio_to_hf']['median']:.2f}",
                train.format(1000),
                f"{row['train_ratio_to_hf']['median']:.2f}",
            ]
        )
    m = result["machine"]
    header = (
        f"preset {result['preset']} (random weights), "
        f"image {result['image_size'][0]}x{result['image_size'][1]}, "
        f"batch {result['batch_size']}, {result['objects_per_image']} objects/image, {result['steps']} "
        f"interleaved rounds after {result['warmup']} warm-up, {result.get('clock', 'wall')} clock; "
        f"{m['cpu']}, {m['torch_threads']} threads; "
        f"torch {m['torch']}"
    )
    return header + "\n\n" + markdown_table(headers, lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ddetr_r50_300", help="msdetr preset giving the sizes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--size", default="512", help="image size N or HxW")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--objects", type=int, default=7, help="objects per image")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: process CPU time, robust to other processes' load (use with --threads 1)",
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed interleaved rounds per phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the result record here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ours_config(args)
    cfg = replace(cfg, train=replace(cfg.train, batch_size=args.batch_size))
    size = parse_size(args.size)
    contenders = [
        build_hf(cfg, args.seed),
        build_ours(cfg, "msdetr, same losses as HF", encoder_loss=False, seed=args.seed),
        build_ours(cfg, "msdetr, full recipe (+ encoder loss)", encoder_loss=True, seed=args.seed),
    ]
    generator = torch.Generator().manual_seed(args.seed)
    batch = random_batch(args.batch_size, size, args.objects, cfg.model.num_classes, generator)
    interleave(contenders, batch, "infer", args.warmup, args.steps, args.clock)
    interleave(contenders, batch, "train", args.warmup, args.steps, args.clock)
    result = summarize(args, contenders, args.batch_size, size)
    print(render(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
