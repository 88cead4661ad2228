"""Generate the Group DETR supervision conformance fixture from the reference code (not run by CI).

    python tests/make_group_detr_fixture.py /path/to/detrex [tests/fixtures/group_detr_fixture.pt]

Group DETR's own repository (Atten4Vis/GroupDETR) holds no code; its criterion and matcher were
published in detrex (`projects/group_detr/modeling/group_criterion.py`, `group_matcher.py`,
modified from Atten4Vis/ConditionalDETR's GroupDETR branch), on Conditional DETR. No reference
runs Group DETR on Deformable DETR, so this fixture covers the supervision: per-group Hungarian
matching on every decoder layer and the G * N loss normalizer, on random predictions of G groups.

Inside this script only: the two files are loaded by path; `detrex.layers` is their own
`detrex/layers/box_ops.py` (plain PyTorch) and `detrex.utils` gives the single-process answers of
its distributed helpers (world size 1, not initialized; the real ones import detectron2).
Stored: the predictions, targets, the reference's losses (by its names), its weighted total and
the total's gradient with respect to the predicted logits and boxes.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

from support.reference_stubs import SINGLE_PROCESS, stub_reference_imports

GROUPS, QUERIES, LAYERS, BATCH, CLASSES = 4, 12, 3, 2, 7


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_reference(root: Path):
    box_ops = _load("detrex.layers.box_ops", root / "detrex" / "layers" / "box_ops.py")
    stub_reference_imports({
        "detrex": {}, "detrex.utils": SINGLE_PROCESS,
        "detrex.layers": {"box_ops": box_ops, "box_cxcywh_to_xyxy": box_ops.box_cxcywh_to_xyxy,
                          "generalized_box_iou": box_ops.generalized_box_iou},
    })
    modeling = root / "projects" / "group_detr" / "modeling"
    matcher = _load("group_matcher", modeling / "group_matcher.py")
    criterion = _load("group_criterion", modeling / "group_criterion.py")
    return criterion.GroupSetCriterion, matcher.GroupHungarianMatcher


def make_inputs():
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(LAYERS, BATCH, GROUPS * QUERIES, CLASSES, generator=g) - 2.0
    cxcy = 0.2 + 0.6 * torch.rand(LAYERS, BATCH, GROUPS * QUERIES, 2, generator=g)
    wh = 0.05 + 0.4 * torch.rand(LAYERS, BATCH, GROUPS * QUERIES, 2, generator=g)
    boxes = torch.cat([cxcy, wh], -1)
    targets = []
    for n in (4, 2):
        t_cxcy = 0.25 + 0.5 * torch.rand(n, 2, generator=g)
        t_wh = 0.1 + 0.3 * torch.rand(n, 2, generator=g)
        targets.append({"boxes": torch.cat([t_cxcy, t_wh], 1),
                        "labels": torch.randint(0, CLASSES, (n,), generator=g)})
    return logits, boxes, targets


def main() -> None:
    root = Path(sys.argv[1])
    default = Path(__file__).parent / "fixtures" / "group_detr_fixture.pt"
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else default
    GroupSetCriterion, GroupHungarianMatcher = import_reference(root)
    logits, boxes, targets = make_inputs()
    logits.requires_grad_(True)
    boxes.requires_grad_(True)
    # detrex's group_detr_r50 config: costs 2 / 5 / 2, weights 2 / 5 / 2 on every layer, alpha 0.25
    weight_dict = {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    weight_dict.update({f"{k}_{i}": v for i in range(LAYERS - 1) for k, v in list(weight_dict.items())})
    criterion = GroupSetCriterion(
        CLASSES, GroupHungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0), weight_dict,
        group_nums=GROUPS, losses=["class", "boxes"], alpha=0.25, gamma=2.0,
    ).train()
    layers = [{"pred_logits": logits[i], "pred_boxes": boxes[i]} for i in range(LAYERS)]
    outputs = {**layers[-1], "aux_outputs": layers[:-1]}
    losses = criterion(outputs, targets)
    total = sum(losses[k] * weight_dict[k] for k in losses if k in weight_dict)
    total.backward()
    fixture = {
        "groups": GROUPS,
        "weight_dict": weight_dict,
        "inputs": {"logits": logits.detach(), "boxes": boxes.detach(), "targets": targets},
        "losses": {k: v.detach() for k, v in losses.items()},
        "total": total.detach(),
        "gradients": {"logits": logits.grad, "boxes": boxes.grad},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, out_path)
    print(f"total {float(total.detach()):.4f}", out_path, f"{out_path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
