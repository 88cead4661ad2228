"""Make `tests/fixtures/dac_detr_reference.pt` with the released DAC-DETR code (not run in CI).

Usage: python tests/make_dac_fixture.py /path/to/DAC-DETR [output.pt]

The checkout is huzhengdongcs/DAC-DETR (its commit is recorded when it is a git checkout;
only `models/*.py`, `models/ops/{functions,modules}/*.py` and `util/*.py` are needed). Before
importing the reference this script stands in the compiled `MultiScaleDeformableAttention`
extension and the backbone module (Swin needs timm / mmcv; neither is used by the criterion) and
maps the reference's `.cuda()` / `.to("cuda")` calls to the CPU.

What is recorded, (1) the branch's supervision: for fixed random predictions of 3 decoder layers (2 images, 20 queries,
7 classes) of the one-to-one stream and of the divide-and-conquer branch (`*_cdecoder`), and
targets of 3 and 2 objects, the released `SetCriterion` (training mode, no denoising queries,
no encoder outputs) losses by name, the total with the released weights, its gradient with
respect to every layer's logits and boxes of both streams, and the pairs of the one-to-one
matcher and of the branch's one-to-many assigner (`Stage2Assigner`) per layer and image. The
branch's normalizer is the released training one: 3x the number of targets. Predicted boxes
are jittered copies of target boxes (distinct qualities, well defined ranks), and the targets'
labels are distinct within an image (see `test_conformance_dac`). (2) The branch itself: the
released decoder (3 layers, hidden 16, 2 levels with padding, random weights, sampling offsets off
the pixel lattice, box refinement, look forward twice, the compiled sampling replaced by the
reference's own `ms_deform_attn_core_pytorch`) with per-layer class / box heads: both streams'
predictions and the gradients of a fixed random projection of the branch's predictions with
respect to every weight and input.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from support.reference_stubs import DEFORM_ATTN_EXTENSION, pytorch_sampling_function, stub_reference_imports

NUM_LAYERS, NUM_QUERIES, NUM_CLASSES = 3, 20, 7
BALANCE = 3  # the released training loop's `balance_num`


def make_inputs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    targets = []
    for count in (3, 2):
        centers = 0.25 + 0.5 * torch.rand(count, 2, generator=g)
        sizes = 0.12 + 0.3 * torch.rand(count, 2, generator=g)
        labels = torch.randperm(NUM_CLASSES, generator=g)[:count]
        targets.append({"boxes": torch.cat([centers, sizes], 1), "labels": labels})
    streams = {}
    for stream in ("one_to_one", "dac"):
        boxes = torch.empty(NUM_LAYERS, len(targets), NUM_QUERIES, 4)
        for b, target in enumerate(targets):
            source = torch.randint(0, len(target["boxes"]), (NUM_LAYERS, NUM_QUERIES), generator=g)
            base = target["boxes"][source]
            jitter_center = 0.1 * torch.randn(NUM_LAYERS, NUM_QUERIES, 2, generator=g) * base[..., 2:]
            jitter_size = torch.exp(0.3 * torch.randn(NUM_LAYERS, NUM_QUERIES, 2, generator=g))
            boxes[:, b] = torch.cat([base[..., :2] + jitter_center, base[..., 2:] * jitter_size], -1)
        logits = -1.5 + 1.5 * torch.randn(NUM_LAYERS, len(targets), NUM_QUERIES, NUM_CLASSES, generator=g)
        streams[stream] = {"logits": logits, "boxes": boxes.clamp(0.02, 0.98)}
    return {"streams": streams, "targets": targets}


def released_weight_dict(num_layers: int) -> dict[str, float]:
    """`models/deformable_detr.py: build()` with the released arguments (cls 1, bbox 5, giou 2)."""
    base = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0,
            "loss_ce_dn": 1.0, "loss_bbox_dn": 5.0, "loss_giou_dn": 2.0}
    weights = dict(base)
    for i in range(num_layers - 1):
        weights.update({f"{k}_{i}": v for k, v in base.items()})
    weights.update({f"{k}_enc": (2.0 if k == "loss_ce" else v) for k, v in base.items()})
    weights = {**weights, **{f"{k}_one2one": v for k, v in weights.items()}}
    return {**weights, **{f"{k}_g2": v for k, v in weights.items()}}


def _recorder(module, store: list, pick):
    forward = module.forward

    def recording(*args, **kwargs):
        result = forward(*args, **kwargs)
        store.append([(q.clone(), t.clone()) for q, t in pick(result)])
        return result

    module.forward = recording


def run_reference(inputs: dict) -> dict:
    from models.deformable_detr import SetCriterion
    from models.matcher import HungarianMatcher

    weights = released_weight_dict(NUM_LAYERS)
    criterion = SetCriterion(NUM_CLASSES, HungarianMatcher(2.0, 5.0, 2.0), weights,
                             ["labels", "boxes", "cardinality"], focal_alpha=0.25)
    criterion.train()
    one_to_one, one_to_many = [], []
    _recorder(criterion.matcher, one_to_one, lambda result: result)
    _recorder(criterion.one2many, one_to_many, lambda result: result[0])

    leaves = {stream: {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
              for stream, tensors in inputs["streams"].items()}
    o2o, dac = leaves["one_to_one"], leaves["dac"]

    def layer(i):
        return {"pred_logits": o2o["logits"][i], "pred_boxes": o2o["boxes"][i],
                "pred_logits_cdecoder": dac["logits"][i], "pred_boxes_cdecoder": dac["boxes"][i]}

    outputs = {**layer(-1), "aux_outputs": [layer(i) for i in range(NUM_LAYERS - 1)],
               "dn_meta": None, "dn_meta_cdecoder": None}
    targets = [{k: v.clone() for k, v in t.items()} for t in inputs["targets"]]
    balance_targets = [{"boxes": t["boxes"].repeat(BALANCE, 1), "labels": t["labels"].repeat(BALANCE)}
                       for t in targets]
    torch.manual_seed(0)
    losses = criterion(outputs, targets, balance_targets)
    total = sum(weights[k] * v for k, v in losses.items() if k in weights)
    total.backward()
    # the reference assigns the final layer first, then the auxiliary layers 0, 1, ...
    by_layer = lambda calls: [calls[1 + i] for i in range(NUM_LAYERS - 1)] + [calls[0]]  # noqa: E731
    return {
        "losses": {k: v.item() for k, v in losses.items()},
        "total": total.item(),
        "grads": {stream: {k: v.grad.clone() for k, v in tensors.items()} for stream, tensors in leaves.items()},
        "one_to_one_pairs": by_layer(one_to_one),
        "dac_pairs": by_layer(one_to_many),
    }


BRANCH = {"hidden": 16, "heads": 4, "levels": 2, "points": 2, "ffn": 32, "queries": 6, "classes": 5}


def run_reference_branch(seed: int = 1) -> dict:
    """The released decoder (`DeformableTransformerDecoder` with its divide-and-conquer layers,
    box refinement, look forward twice) and per-layer shared heads, as the released detector
    turns the branch's features into predictions. Returns weights, inputs, both streams'
    predictions and the gradients of a fixed random projection of the branch's predictions."""
    import models.ops.modules.ms_deform_attn as msda
    from models.deformable_detr import MLP
    from models.deformable_transformer import DeformableTransformerDecoder, DeformableTransformerDecoderLayer
    from models.ops.functions.ms_deform_attn_func import ms_deform_attn_core_pytorch
    from util.misc import inverse_sigmoid

    msda.MSDeformAttnFunction = pytorch_sampling_function(ms_deform_attn_core_pytorch)
    c = BRANCH
    torch.manual_seed(seed)
    layer = DeformableTransformerDecoderLayer(c["hidden"], c["ffn"], 0.0, "relu", c["levels"], c["heads"], c["points"])
    decoder = DeformableTransformerDecoder(layer, NUM_LAYERS, return_intermediate=True, look_forward_twice=True)
    decoder.bbox_embed = torch.nn.ModuleList(MLP(c["hidden"], c["hidden"], 4, 3) for _ in range(NUM_LAYERS))
    class_heads = torch.nn.ModuleList(torch.nn.Linear(c["hidden"], c["classes"]) for _ in range(NUM_LAYERS))
    with torch.no_grad():
        for name, p in [*decoder.named_parameters(), *class_heads.named_parameters()]:
            p.normal_(0.0, 0.3 if p.dim() > 1 else 0.1)
            if name.endswith("sampling_offsets.bias"):  # off the pixel lattice
                p.add_(torch.randn_like(p) * 1.5 + 0.37)

    batch, queries, hidden = 2, c["queries"], c["hidden"]
    shapes = torch.tensor([[8, 8], [4, 4]])
    valid_wh = [[(8, 8), (4, 4)], [(6, 8), (3, 4)]]  # (valid w, valid h) per image and level
    masks, ratios = [], []
    for image in range(batch):
        image_masks, image_ratios = [], []
        for (h, w), (vw, vh) in zip(shapes.tolist(), valid_wh[image]):
            m = torch.ones(h, w, dtype=torch.bool)
            m[:vh, :vw] = False
            image_masks.append(m.flatten())
            image_ratios.append([vw / w, vh / h])
        masks.append(torch.cat(image_masks))
        ratios.append(image_ratios)
    padding_mask, valid_ratios = torch.stack(masks), torch.tensor(ratios)
    level_start_index = torch.tensor([0, 64])
    memory = torch.randn(batch, int((shapes[:, 0] * shapes[:, 1]).sum()), hidden).requires_grad_(True)
    tgt = torch.randn(batch, queries, hidden).requires_grad_(True)
    query_pos = torch.randn(batch, queries, hidden).requires_grad_(True)
    reference_points = (0.2 + 0.6 * torch.rand(batch, queries, 4))

    hs, refs, hs_dac, refs_dac = decoder(tgt, reference_points, memory, shapes, level_start_index, valid_ratios,
                                         query_pos, padding_mask)

    def predict(features, references):
        logits, boxes = [], []
        for lvl in range(NUM_LAYERS):
            previous = reference_points if lvl == 0 else references[lvl - 1]
            logits.append(class_heads[lvl](features[lvl]))
            boxes.append((decoder.bbox_embed[lvl](features[lvl]) + inverse_sigmoid(previous)).sigmoid())
        return torch.stack(logits), torch.stack(boxes)

    logits, boxes = predict(hs_dac, refs_dac)
    primary_logits, primary_boxes = predict(hs, refs)
    g = torch.Generator().manual_seed(2)
    project_logits = torch.randn(logits.shape, generator=g)
    project_boxes = torch.randn(boxes.shape, generator=g)
    ((logits * project_logits).sum() + (boxes * project_boxes).sum()).backward()
    named = {**{f"decoder.{k}": v for k, v in decoder.named_parameters()},
             **{f"class_heads.{k}": v for k, v in class_heads.named_parameters()}}
    return {
        "config": c,
        "state_dict": {k: v.detach().clone() for k, v in named.items()},
        "inputs": {"tgt": tgt.detach(), "query_pos": query_pos.detach(), "reference_points": reference_points,
                   "memory": memory.detach(), "padding_mask": padding_mask, "valid_ratios": valid_ratios,
                   "spatial_shapes": [tuple(s) for s in shapes.tolist()]},
        "dac": {"logits": logits.detach(), "boxes": boxes.detach()},
        "one_to_one": {"logits": primary_logits.detach(), "boxes": primary_boxes.detach()},
        "projection": {"logits": project_logits, "boxes": project_boxes},
        "grads": {**{k: v.grad.clone() for k, v in named.items() if v.grad is not None},
                  "input.memory": memory.grad.clone(), "input.tgt": tgt.grad.clone(),
                  "input.query_pos": query_pos.grad.clone()},
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
    output = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "fixtures" / "dac_detr_reference.pt"
    # Swin needs timm / mmcv; the criterion and decoder never use the backbone module
    stub_reference_imports({**DEFORM_ATTN_EXTENSION, "models.backbone": {"build_backbone": None}}, cuda_on_cpu=True)
    sys.path.insert(0, str(reference))
    inputs = make_inputs()
    fixture = {
        "reference": {"repository": "huzhengdongcs/DAC-DETR", "commit": commit_of(reference)},
        "inputs": inputs,
        "balance": BALANCE,
        "result": run_reference(inputs),
        "branch": run_reference_branch(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, output)
    result = fixture["result"]
    print(f"total {result['total']:.6f}", {k: round(v, 5) for k, v in result["losses"].items()})
    print("branch pairs per layer and image:", [[len(q) for q, _ in layer] for layer in result["dac_pairs"]])


if __name__ == "__main__":
    main(sys.argv[1:])
