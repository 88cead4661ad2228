"""How much of a clipped MS-DETR update is one-to-one, and how many one-to-many positives an object gets.

Two measurements on real training batches of a preset's data, for a model in a given state
(random init, `--weights` a checkpoint, or `--init-backbone` a trained backbone with a fresh
transformer):

1. Gradient shares under `train.clip_max_norm`. Per batch, the gradients of the weighted loss
   of each stream (one-to-one, one-to-many, encoder proposals) are taken separately
   (`torch.autograd.grad`, all trainable parameters as one vector, one forward pass per stream
   with the same random state): their norms, the cosine
   between the one-to-one and one-to-many gradients, and the one-to-one component of the
   clipped update, `c * <g, u> / max(|g|, c)` with `u` the unit one-to-one gradient, for the
   MS-DETR total `g = g_o2o + g_o2m + g_enc` and for the same model without the one-to-many
   terms (`g_o2o + g_enc`). Their ratio says how much the one-to-many terms shrink (< 1) or
   grow (> 1) the one-to-one progress per step when clipping is active, as it is at DETR's
   clip of 0.1 whenever |g| > 0.1.
2. One-to-many positives per object: the top-K assignment of every decoder layer (the
   configured K, threshold and the official 25% cap), pairs per target, per layer, and the
   fraction of images where the cap (int(0.25 * queries)) binds, i.e. K x objects > cap.

    python benchmarks/supervision_balance.py --preset tiny --batches 8 --json out.json
    python benchmarks/supervision_balance.py --preset tiny --weights runs/tiny/last.pt --batches 8
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, machine_description  # noqa: E402

STREAMS = ("one_to_one", "one_to_many", "encoder")
# The paper's MS-DETR recipe, whatever the preset says (as convergence.py's "msdetr" variant).
MSDETR = [
    "supervision.strategy=mixed",
    "model.mixed_supervision.enabled=true",
    "supervision.loss_weights.one_to_one.cls=1.0",
    "supervision.loss_weights.one_to_many.cls=2.0",
    "supervision.one_to_many.k=6",
    "supervision.one_to_many.threshold=0.4",
]


def stream_losses(terms: dict, weights: dict) -> dict:
    """Weighted loss per stream (sum over layers and terms) from `<stream>.layer<i>.<term>` terms."""
    from msdetr.losses.names import parse_name

    out = {}
    for name, value in terms.items():
        stream, _, term = parse_name(name)
        out[stream] = out.get(stream, 0.0) + getattr(weights[stream], term) * value
    return out


def flat_grad(loss, params):
    import torch

    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def clipped_along(g, unit, clip: float) -> float:
    """The component along `unit` of the update `g` clipped to norm `clip`."""
    norm = float(g.norm())
    scale = clip / max(norm, clip) if clip > 0 else 1.0
    return float((g @ unit) * scale)


def measure(args: argparse.Namespace) -> dict:
    import torch

    from msdetr.config.loader import load_config
    from msdetr.engine.data_setup import build_train_loader, prepare_datasets
    from msdetr.engine.init_backbone import init_backbone_from_checkpoint
    from msdetr.engine.init_weights import init_from_checkpoint
    from msdetr.losses.build import build_criterion
    from msdetr.modeling.build import build_model

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, [*MSDETR, *args.set, "train.device=cpu"])
    train_set, _ = prepare_datasets(cfg.data)
    from dataclasses import replace

    cfg = replace(cfg, model=replace(cfg.model, num_classes=train_set.num_classes))
    model = build_model(cfg.model)
    if args.weights:
        init_from_checkpoint(model, args.weights)
    if args.init_backbone:
        init_backbone_from_checkpoint(model, args.init_backbone)
    model.train()
    criterion = build_criterion(cfg.supervision, cfg.model.num_classes)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = build_train_loader(train_set, cfg.train.batch_size, 0, args.seed, False)
    loader.batch_sampler.set_epoch(0, 0)
    clip = cfg.train.clip_max_norm
    cap = int(cfg.supervision.one_to_many.positive_fraction * cfg.model.num_queries)
    k = cfg.supervision.one_to_many.k

    rows, positives, cap_binds, counts = [], {}, [], []
    for index, batch in enumerate(loader):
        if index >= args.batches:
            break
        g = {}
        for stream in STREAMS:  # one forward per stream (the attention's backward frees its graph)
            torch.manual_seed(args.seed * 1000 + index)  # the same top-K subsampling every time
            output = model(batch.images, batch.pixel_mask, targets=batch.targets)
            losses = stream_losses(criterion(output, batch.targets).terms, criterion.weights)
            if stream in losses:
                g[stream] = flat_grad(losses[stream], params)
        o2o, o2m, enc = g["one_to_one"], g["one_to_many"], g.get("encoder", torch.zeros_like(g["one_to_one"]))
        unit = o2o / o2o.norm().clamp_min(1e-12)
        mixed, without = o2o + o2m + enc, o2o + enc
        along_mixed, along_without = clipped_along(mixed, unit, clip), clipped_along(without, unit, clip)
        rows.append(
            {
                "norm_o2o": float(o2o.norm()),
                "norm_o2m": float(o2m.norm()),
                "norm_enc": float(enc.norm()),
                "norm_total": float(mixed.norm()),
                "norm_without_o2m": float(without.norm()),
                "cos_o2o_o2m": float(o2o @ o2m / (o2o.norm() * o2m.norm()).clamp_min(1e-12)),
                "o2o_step_mixed": along_mixed,
                "o2o_step_without_o2m": along_without,
                "o2o_step_ratio": along_mixed / along_without if along_without else math.nan,
            }
        )
        with torch.no_grad():
            tasks = criterion.strategy.plan(output, batch.targets)
        objects = sum(len(t["labels"]) for t in batch.targets)
        for task in tasks:
            if task.stream != "one_to_many":
                continue
            pairs = sum(int(query.numel()) for query, _ in task.assignment)
            positives.setdefault(task.name, []).append(pairs / max(objects, 1))
        cap_binds += [k * len(t["labels"]) > cap for t in batch.targets]
        counts += [len(t["labels"]) for t in batch.targets]
        print(f"batch {index}: o2o step ratio {rows[-1]['o2o_step_ratio']:.3f}", flush=True)

    def mean(key: str) -> dict:
        values = [r[key] for r in rows]
        return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}

    return {
        "state": "weights " + args.weights if args.weights else
        ("backbone " + args.init_backbone if args.init_backbone else "random init"),
        "clip_max_norm": clip,
        "k": k,
        "cap": cap,
        "num_queries": cfg.model.num_queries,
        "gradients": {key: mean(key) for key in rows[0]},
        "positives_per_object": {name: statistics.fmean(v) for name, v in sorted(positives.items())},
        "cap_binds_fraction": sum(cap_binds) / max(len(cap_binds), 1),
        "objects_per_image": statistics.fmean(counts),
        "batches": len(rows),
        "per_batch": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--weights", default=None, help="a checkpoint to start from (all fitting weights)")
    parser.add_argument("--init-backbone", default=None, help="a checkpoint whose backbone to start from")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    result = {"benchmark": "supervision_balance", "command": command_line(),
              "machine": machine_description(torch.device("cpu")), **measure(args)}
    grads = result["gradients"]
    print(
        f"{result['state']}: |g_o2o| {grads['norm_o2o']['mean']:.3g}, |g_o2m| {grads['norm_o2m']['mean']:.3g}, "
        f"|g_enc| {grads['norm_enc']['mean']:.3g}, cos(o2o, o2m) {grads['cos_o2o_o2m']['mean']:.3f}, "
        f"one-to-one step with / without one-to-many {grads['o2o_step_ratio']['mean']:.3f}; "
        f"positives per object {result['positives_per_object']}, cap binds in "
        f"{100 * result['cap_binds_fraction']:.0f}% of images"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
