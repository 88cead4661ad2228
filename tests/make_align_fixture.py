"""Make `tests/fixtures/align_detr_reference.pt` with the released Align-DETR code (not run in CI).

Usage: python tests/make_align_fixture.py /path/to/AlignDETR [output.pt]

The checkout is FelixCaae/AlignDETR (the fixture records its commit when it is a git
checkout). Its criterion imports detectron2/detrex only for three box functions and
two distributed helpers; this script stands them in with plain PyTorch (DETR's box
formulas) before importing the reference, so only torch and scipy are needed.

What is recorded, for fixed random predictions of 3 decoder layers (2 images, 20
queries, 7 classes; predicted boxes are jittered copies of target boxes, so the
IoU-aware qualities are distinct and the within-target ranks well defined) and
targets of 3 and 2 objects: per config (match_num, tau) the reference
`ManyToOneCriterion` losses by name, the total with the released weights (class 1,
bbox 5, giou 2), the gradient of that total with respect to every layer's logits and
boxes, and the mixed matcher's (query, target) pairs per layer and image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from support.reference_stubs import SINGLE_PROCESS, stub_reference_imports

CONFIGS = {
    # name: (match_num = [encoder, layer 0, ..., final layer], tau)
    "k2_tau1.5": ([2, 2, 2, 1], 1.5),  # the released 12 / 24-epoch configs (6 layers there)
    "k3_tau3": ([3, 3, 3, 1], 3.0),
    "k1": ([1, 1, 1, 1], 1.5),  # one-to-one everywhere: the IoU-aware loss alone
}
WEIGHTS = {"loss_class": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
NUM_LAYERS, NUM_QUERIES, NUM_CLASSES = 3, 20, 7


def _box_cxcywh_to_xyxy(x):
    cx, cy, w, h = x.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def _box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _box_iou(a, b):
    lt = torch.max(a[:, None, :2], b[:, :2])
    rb = torch.min(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = _box_area(a)[:, None] + _box_area(b) - inter
    return inter / union, union


def _generalized_box_iou(a, b):
    iou, union = _box_iou(a, b)
    lt = torch.min(a[:, None, :2], b[:, :2])
    rb = torch.max(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[..., 0] * wh[..., 1]
    return iou - (area - union) / area


def make_inputs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    targets = []
    for count in (3, 2):
        centers = 0.25 + 0.5 * torch.rand(count, 2, generator=g)
        sizes = 0.12 + 0.3 * torch.rand(count, 2, generator=g)
        labels = torch.randint(0, NUM_CLASSES, (count,), generator=g)
        targets.append({"boxes": torch.cat([centers, sizes], 1), "labels": labels})
    boxes = torch.empty(NUM_LAYERS, len(targets), NUM_QUERIES, 4)
    for b, target in enumerate(targets):
        source = torch.randint(0, len(target["boxes"]), (NUM_LAYERS, NUM_QUERIES), generator=g)
        base = target["boxes"][source]
        jitter_center = 0.06 * torch.randn(NUM_LAYERS, NUM_QUERIES, 2, generator=g) * base[..., 2:]
        jitter_size = torch.exp(0.25 * torch.randn(NUM_LAYERS, NUM_QUERIES, 2, generator=g))
        boxes[:, b] = torch.cat([base[..., :2] + jitter_center, base[..., 2:] * jitter_size], -1)
    boxes = boxes.clamp(0.02, 0.98)
    logits = -2.0 + 1.5 * torch.randn(NUM_LAYERS, len(targets), NUM_QUERIES, NUM_CLASSES, generator=g)
    return {"logits": logits, "boxes": boxes, "targets": targets}


def run_reference(inputs: dict, match_num: list[int], tau: float) -> dict:
    from aligndetr.criterions.many_to_one_criterion import ManyToOneCriterion
    from aligndetr.matchers import MixedMatcher

    matcher = MixedMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, cost_class_type="focal_loss_cost",
                           alpha=0.25, gamma=2.0)
    recorded = []
    forward = matcher.forward

    def recording_forward(outputs, targets, gt_copy=1):
        indices = forward(outputs, targets, gt_copy)
        recorded.append([(src.clone(), tgt.clone()) for src, tgt in indices])
        return indices

    matcher.forward = recording_forward
    criterion = ManyToOneCriterion(NUM_CLASSES, matcher, dict(WEIGHTS), match_num, gamma=2.0, alpha=0.25, tau=tau)
    logits = inputs["logits"].clone().requires_grad_(True)
    boxes = inputs["boxes"].clone().requires_grad_(True)
    outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1],
               "aux_outputs": [{"pred_logits": logits[i], "pred_boxes": boxes[i]} for i in range(NUM_LAYERS - 1)]}
    targets = [{k: v.clone() for k, v in t.items()} for t in inputs["targets"]]
    losses = criterion(outputs, targets)
    total = sum(WEIGHTS[name.split("_")[0] + "_" + name.split("_")[1]] * value for name, value in losses.items())
    total.backward()
    # the reference matches the final layer first, then the auxiliary layers 0, 1, ...
    indices = [recorded[1 + layer] for layer in range(NUM_LAYERS - 1)] + [recorded[0]]
    return {
        "match_num": match_num,
        "tau": tau,
        "losses": {name: value.item() for name, value in losses.items()},
        "total": total.item(),
        "grad_logits": logits.grad.clone(),
        "grad_boxes": boxes.grad.clone(),
        "indices": indices,
    }


def commit_of(path: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    reference = Path(argv[0]).resolve()
    output = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "fixtures" / "align_detr_reference.pt"
    box_ops = {"box_cxcywh_to_xyxy": _box_cxcywh_to_xyxy, "box_iou": _box_iou,
               "generalized_box_iou": _generalized_box_iou}
    stub_reference_imports({"detrex": {}, "detrex.layers": box_ops, "detrex.layers.box_ops": box_ops,
                            "detrex.utils": SINGLE_PROCESS})
    sys.path.insert(0, str(reference))
    torch.set_default_dtype(torch.float32)
    inputs = make_inputs()
    fixture = {
        "reference": {"repository": "FelixCaae/AlignDETR", "commit": commit_of(reference)},
        "inputs": inputs,
        "weights": WEIGHTS,
        "configs": {name: run_reference(inputs, match_num, tau) for name, (match_num, tau) in CONFIGS.items()},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, output)
    for name, config in fixture["configs"].items():
        print(name, f"total {config['total']:.6f}", {k: round(v, 5) for k, v in config["losses"].items()})


if __name__ == "__main__":
    main(sys.argv[1:])
