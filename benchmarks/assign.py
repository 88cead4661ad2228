"""Micro-benchmark of the assigners (CPU by default, `--device cuda` too).

Compares msdetr's vectorized top-K (one-to-many, official semantics) and batched
Hungarian assigners with straightforward implementations of the same semantics:

* top-K: a per-image, per-target Python loop, written the way the official
  `Stage2Assigner` reads (same random draws, so the results are identical);
* Hungarian: the DETR-style matcher, one cost matrix between all queries and all
  targets of the batch, split per image.

The tests use the top-K loop as the reference the vectorized assigner must equal.

    PYTHONPATH=src python benchmarks/assign.py [--repeats 50] [--threads 1] [--device cpu] [--layers 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from scipy.optimize import linear_sum_assignment

from msdetr.ops.boxes import box_cxcywh_to_xyxy, pairwise_box_iou, pairwise_generalized_box_iou
from msdetr.supervision import HungarianAssigner, LayerPredictions, TopKAssigner
from msdetr.supervision.hungarian import focal_matching_cost
from msdetr.supervision.targets import pad_targets


@torch.no_grad()
def loop_topk_official(
    predictions: LayerPredictions,
    targets: list[dict],
    k: int = 6,
    threshold: float = 0.4,
    class_weight: float = 0.3,
    iou_weight: float = 0.7,
    positive_fraction: float = 0.25,
    generator: torch.Generator | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The official one-to-many semantics with plain loops over images and targets."""
    batch, num_queries = predictions.logits.shape[:2]
    cap = int(num_queries * positive_fraction)
    result = []
    for b in range(batch):
        labels, target_boxes = targets[b]["labels"], targets[b]["boxes"]
        num_targets = len(labels)
        prob = predictions.logits[b].float().sigmoid()
        iou = pairwise_box_iou(
            box_cxcywh_to_xyxy(predictions.boxes[b].float()), box_cxcywh_to_xyxy(target_boxes)
        )
        score = (iou_weight * iou + class_weight * prob[:, labels]).T  # (T, Q)
        device = score.device
        positive = torch.zeros(num_queries, dtype=torch.bool, device=device)
        if num_targets > 0:
            best_score, best_target = score.max(dim=0)
            positive = best_score >= threshold
            for t in range(num_targets):
                positive[score[t].topk(1).indices] = True
        positive_idx = positive.nonzero().flatten()
        order = torch.randperm(len(positive_idx), generator=generator, device=device)
        torch.randperm(num_queries - len(positive_idx), generator=generator, device=device)
        kept = positive_idx[order[:cap]]
        pair_scores, pair_queries, pair_targets = [], [], []
        for t in range(num_targets):
            count = int((best_target[kept] == t).sum())
            if count == 0:
                continue
            top_scores, top_queries = score[t].topk(min(count, k, num_queries))
            pair_scores.append(top_scores)
            pair_queries.append(top_queries)
            pair_targets.append(torch.full_like(top_queries, t))
        if not pair_scores:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            result.append((empty, empty))
            continue
        pair_scores = torch.cat(pair_scores)
        sort = pair_scores.argsort(stable=True)
        result.append((torch.cat(pair_queries)[sort], torch.cat(pair_targets)[sort]))
    return result


@torch.no_grad()
def whole_batch_hungarian(
    predictions: LayerPredictions, targets: list[dict], cost_class=2.0, cost_bbox=5.0, cost_giou=2.0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """DETR-style Hungarian matcher: costs between all B*Q queries and all targets of the batch."""
    batch, num_queries = predictions.logits.shape[:2]
    prob = predictions.logits.flatten(0, 1).float().sigmoid()
    boxes = predictions.boxes.flatten(0, 1).float()
    labels = torch.cat([t["labels"] for t in targets])
    target_boxes = torch.cat([t["boxes"] for t in targets])
    class_cost = focal_matching_cost(prob[:, labels], 0.25, 2.0)
    giou = pairwise_generalized_box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target_boxes))
    cost = cost_bbox * torch.cdist(boxes, target_boxes, p=1) + cost_class * class_cost - cost_giou * giou
    cost = cost.view(batch, num_queries, -1).cpu()
    sizes = [len(t["labels"]) for t in targets]
    pairs = [linear_sum_assignment(c[i].numpy()) for i, c in enumerate(cost.split(sizes, -1))]
    device = predictions.logits.device
    return [(torch.as_tensor(r, device=device), torch.as_tensor(c, device=device)) for r, c in pairs]


def random_problem(batch: int, num_queries: int, num_targets: int, num_classes: int = 91, seed: int = 0):
    """Predictions where half of the queries sit near a target (as in training), targets of `num_targets`."""
    g = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        centers = 0.15 + 0.7 * torch.rand(num_targets, 2, generator=g)
        sizes = 0.05 + 0.3 * torch.rand(num_targets, 2, generator=g)
        targets.append(
            {
                "boxes": torch.cat([centers, sizes], dim=1),
                "labels": torch.randint(num_classes, (num_targets,), generator=g),
            }
        )
    boxes = torch.cat(
        [
            0.1 + 0.8 * torch.rand(batch, num_queries, 2, generator=g),
            0.05 + 0.3 * torch.rand(batch, num_queries, 2, generator=g),
        ],
        dim=-1,
    )
    near = num_queries // 2
    for b in range(batch):
        source = targets[b]["boxes"][torch.randint(num_targets, (near,), generator=g)]
        jitter = 1 + 0.2 * (torch.rand(near, 4, generator=g) - 0.5)
        boxes[b, :near] = (source * jitter).clamp(0.01, 0.99)
    logits = torch.randn(batch, num_queries, num_classes, generator=g) - 1.0
    return LayerPredictions(logits=logits, boxes=boxes), targets


def median_ms(fn, repeats: int, device: torch.device) -> float:
    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) * 1000

    timed()  # warm-up
    return statistics.median(timed() for _ in range(repeats))


def same_assignment(a, b) -> bool:
    return all(torch.equal(p1, p2) and torch.equal(t1, t2) for (p1, t1), (p2, t2) in zip(a, b))


def to_device(predictions, targets, device):
    moved = LayerPredictions(predictions.logits.to(device), predictions.boxes.to(device))
    return moved, [{k: v.to(device) for k, v in t.items()} for t in targets]


def layer_stack(num_layers: int, batch: int, num_queries: int, num_targets: int, device: torch.device):
    """`num_layers` different layers' predictions for the same targets: (L, B, Q, C) and (L, B, Q, 4)."""
    problems = [random_problem(batch, num_queries, num_targets, seed=layer) for layer in range(num_layers)]
    targets = [{k: v.to(device) for k, v in t.items()} for t in problems[0][1]]
    logits = torch.stack([p.logits for p, _ in problems]).to(device)
    boxes = torch.stack([p.boxes for p, _ in problems]).to(device)
    return logits, boxes, targets


def run(repeats: int, device: torch.device, num_layers: int) -> list[dict]:
    """One row per size: one decoder layer, and all `num_layers` layers of a training step
    (the baselines run layer by layer, in the official order; ours in one call)."""
    rows = []
    ours_topk, ours_hungarian = TopKAssigner(), HungarianAssigner()
    official_order = [num_layers - 1, *range(num_layers - 1)]
    for num_queries in (300, 900):
        for num_targets in (10, 50):
            logits, boxes, targets = layer_stack(num_layers, 2, num_queries, num_targets, device)
            layers = [LayerPredictions(logits[i], boxes[i]) for i in range(num_layers)]
            first = (layers[0], targets)

            def loop_all(layers=layers, targets=targets):
                return {i: loop_topk_official(layers[i], targets) for i in official_order}

            def hungarian_all(layers=layers, targets=targets):
                return [whole_batch_hungarian(layer, targets) for layer in layers]

            torch.manual_seed(0)
            reference = loop_all()
            torch.manual_seed(0)
            ours = ours_topk.assign_layers(logits, boxes, targets)
            assert all(same_assignment(ours[i], reference[i]) for i in range(num_layers)), "top-K differs"
            hungarian = ours_hungarian.assign_layers(logits, boxes, targets)
            assert all(same_assignment(a, b) for a, b in zip(hungarian, hungarian_all())), "Hungarian differs"
            stack = (logits, boxes, targets)
            rows.append(
                {
                    "queries": num_queries,
                    "targets": num_targets,
                    "topk_loop": median_ms(lambda p=first: loop_topk_official(*p), repeats, device),
                    "topk_ours": median_ms(lambda p=first: ours_topk(*p), repeats, device),
                    "hungarian_loop": median_ms(lambda p=first: whole_batch_hungarian(*p), repeats, device),
                    "hungarian_ours": median_ms(lambda p=first: ours_hungarian(*p), repeats, device),
                    "topk_loop_all": median_ms(loop_all, repeats, device),
                    "topk_ours_all": median_ms(lambda s=stack: ours_topk.assign_layers(*s), repeats, device),
                    "hungarian_loop_all": median_ms(hungarian_all, repeats, device),
                    "hungarian_ours_all": median_ms(
                        lambda s=stack: ours_hungarian.assign_layers(*s), repeats, device
                    ),
                }
            )
    return rows


def breakdown(repeats: int, device: torch.device, num_queries: int = 900, num_targets: int = 50) -> dict:
    """How close the top-K assigner is to its floor: one decoder layer, interleaved (ms).

    dense: the work every implementation does on the (B, T, Q) matrix (matching scores,
    `topk` over the queries, best score over the targets); the loop does the same work image
    by image. loop / dense bounds the speed-up of any implementation built from these tensor
    operations, whatever its bookkeeping costs.
    """
    predictions, targets = random_problem(2, num_queries, num_targets)
    predictions, targets = to_device(predictions, targets, device)
    assigner = TopKAssigner()
    padded = pad_targets(targets, device)

    def dense():
        scores = assigner.scores(predictions, padded)
        return scores.topk(assigner.k, dim=2), scores.amax(dim=1)

    functions = {
        "loop": lambda: loop_topk_official(predictions, targets),
        "ours": lambda: assigner(predictions, targets),
        "dense": dense,
    }
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(median_ms(function, 3, device))
    return {name: statistics.median(values) for name, values in times.items()}


def print_table(rows: list[dict], suffix: str) -> None:
    columns = ["queries", "targets/image", "top-K loop", "top-K ours", "speed-up"]
    columns += ["Hungarian baseline", "Hungarian ours", "speed-up"]
    print("| " + " | ".join(columns) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        topk_loop, topk_ours = r["topk_loop" + suffix], r["topk_ours" + suffix]
        hungarian_loop, hungarian_ours = r["hungarian_loop" + suffix], r["hungarian_ours" + suffix]
        print(
            f"| {r['queries']} | {r['targets']} | {topk_loop:.2f} | {topk_ours:.2f} "
            f"| {topk_loop / topk_ours:.1f}x | {hungarian_loop:.2f} | {hungarian_ours:.2f} "
            f"| {hungarian_loop / hungarian_ours:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=6, help="decoder layers of the training-step table")
    parser.add_argument(
        "--breakdown", action="store_true", help="only: the top-K assigner against its floor at 900 x 50"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.breakdown:
        times = breakdown(args.repeats, device)
        print(
            f"device {device}, {torch.get_num_threads()} threads, 900 queries x 50 targets, batch 2, one layer: "
            f"loop {times['loop']:.2f} ms, ours {times['ours']:.2f} ms ({times['loop'] / times['ours']:.1f}x), "
            f"dense part alone {times['dense']:.2f} ms (bound {times['loop'] / times['dense']:.1f}x)"
        )
        return
    rows = run(args.repeats, device, args.layers)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch 2, 91 classes, median of {args.repeats} runs (ms)"
    )
    print("\nOne decoder layer (one assigner call):\n")
    print_table(rows, "")
    print(f"\nAll {args.layers} decoder layers of a training step (ours: one `assign_layers` call):\n")
    print_table(rows, "_all")


if __name__ == "__main__":
    main()
